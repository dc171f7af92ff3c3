// Reference kernels (src/kernels/ref/) without fixtures: quantize -> dequantize round-trip error
// limits derived from each format's definition, hand-built blocks with values worked out from the
// GGUF spec, Q8_K bsums, vec_dot_ref / matmul_ref against plain double loops, dequantize(Tensor)
// checks, and a byte-for-byte cross-check of Q8_0 / Q4_0 against an independent numpy
// implementation (tests/py/quantize_q8_0_q4_0.py). Bit-exactness against ggml itself lives in
// tests/reference/test_dequant_fixtures.cpp. To add a type: a row in kRoundTripLimits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "safeshrink/dtype.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"
#include "safeshrink/rng.h"
#include "safeshrink/tensor.h"
#include "test_support.h"

using namespace ss;
using namespace ss::kernels;

namespace {

constexpr double kHalfRel = 1.0 / 2048.0;  // fp16 rounding: relative error <= 2^-11 (normal range)

// Blocks of N(0,1) with a per-block scale exp(U(-3, 3)), so block scales span ~400x and every
// fp16 scale stays in the normal range.
std::vector<float> random_blocks(uint64_t seed, int64_t n, int64_t block) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; b += block) {
    const double scale = std::exp(rng.uniform() * 6.0 - 3.0);
    for (int64_t j = b; j < b + block && j < n; ++j) x[j] = static_cast<float>(scale * rng.normal());
  }
  return x;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(*dtype_row_bytes(t, n));
  quantize_row_ref(t, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  dequantize_row_ref(t, q.data(), y.data(), n);
  return y;
}

}  // namespace

// ---- round trips: each limit follows from the format's definition ----

TEST(KernelsRef, RoundTripF32IsExactF16AndBF16WithinHalfUlp) {
  const auto x = random_blocks(1, 4096, 32);
  const auto y32 = round_trip(DType::F32, x);
  EXPECT_EQ(std::memcmp(x.data(), y32.data(), x.size() * 4), 0);
  const auto y16 = round_trip(DType::F16, x);
  const auto yb = round_trip(DType::BF16, x);
  for (size_t i = 0; i < x.size(); ++i) {
    const double ax = std::fabs(x[i]);
    // Half: RNE gives |err| <= 2^-11 |x| for normal halves, <= 2^-25 (half the subnormal step) below.
    ASSERT_LE(std::fabs(y16[i] - x[i]), std::max(ax * kHalfRel, std::ldexp(1.0, -25))) << i;
    // bfloat16 keeps 8 significant bits: |err| <= 2^-8 |x|.
    ASSERT_LE(std::fabs(yb[i] - x[i]), ax * std::ldexp(1.0, -8)) << i;
  }
}

// Symmetric formats with d from the block maximum. With q = round(x/d) clamped to the code range,
// |x - q*d| <= d/2; storing d as fp16 adds at most |q| * |d| * 2^-11 (|q| <= qmax). For Q4_0/Q5_0
// d = max/-nmax puts the extreme of the OTHER sign at +nmax, one past the top code nmax-1, so
// elements with x/d >= nmax - 1/2 may be off by up to one step d. Slack 1e-5 d covers fp32 rounding
// of x*id (and Q8_K's d is fp32, so it has no fp16 term).
struct SymmetricLimit {
  DType t;
  int block;
  float nmax;      // d = amax / nmax (sign chosen by the format)
  float qmax;      // largest |code| after removing the bias
  bool fp16_d;
  bool clamps_top;
};

TEST(KernelsRef, RoundTripSymmetricTypesWithinHalfAStep) {
  const SymmetricLimit limits[] = {
      {DType::Q8_0, 32, 127, 127, true, false},
      {DType::Q8_1, 32, 127, 127, true, false},
      {DType::Q4_0, 32, 8, 8, true, true},
      {DType::Q5_0, 32, 16, 16, true, true},
      {DType::Q8_K, 256, 127, 127, false, false},
  };
  for (const auto& lim : limits) {
    const auto x = random_blocks(7 + static_cast<int>(lim.t), 256 * 64, lim.block);
    const auto y = round_trip(lim.t, x);
    double worst_ratio = 0;  // error / (d/2): reported, for the record
    for (size_t b = 0; b < x.size(); b += lim.block) {
      float amax = 0, max = 0;
      for (int j = 0; j < lim.block; ++j)
        if (std::fabs(x[b + j]) > amax) amax = std::fabs(x[b + j]), max = x[b + j];
      const double d = amax / lim.nmax;  // |d|
      const double fp16_term = lim.fp16_d ? lim.qmax * d * kHalfRel : 0.0;
      for (int j = 0; j < lim.block; ++j) {
        const double xj = x[b + j];
        // x/d in the format's sign convention (d = max / -nmax for Q4_0/Q5_0): -x*nmax/max.
        const double scaled = lim.clamps_top ? -xj * lim.nmax / max : 0.0;
        const double step = (lim.clamps_top && scaled >= lim.nmax - 0.5) ? 1.0 : 0.5;
        const double err = std::fabs(y[b + j] - xj);
        ASSERT_LE(err, step * d + fp16_term + 1e-5 * d)
            << dtype_name(lim.t) << " block " << b / lim.block << " element " << j;
        if (step == 0.5) worst_ratio = std::max(worst_ratio, err / (0.5 * d));
      }
    }
    RecordProperty(std::string("worst_err_over_half_step_") + dtype_name(lim.t), std::to_string(worst_ratio));
    EXPECT_GT(worst_ratio, 0.9) << dtype_name(lim.t) << ": suspiciously exact (is the data quantized at all?)";
  }
}

// Asymmetric formats: d = (max - min)/nmax, m = min; |x - (q*d + m)| <= d/2 plus the fp16 rounding
// of d (times q <= nmax) and of m (|min| * 2^-11).
TEST(KernelsRef, RoundTripAsymmetricTypesWithinHalfAStep) {
  struct Limit { DType t; float nmax; };
  for (const Limit lim : {Limit{DType::Q4_1, 15}, Limit{DType::Q5_1, 31}}) {
    const auto x = random_blocks(11 + static_cast<int>(lim.t), 32 * 512, 32);
    const auto y = round_trip(lim.t, x);
    for (size_t b = 0; b < x.size(); b += 32) {
      float mn = x[b], mx = x[b];
      for (int j = 0; j < 32; ++j) mn = std::min(mn, x[b + j]), mx = std::max(mx, x[b + j]);
      const double d = (static_cast<double>(mx) - mn) / lim.nmax;
      const double limit = 0.5 * d + lim.nmax * d * kHalfRel + std::fabs(mn) * kHalfRel + 1e-5 * d;
      for (int j = 0; j < 32; ++j)
        ASSERT_LE(std::fabs(y[b + j] - x[b + j]), limit) << dtype_name(lim.t) << " block " << b / 32;
    }
  }
}

TEST(KernelsRef, AllZeroBlocksStayZero) {
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q8_K}) {
    std::vector<float> x(256, 0.0f);
    for (float v : round_trip(t, x)) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
}

// NaN / inf in one block must not leak into the next: blocks are quantized independently, so
// block 1 of a poisoned row equals block 1 quantized alone. (Block 0's codes are unspecified.)
TEST(KernelsRef, NonFiniteInputStaysInItsBlock) {
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q8_K,
                  DType::F16, DType::BF16}) {
    const int64_t block = std::max<int64_t>(dtype_info(t).block_size, 32);
    auto x = random_blocks(91, 2 * block, block);
    x[0] = std::nanf("");
    x[1] = INFINITY;
    x[2] = -INFINITY;
    const uint64_t half = *dtype_row_bytes(t, block);
    std::vector<uint8_t> row(2 * half), alone(half);
    quantize_row_ref(t, x.data(), row.data(), 2 * block);
    quantize_row_ref(t, x.data() + block, alone.data(), block);
    EXPECT_EQ(std::memcmp(row.data() + half, alone.data(), half), 0) << dtype_name(t);
    std::vector<float> y(2 * block);
    dequantize_row_ref(t, row.data(), y.data(), 2 * block);  // must not crash either
  }
}

TEST(KernelsRef, HasQuantizeRefListsTheFloatAndBlockTypes) {
  // Every float and GGUF block type has a reference quantizer; the integer types do not.
  for (int i = 0; i < static_cast<int>(DType::COUNT); ++i) {
    const DType t = static_cast<DType>(i);
    const bool expected = t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0 ||
                          t == DType::Q8_1 || t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 ||
                          t == DType::Q5_1 || t == DType::Q8_K || t == DType::Q2_K || t == DType::Q3_K ||
                          t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
    EXPECT_EQ(has_quantize_ref(t), expected) << dtype_name(t);
  }
}

// ---- hand-built blocks, values worked out from the GGUF spec ----

TEST(KernelsRef, SpecBlocksQ4_0Q5_0Q8_0Q8_1) {
  {  // Q4_0: d = 0.5 (fp16 0x3800); byte j = lo | hi << 4 gives elements j (lo - 8) and j+16 (hi - 8).
    BlockQ4_0 b{};
    b.d = 0x3800;
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | (15 - j) << 4);
    float y[32];
    dequantize_row_ref(DType::Q4_0, &b, y, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], 0.5f * (j - 8));
      EXPECT_EQ(y[j + 16], 0.5f * (7 - j));
    }
  }
  {  // Q5_0: d = 2; qh bit j is bit 4 of element j. Elements 3 and 20 get the high bit.
    BlockQ5_0 b{};
    b.d = 0x4000;
    const uint32_t qh = (1u << 3) | (1u << 20);
    std::memcpy(b.qh, &qh, 4);
    for (int j = 0; j < 16; ++j) b.qs[j] = 0x51;  // lo 1, hi 5
    float y[32];
    dequantize_row_ref(DType::Q5_0, &b, y, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], 2.0f * ((j == 3 ? 17 : 1) - 16)) << j;
      EXPECT_EQ(y[j + 16], 2.0f * ((j == 4 ? 21 : 5) - 16)) << j;
    }
  }
  {  // Q8_0 / Q8_1: y = qs * d; a dot with ones of qs = 1..32 at d = 1 is 528.
    BlockQ8_0 b{};
    b.d = 0x3C00;
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j + 1);
    std::vector<float> ones(32, 1.0f);
    EXPECT_EQ(vec_dot_ref(DType::Q8_0, &b, ones.data(), 32), 528.0f);
    BlockQ8_1 c{};
    c.d = 0xBC00;  // -1
    for (int j = 0; j < 32; ++j) c.qs[j] = static_cast<int8_t>(j + 1);
    EXPECT_EQ(vec_dot_ref(DType::Q8_1, &c, ones.data(), 32), -528.0f);
  }
}

TEST(KernelsRef, SpecQuantizerRoundingModes) {
  // Q8_0 with amax = 127 has d = 1 exactly, so x*id = x: roundf sends halves away from zero.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.49f;
  BlockQ8_0 b;
  quantize_row_ref(DType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x3C00);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], 3);   // round-half-even would give 2
  EXPECT_EQ(b.qs[2], -3);  // round-half-even would give -2
  EXPECT_EQ(b.qs[3], 1);   // round-half-even would give 0
  EXPECT_EQ(b.qs[4], 0);
  // Q4_0 keeps the sign of the largest magnitude: max = -16 gives d = 2, and +16 (x/d = 8) clamps
  // to code 15, i.e. 7 * d = 14. The first of two equal magnitudes wins.
  std::vector<float> z(32, 0.0f);
  z[0] = -16.0f, z[1] = 16.0f, z[2] = 3.0f;  // 3/2 + 8.5 = 10 -> code 10 (value 2 * 2 = 4)
  BlockQ4_0 q;
  quantize_row_ref(DType::Q4_0, z.data(), &q, 32);
  EXPECT_EQ(fp16_to_fp32(q.d), 2.0f);
  float y[32];
  dequantize_row_ref(DType::Q4_0, &q, y, 32);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[1], 14.0f);
  EXPECT_EQ(y[2], 4.0f);
  EXPECT_EQ(y[3], 0.0f);
}

TEST(KernelsRef, PlainTypesConvert) {
  const int8_t i8[3] = {-128, 0, 127};
  const int64_t i64[2] = {-(1ll << 40), (1ll << 24) + 1};  // the second rounds to even: 2^24
  const uint16_t bf[2] = {0x4049, 0xC000};
  const uint8_t flags[3] = {0, 1, 7};
  const double f64[2] = {0.1, -1e300};
  float y[3];
  dequantize_row_ref(DType::I8, i8, y, 3);
  EXPECT_EQ(y[0], -128.0f);
  EXPECT_EQ(y[2], 127.0f);
  dequantize_row_ref(DType::I64, i64, y, 2);
  EXPECT_EQ(y[0], -1099511627776.0f);
  EXPECT_EQ(y[1], 16777216.0f);
  dequantize_row_ref(DType::BF16, bf, y, 2);
  EXPECT_EQ(y[0], 3.140625f);
  EXPECT_EQ(y[1], -2.0f);
  dequantize_row_ref(DType::BOOL, flags, y, 3);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], 1.0f);
  dequantize_row_ref(DType::F64, f64, y, 2);
  EXPECT_EQ(y[0], 0.1f);
  EXPECT_TRUE(std::isinf(y[1]) && y[1] < 0);
}

// ---- Q8_K ----

TEST(KernelsRef, Q8KBsumsAreSumsOfQs) {
  const auto x = random_blocks(21, 256 * 16, 256);
  std::vector<BlockQ8_K> q(16);
  quantize_row_ref(DType::Q8_K, x.data(), q.data(), 256 * 16);
  for (const auto& b : q) {
    int extreme = 0;
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int t = 0; t < 16; ++t) sum += b.qs[16 * j + t];
      ASSERT_EQ(b.bsums[j], sum);
    }
    for (int8_t v : b.qs) extreme = std::max(extreme, std::abs(static_cast<int>(v)));
    EXPECT_EQ(extreme, 127);  // the block maximum maps to exactly -127 (iscale = -127/max)
  }
}

// ---- vec_dot_ref and matmul_ref ----

TEST(KernelsRef, VecDotEqualsDoubleLoopOverDequantizedRow) {
  const int64_t k = 512;
  const auto x = random_blocks(31, k, k);
  for (int i = 0; i < static_cast<int>(DType::COUNT); ++i) {
    const DType t = static_cast<DType>(i);
    if (t == DType::BOOL) continue;
    std::vector<uint8_t> w(*dtype_row_bytes(t, k));
    if (has_quantize_ref(t)) {
      const auto src = random_blocks(41 + i, k, 32);
      quantize_row_ref(t, src.data(), w.data(), k);
    } else {  // any byte pattern is a valid row once fp16 scale fields are kept finite: random bytes
      Rng rng(51 + i);
      for (auto& byte : w) byte = static_cast<uint8_t>(rng.next_u64() & 0x3B);  // 0x3B: no inf/NaN halves
    }
    std::vector<float> deq(k);
    dequantize_row_ref(t, w.data(), deq.data(), k);
    long double sum = 0, mag = 0;
    for (int64_t j = 0; j < k; ++j) {
      sum += static_cast<long double>(deq[j]) * x[j];
      mag += std::fabs(static_cast<long double>(deq[j]) * x[j]);
    }
    // double accumulation of k products: |error| <= k * 2^-53 * sum|w x|, plus the final float rounding.
    const double tol = static_cast<double>(mag) * (k * 0x1p-53) + std::fabs(static_cast<double>(sum)) * 0x1p-24;
    EXPECT_NEAR(vec_dot_ref(t, w.data(), x.data(), k), static_cast<double>(sum), tol) << dtype_name(t);
  }
}

TEST(KernelsRef, MatmulShapeContract) {
  // Y (n x m) = X (n x k) * W^T with n != m so a transposed result cannot pass.
  const int64_t n = 3, m = 5, k = 64;
  const auto wf = random_blocks(61, m * k, 32);
  const auto x = random_blocks(62, n * k, 32);
  std::vector<float> y(n * m, -1.0f);
  matmul_ref(DType::F32, wf.data(), m, k, x.data(), n, y.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double ref = 0;
      for (int64_t t = 0; t < k; ++t) ref += static_cast<double>(x[i * k + t]) * wf[j * k + t];
      EXPECT_NEAR(y[i * m + j], ref, 1e-6 * (1 + std::fabs(ref))) << i << "," << j;
    }
  // A quantized W: row j starts at j * row_bytes.
  std::vector<uint8_t> wq(*dtype_row_bytes(DType::Q8_0, k) * m);
  quantize_row_ref(DType::Q8_0, wf.data(), wq.data(), m * k);
  matmul_ref(DType::Q8_0, wq.data(), m, k, x.data(), n, y.data());
  const uint64_t rb = *dtype_row_bytes(DType::Q8_0, k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      EXPECT_EQ(y[i * m + j], vec_dot_ref(DType::Q8_0, wq.data() + j * rb, x.data() + i * k, k));
  // k that breaks the Q8_0 block size: Y is NaN, not garbage.
  matmul_ref(DType::Q8_0, wq.data(), m, 48, x.data(), n, y.data());
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

// ---- dequantize(Tensor) ----

TEST(KernelsRef, DequantizeTensorChecksAndMatchesRows) {
  const auto x = random_blocks(71, 4 * 64, 32);
  std::vector<uint8_t> q(*dtype_row_bytes(DType::Q4_1, 4 * 64));
  quantize_row_ref(DType::Q4_1, x.data(), q.data(), 4 * 64);
  auto t = Tensor::from_bytes("blk.0.w", DType::Q4_1, {4, 64}, q.data(), q.size());
  ASSERT_TRUE(t.ok());
  auto y = dequantize(*t);
  ASSERT_TRUE(y.ok()) << y.status().to_string();
  std::vector<float> rows(4 * 64);
  dequantize_row_ref(DType::Q4_1, q.data(), rows.data(), 4 * 64);
  EXPECT_EQ(std::memcmp(y->data(), rows.data(), rows.size() * 4), 0);

  Tensor bad = *t;
  bad.nbytes -= 1;  // bytes do not match dtype x shape
  auto e1 = dequantize(bad);
  ASSERT_FALSE(e1.ok());
  EXPECT_NE(e1.status().message().find("blk.0.w"), std::string::npos) << e1.status().message();
  bad = *t;
  bad.shape = {4, 48};  // 48 is not a multiple of 32
  EXPECT_FALSE(dequantize(bad).ok());
  bad = *t;
  bad.offset = 8;  // runs past the end of the buffer
  auto e2 = dequantize(bad);
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.status().message().find("blk.0.w"), std::string::npos);
  bad = *t;
  bad.shape = {-4, 64};
  EXPECT_FALSE(dequantize(bad).ok());
}

// ---- independent numpy implementation of Q8_0 and Q4_0 from the spec formulas ----

TEST(KernelsRef, Q8_0AndQ4_0MatchNumpyByteForByte) {
  SS_REQUIRE_PYTHON("numpy");
  const int64_t n = 32 * 1024;
  auto x = random_blocks(81, n, 32);
  // Edge blocks: all zero; exact halves at d = 1 (roundf vs round-half-even); max magnitude tied
  // with opposite signs (Q4_0 keeps the first); a lone negative maximum.
  std::fill(x.begin(), x.begin() + 32, 0.0f);
  for (int j = 0; j < 32; ++j) x[32 + j] = j == 0 ? 127.0f : static_cast<float>(j % 9) - 4.5f;
  for (int j = 0; j < 32; ++j) x[64 + j] = 0.25f * static_cast<float>(j - 16);
  x[64] = -4.0f, x[65] = 4.0f;
  for (int j = 0; j < 32; ++j) x[96 + j] = j == 5 ? -3.0f : 0.01f * static_cast<float>(j);
  // Own folder rather than ss::test::temp_dir: that helper's atexit cleanup runs after its static
  // list is destroyed (reported to the lead), which aborts the process at exit.
  std::string templ = (std::filesystem::temp_directory_path() / "safeshrink-kernels-ref-XXXXXX").string();
  ASSERT_NE(mkdtemp(templ.data()), nullptr);
  const std::string dir = templ;
  struct RemoveOnExit {
    std::string path;
    ~RemoveOnExit() { std::error_code ec; std::filesystem::remove_all(path, ec); }
  } remove_on_exit{dir};
  std::vector<uint8_t> in(x.size() * 4);
  std::memcpy(in.data(), x.data(), in.size());
  ss::test::write_bytes(dir + "/x.f32", in);
  std::string out;
  ASSERT_EQ(ss::test::run_python("py/quantize_q8_0_q4_0.py",
                                 dir + "/x.f32 " + dir + "/q8_0.bin " + dir + "/q4_0.bin", &out),
            0)
      << out;
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const auto expected = ss::test::read_bytes(dir + "/" + dtype_name(t) + ".bin");
    std::vector<uint8_t> ours(*dtype_row_bytes(t, n));
    quantize_row_ref(t, x.data(), ours.data(), n);
    ASSERT_EQ(expected.size(), ours.size()) << dtype_name(t);
    size_t mismatched_blocks = 0;
    const size_t bs = static_cast<size_t>(dtype_info(t).type_size);
    for (size_t b = 0; b < ours.size(); b += bs)
      if (std::memcmp(ours.data() + b, expected.data() + b, bs) != 0) ++mismatched_blocks;
    EXPECT_EQ(mismatched_blocks, 0u) << dtype_name(t) << " of " << ours.size() / bs << " blocks";
  }
}

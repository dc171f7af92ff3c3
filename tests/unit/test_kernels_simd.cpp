// Fast kernel twins (src/kernels/cpu/) against the scalar references (src/kernels/ref/) on fresh
// random inputs: dequantize_row twins bit for bit, matmul twins within a normalised-error limit per
// weight type (stated below with its derivation), on several shapes, for every level this CPU runs
// (scalar, AVX2; AVX-512 cases skip on CPUs without it). Each AVX2 strategy (matvec kernels,
// dequantize + sgemm) is also called directly for every batch size, so both are covered whatever
// the dispatch thresholds are. To add a type: a row in kMatmulCases (and in kDequantTypes when it
// gets a fast dequantizer).
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/dispatch.h"
#include "safeshrink/cpu_features.h"
#include "safeshrink/dtype.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "test_support.h"

using namespace ss;
using namespace ss::kernels;

namespace {

// ---- error limits (test::nmse = sum (a-b)^2 / sum b^2) ----
// F32 activations against F32-exact weights: only float vs double accumulation order differs;
// relative error ~ eps * sqrt(k) ~ 1e-6 for k = 4352, squared ~ 1e-12.
constexpr double kExactNmse = 1e-10;
// Activations rounded to 8 bits per block of 32 (scale amax/127): each element gets an error
// uniform in +-d/2, d = amax/127, independent of the weights, so NMSE ~ E[amax^2] / 127^2 / 12.
// For N(0,1) blocks of 32, E[amax^2] ~ 5.2 -> 2.7e-5. All m outputs of one activation row share
// that row's rounding errors, so with few rows (n = 1, 2) the sample NMSE spreads by ~2x around the
// mean: limit 2 * (1/127)^2 = 1.24e-4 (4.6x the expectation; a wrong scale or code gives >= 1e-2).
constexpr double kBlock32ActivationNmse = 2.0 / (127.0 * 127.0);
// Same with blocks of 256: E[amax^2] ~ 8.4 -> 4.3e-5. Limit 3 * (1/127)^2 = 1.86e-4.
constexpr double kBlock256ActivationNmse = 3.0 / (127.0 * 127.0);

enum class WeightSource { QUANTIZED_NORMAL, RANDOM_BLOCKS };

struct MatmulCase {
  DType type;
  double matvec_nmse;  // limit for the AVX2 matvec kernels (quantized activations or exact)
};
const MatmulCase kMatmulCases[] = {
    {DType::F32, kExactNmse},  {DType::F16, kExactNmse},  {DType::BF16, kExactNmse},
    {DType::Q8_0, kBlock32ActivationNmse}, {DType::Q4_0, kBlock32ActivationNmse},
    {DType::Q4_1, kBlock32ActivationNmse}, {DType::Q5_0, kBlock32ActivationNmse},
    {DType::Q5_1, kBlock32ActivationNmse}, {DType::Q4_K, kBlock256ActivationNmse},
    {DType::Q6_K, kBlock256ActivationNmse},
    // No kernel of their own: dequantized tiles through the F32 kernel, so exact.
    {DType::Q2_K, kExactNmse}, {DType::Q3_K, kExactNmse}, {DType::Q5_K, kExactNmse},
};

// Byte offsets of the fp16 scale fields of each block type: random bytes there could be inf/NaN,
// so they are overwritten with small finite values.
std::vector<size_t> half_fields(DType t) {
  switch (t) {
    case DType::Q4_0: return {offsetof(BlockQ4_0, d)};
    case DType::Q4_1: return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case DType::Q5_0: return {offsetof(BlockQ5_0, d)};
    case DType::Q5_1: return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case DType::Q8_0: return {offsetof(BlockQ8_0, d)};
    case DType::Q2_K: return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case DType::Q3_K: return {offsetof(BlockQ3_K, d)};
    case DType::Q4_K: return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case DType::Q5_K: return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case DType::Q6_K: return {offsetof(BlockQ6_K, d)};
    default: return {};
  }
}

// m rows of k elements of type t. QUANTIZED_NORMAL: N(0,1) weights through quantize_row_ref (only
// for types that have one). RANDOM_BLOCKS: every byte random (all codes, incl. Q8_0's -128), then
// the fp16 scales set to +-0.01 * U(0.5, 1.5) so values stay finite.
std::vector<uint8_t> make_weights(DType t, int64_t m, int64_t k, WeightSource source, Rng& rng) {
  const uint64_t row_bytes = *dtype_row_bytes(t, k);
  std::vector<uint8_t> w(row_bytes * static_cast<uint64_t>(m));
  if (source == WeightSource::QUANTIZED_NORMAL) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t i = 0; i < m; ++i) {
      for (auto& v : row) v = static_cast<float>(rng.normal());
      quantize_row_ref(t, row.data(), w.data() + row_bytes * static_cast<uint64_t>(i), k);
    }
    return w;
  }
  for (auto& b : w) b = static_cast<uint8_t>(rng.next_u64());
  const auto fields = half_fields(t);
  const uint64_t block_bytes = static_cast<uint64_t>(dtype_info(t).type_size);
  for (uint64_t b = 0; b < w.size(); b += block_bytes) {
    for (size_t off : fields) {
      const float sign = (rng.next_u64() & 1) ? 1.0f : -1.0f;
      const uint16_t h = fp32_to_fp16(sign * 0.01f * rng.uniform(0.5f, 1.5f));
      std::memcpy(w.data() + b + off, &h, 2);
    }
  }
  return w;
}

std::vector<float> normal_floats(int64_t count, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(count));
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

std::vector<SimdLevel> levels_to_test() {
  std::vector<SimdLevel> levels;
  for (SimdLevel l : {SimdLevel::SCALAR, SimdLevel::AVX2, SimdLevel::AVX512})
    if (cpu::level_available(l)) levels.push_back(l);
  return levels;
}

std::string type_name(const testing::TestParamInfo<MatmulCase>& info) { return dtype_name(info.param.type); }

}  // namespace

// ---- dequantize_row: bit for bit ----

TEST(DequantizeTwins, Avx2IsBitIdenticalToReference) {
  if (!cpu::level_available(SimdLevel::AVX2)) GTEST_SKIP() << "CPU without AVX2+FMA+F16C";
  Rng rng(0xdeadbeef);
  int fast_types = 0;
  for (int ti = 0; ti < static_cast<int>(DType::COUNT); ++ti) {
    const DType t = static_cast<DType>(ti);
    if (t == DType::BOOL) continue;
    fast_types += cpu::dequantize_row_avx2_has(t) ? 1 : 0;
    SCOPED_TRACE(dtype_name(t));
    // 17 superblocks of 256, plus an odd tail for the plain types (exercises the scalar tails).
    const int64_t n = 17 * 256 + (dtype_info(t).block_size == 1 ? 5 : 0);
    const uint64_t bytes = *dtype_row_bytes(t, n);
    std::vector<uint8_t> src(bytes);
    for (auto& b : src) b = static_cast<uint8_t>(rng.next_u64());
    const uint64_t block_bytes = static_cast<uint64_t>(dtype_info(t).type_size);
    for (uint64_t b = 0; b < bytes; b += block_bytes) {
      for (size_t off : half_fields(t)) {  // mostly finite scales, with a few infinities and zeros
        const uint64_t pick = rng.below(16);
        const uint16_t h = pick == 0 ? 0x7C00 : pick == 1 ? 0x0000 : pick == 2 ? 0x0001
                                                                   : fp32_to_fp16(rng.uniform(-2.0f, 2.0f));
        std::memcpy(src.data() + b + off, &h, 2);
      }
    }
    if (t == DType::F16) {  // signalling NaNs come out quiet from vcvtph2ps (documented): make them quiet
      for (uint64_t i = 0; i + 1 < bytes; i += 2) {
        uint16_t h;
        std::memcpy(&h, src.data() + i, 2);
        if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0) h |= 0x0200;
        std::memcpy(src.data() + i, &h, 2);
      }
    }
    std::vector<float> ref(static_cast<size_t>(n)), fast(static_cast<size_t>(n), -1.0f);
    dequantize_row_ref(t, src.data(), ref.data(), n);
    cpu::dequantize_row_avx2(t, src.data(), fast.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t a, b;
      std::memcpy(&a, &ref[i], 4);
      std::memcpy(&b, &fast[i], 4);
      ASSERT_EQ(a, b) << "element " << i << ": ref " << ref[i] << " avx2 " << fast[i];
    }
  }
  EXPECT_EQ(fast_types, 9);  // F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q6_K
}

TEST(DequantizeTwins, PublicEntryMatchesReference) {
  Rng rng(5);
  const std::vector<float> x = normal_floats(512, rng);
  std::vector<uint8_t> q(*dtype_row_bytes(DType::Q4_0, 512));
  quantize_row_ref(DType::Q4_0, x.data(), q.data(), 512);
  std::vector<float> ref(512), got(512);
  dequantize_row_ref(DType::Q4_0, q.data(), ref.data(), 512);
  dequantize_row(DType::Q4_0, q.data(), got.data(), 512);
  EXPECT_EQ(std::memcmp(ref.data(), got.data(), 512 * sizeof(float)), 0);
}

// ---- matmul: every level and strategy against matmul_ref ----

class MatmulTwins : public testing::TestWithParam<MatmulCase> {};

TEST_P(MatmulTwins, EveryLevelAndStrategyMatchesReference) {
  const MatmulCase c = GetParam();
  const DType t = c.type;
  const bool avx2 = cpu::level_available(SimdLevel::AVX2);
  ThreadPool pool(3);  // an odd split of m over threads
  const int64_t m = 37;
  const int64_t batches[] = {1, 2, 3, 5, 16, 64, 100};
  std::vector<WeightSource> sources;
  if (has_quantize_ref(t)) sources.push_back(WeightSource::QUANTIZED_NORMAL);
  if (dtype_is_quantized(t)) sources.push_back(WeightSource::RANDOM_BLOCKS);
  Rng rng(0x5eed0000u + static_cast<uint64_t>(t));
  for (WeightSource source : sources) {
    for (int64_t k : {256, 512, 4096 + 256}) {
      const std::vector<uint8_t> w = make_weights(t, m, k, source, rng);
      const std::vector<float> x = normal_floats(100 * k, rng);
      for (int64_t n : batches) {
        SCOPED_TRACE(std::string(source == WeightSource::QUANTIZED_NORMAL ? "quantized normal" : "random blocks") +
                     " k=" + std::to_string(k) + " n=" + std::to_string(n));
        std::vector<float> ref(static_cast<size_t>(n * m));
        matmul_ref(t, w.data(), m, k, x.data(), n, ref.data());
        std::vector<float> got(static_cast<size_t>(n * m));
        for (SimdLevel level : levels_to_test()) {
          std::fill(got.begin(), got.end(), NAN);
          cpu::matmul_at(level, t, w.data(), m, k, x.data(), n, got.data(), pool);
          const bool matvec = level != SimdLevel::SCALAR && n < cpu::sgemm_min_rows(level, t);
          EXPECT_LE(test::nmse(got.data(), ref.data(), n * m), matvec ? c.matvec_nmse : kExactNmse)
              << "matmul_at " << simd_level_name(level) << " (" << cpu::matmul_impl_name_at(level, t, n) << ")";
        }
        if (!avx2) continue;
        std::fill(got.begin(), got.end(), NAN);
        cpu::matvec_avx2(t, w.data(), m, k, x.data(), n, got.data(), pool);
        EXPECT_LE(test::nmse(got.data(), ref.data(), n * m), c.matvec_nmse) << "matvec_avx2";
        std::fill(got.begin(), got.end(), NAN);
        cpu::matmul_sgemm_panels(t, w.data(), m, k, x.data(), n, got.data(), pool, &cpu::dequantize_row_avx2);
        EXPECT_LE(test::nmse(got.data(), ref.data(), n * m), kExactNmse) << "sgemm on avx2-dequantized panels";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, MatmulTwins, testing::ValuesIn(kMatmulCases), type_name);

TEST(MatmulTwins, PublicEntryUsesDefaultPoolAndMatchesReference) {
  Rng rng(11);
  const int64_t m = 70, k = 512, n = 3;
  const auto w = make_weights(DType::Q4_K, m, k, WeightSource::RANDOM_BLOCKS, rng);
  const auto x = normal_floats(n * k, rng);
  std::vector<float> ref(n * m), got(n * m, NAN);
  matmul_ref(DType::Q4_K, w.data(), m, k, x.data(), n, ref.data());
  matmul(DType::Q4_K, w.data(), m, k, x.data(), n, got.data());
  EXPECT_LE(test::nmse(got.data(), ref.data(), n * m), kBlock256ActivationNmse);
  EXPECT_TRUE(matmul_supported(DType::Q4_K));
  EXPECT_FALSE(matmul_supported(DType::Q3_K));
  EXPECT_NE(std::string(matmul_impl_name(DType::Q4_K, 1)), "");
}

TEST(MatmulTwins, ZeroActivationRowGivesExactZeros) {
  // A row of X that is all zeros has block maximum 0: the quantizer must give q = 0 (not NaN from 0/0).
  if (!cpu::level_available(SimdLevel::AVX2)) GTEST_SKIP() << "CPU without AVX2+FMA+F16C";
  Rng rng(12);
  ThreadPool pool(2);
  const int64_t m = 9, k = 512, n = 3;
  for (DType t : {DType::Q8_0, DType::Q4_1, DType::Q4_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(t));
    const auto w = make_weights(t, m, k, WeightSource::RANDOM_BLOCKS, rng);
    auto x = normal_floats(n * k, rng);
    std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);
    std::vector<float> got(n * m, NAN);
    cpu::matvec_avx2(t, w.data(), m, k, x.data(), n, got.data(), pool);
    for (int64_t j = 0; j < m; ++j) {
      EXPECT_EQ(got[m + j], 0.0f) << j;
      EXPECT_TRUE(std::isfinite(got[j]) && std::isfinite(got[2 * m + j])) << j;
    }
  }
}

TEST(MatmulTwins, KOutsideTheBlockSizeGivesNaNNotARead) {
  // Contract breach (k not a multiple of 32): every output NaN, like matmul_ref.
  std::vector<uint8_t> w(64);
  std::vector<float> x(40, 1.0f), y(2, 0.0f);
  matmul(DType::Q4_0, w.data(), 2, 40, x.data(), 1, y.data());
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
}

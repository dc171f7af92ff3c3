// Quantizers of compress.h on synthetic stores: the registry (every unit runs, keeps norms, stays
// within an error bound derived from its bit width), honest bits/weight (spec values: b + 16/g for
// sym INTn, block bytes * 8 / block size for GGUF types), the INTn grid property (codes are
// integers in range), the spec grammar and its errors, plan overrides (--keep, --tensor-type,
// pure), llama.cpp's Q4_K_M layer rule restated from llama-quant.cpp (use_more_bits), and the
// importance-weighted K-quants (lower importance-weighted error than the plain reference).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "safeshrink/compress.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"
#include "test_support.h"

using namespace ss;

namespace {

Tensor random_tensor(const std::string& name, std::vector<int64_t> shape, uint32_t seed, float sigma = 0.02f,
                     float mean = 0.0f) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(mean, sigma);
  for (float& x : v) x = normal(rng);
  auto t = Tensor::from_bytes(name, DType::F32, std::move(shape), v.data(), v.size() * 4);
  EXPECT_TRUE(t.ok());
  return *t;
}

// A llama-shaped store with GGUF names: rows of 256 so every block type fits.
TensorStore synthetic_llama(int n_layers, int64_t rows = 32) {
  TensorStore s;
  s.format = "gguf";
  s.meta.set("general.architecture", MetaValue::of_string("llama"));
  s.meta.set("llama.attention.head_count", MetaValue::of_u32(8));
  s.meta.set("llama.attention.head_count_kv", MetaValue::of_u32(2));
  uint32_t seed = 1;
  EXPECT_TRUE(s.add(random_tensor("token_embd.weight", {rows, 256}, seed++)).ok());
  for (int l = 0; l < n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    EXPECT_TRUE(s.add(random_tensor(p + "attn_norm.weight", {256}, seed++, 0.1f, 1.0f)).ok());
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"})
      EXPECT_TRUE(s.add(random_tensor(p + m + ".weight", {rows, 256}, seed++)).ok());
    EXPECT_TRUE(s.add(random_tensor(p + "ffn_norm.weight", {256}, seed++, 0.1f, 1.0f)).ok());
  }
  EXPECT_TRUE(s.add(random_tensor("output_norm.weight", {256}, seed++, 0.1f, 1.0f)).ok());
  EXPECT_TRUE(s.add(random_tensor("output.weight", {rows, 256}, seed++)).ok());
  return s;
}

double relative_rms_error(const Tensor& a, const Tensor& b) {
  auto x = kernels::dequantize(a);
  auto y = kernels::dequantize(b);
  EXPECT_TRUE(x.ok() && y.ok());
  double num = 0, den = 0;
  for (size_t i = 0; i < x->size(); ++i) {
    num += ((*x)[i] - (*y)[i]) * double((*x)[i] - (*y)[i]);
    den += double((*x)[i]) * (*x)[i];
  }
  return std::sqrt(num / den);
}

const PlanEntry* entry(const CompressPlan& plan, const std::string& name) {
  for (const auto& e : plan.entries)
    if (e.tensor == name) return &e;
  return nullptr;
}

// Bound on the relative RMS error of a b-bit quantizer of Gaussian weights: a uniform quantizer
// with step ~ 2*max/2^b has RMS error step/sqrt(12); max ~ 3 sigma over a group gives
// 6/(2^b sqrt(12)) ~ 1.73/2^b relative. We allow twice that (scale/min rounding, small groups).
// Float types: round to nearest with p mantissa bits has relative error <= 2^-p per element.
double error_bound_for(const std::string& to_type, double bits) {
  if (to_type == "f16") return std::ldexp(1.0, -11);
  if (to_type == "bf16") return std::ldexp(1.0, -8);
  return 2.0 * 1.73 / std::pow(2.0, std::floor(bits));
}

}  // namespace

TEST(Quant, RegistryUnitsRunAndStayWithinTheirBitBound) {
  const TensorStore in = synthetic_llama(2);
  std::set<std::string> names;
  CompressContext ctx;
  ctx.calibrate = [](bool) -> Result<std::shared_ptr<const Calibration>> {
    return invalid_argument("no calibration in this test");
  };
  int ran = 0;
  for (const CompressorInfo& unit : quantizer_registry()) {
    SCOPED_TRACE(unit.name);
    EXPECT_TRUE(names.insert(unit.name).second) << "duplicate name";
    EXPECT_EQ(unit.kind, "quantizer");
    EXPECT_FALSE(unit.summary.empty());
    EXPECT_FALSE(unit.reference.empty());
    auto out = compress_variant(in, unit.name, ctx);
    if (!out.ok() && out.status().message().find("calibration") != std::string::npos) continue;  // GPTQ/AWQ need data
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    ++ran;
    ASSERT_EQ(out->store.tensors.size(), in.tensors.size());
    ASSERT_EQ(out->plan.entries.size(), in.tensors.size());
    for (size_t i = 0; i < in.tensors.size(); ++i) {
      const Tensor& a = in.tensors[i];
      const Tensor& b = out->store.tensors[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.shape, b.shape);
      const PlanEntry& e = out->plan.entries[i];
      if (a.shape.size() == 1) {
        EXPECT_EQ(b.dtype, DType::F32) << a.name << ": norms stay F32";
        continue;
      }
      EXPECT_GT(e.bits_per_weight, 1.5) << a.name;
      EXPECT_LT(e.bits_per_weight, 16.5) << a.name;
      EXPECT_LT(relative_rms_error(a, b), error_bound_for(e.to_type, e.bits_per_weight)) << a.name << " " << e.to_type;
    }
    EXPECT_GT(out->plan.bits_per_weight, 1.5);
  }
  EXPECT_GE(ran, 20);
}

TEST(Quant, BitsPerWeightAreHonest) {
  const TensorStore in = synthetic_llama(1);
  CompressContext ctx;
  struct Case { const char* spec; const char* to_type; double bpw; };
  const Case cases[] = {
      {"int4-g128", "int4-g128", 4.0 + 16.0 / 128},        // codes + f16 scale per 128
      {"int4-g128-asym", "int4-g128-asym", 4.0 + 20.0 / 128},  // + a 4-bit zero per group
      {"int8", "int8-pc", 8.0 + 16.0 / 256},               // per channel over 256 columns
      {"int3-g64", "int3-g64", 3.0 + 16.0 / 64},
      {"int2-g32-asym", "int2-g32-asym", 2.0 + 18.0 / 32},
      {"fp16", "f16", 16.0},
      {"q4_0-pure", "q4_0", 18.0 * 8 / 32},
      {"q4_k-pure", "q4_K", 144.0 * 8 / 256},
      {"q6_k-pure", "q6_K", 210.0 * 8 / 256},
      {"q2_k-pure", "q2_K", 84.0 * 8 / 256},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    auto out = compress_variant(in, c.spec, ctx);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const PlanEntry* e = entry(out->plan, "blk.0.attn_q.weight");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->to_type, c.to_type);
    EXPECT_DOUBLE_EQ(e->bits_per_weight, c.bpw);
    EXPECT_DOUBLE_EQ(out->plan.bits_per_weight, c.bpw);  // every matrix has 256 columns
  }
}

TEST(Quant, IntCodesAreIntegersInRange) {
  const Tensor w = random_tensor("blk.0.attn_q.weight", {16, 96}, 3);
  for (int bits : {2, 3, 4, 8}) {
    IntRtnParams p;
    p.bits = bits;
    p.group_size = 32;
    p.storage = DType::F32;
    auto q = quant_tensor_int_rtn(w, p);
    ASSERT_TRUE(q.ok());
    const float* v = q->data_as<float>();
    const float* x = w.data_as<float>();
    for (int64_t g = 0; g < 16 * 3; ++g) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[g * 32 + i]));
      // recompute the scale independently: f16 of amax / qmax
      const int qmax = (1 << (bits - 1)) - 1;
      const float s = fp16_to_fp32(fp32_to_fp16(amax / qmax));  // half.h, checked against numpy elsewhere
      for (int i = 0; i < 32; ++i) {
        const float code = v[g * 32 + i] / s;
        EXPECT_EQ(code, std::nearbyint(code)) << bits << " bits";
        EXPECT_GE(code, -qmax - 1);
        EXPECT_LE(code, qmax);
        EXPECT_LE(std::fabs(v[g * 32 + i] - x[g * 32 + i]), 0.5f * s * (1 + 1e-6f) + (bits == 2 ? 1.5f * s : 0.0f));
      }
    }
  }
}

TEST(Quant, SpecGrammarErrorsNameTheProblem) {
  const TensorStore in = synthetic_llama(1);
  CompressContext ctx;
  EXPECT_FALSE(compress_variant(in, "int5", ctx).ok());
  EXPECT_FALSE(compress_variant(in, "int4-g0", ctx).ok());
  auto bad = compress_variant(in, "int4-foo", ctx);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("foo"), std::string::npos);
  auto unknown = compress_variant(in, "int4", ctx, {{"colour", "red"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("colour"), std::string::npos);
  EXPECT_FALSE(compress_variant(in, "q4_k_m", ctx, {{"tensor_type", {"attn_v=q9_9"}}}).ok());
  EXPECT_FALSE(compress_variant(in, "q4_k_m", ctx, {{"keep", {"(unclosed"}}}).ok());
  auto upper = compress_variant(in, "Q4_K_M", ctx);  // llama.cpp spelling
  EXPECT_TRUE(upper.ok());
}

TEST(Quant, KeepAndTensorTypeOverridesAndOutputRule) {
  const TensorStore in = synthetic_llama(2);
  CompressContext ctx;
  auto out = compress_variant(in, "q4_0", ctx, {{"keep", {"ffn_down"}}, {"tensor_type", {"attn_v=q8_0"}}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  for (const Tensor& t : out->store.tensors) {
    if (t.shape.size() == 1) continue;
    DType want = DType::Q4_0;
    if (t.name.find("ffn_down") != std::string::npos) want = DType::F32;
    else if (t.name.find("attn_v") != std::string::npos) want = DType::Q8_0;
    else if (t.name == "output.weight") want = DType::Q6_K;  // llama.cpp: output -> q6_K unless q8_0
    EXPECT_EQ(t.dtype, want) << t.name;
  }
  // pure: no output rule
  auto pure = compress_variant(in, "q4_0-pure", ctx);
  ASSERT_TRUE(pure.ok());
  EXPECT_EQ(pure->store.find("output.weight")->dtype, DType::Q4_0);
}

TEST(Quant, Q4KMUsesMoreBitsInLlamaCppLayers) {
  const int n = 8;
  const TensorStore in = synthetic_llama(n, 8);
  CompressContext ctx;
  auto out = compress_variant(in, "q4_k_m", ctx);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  for (int i = 0; i < n; ++i) {
    // llama-quant.cpp: use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
    const bool more = i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    const std::string p = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(out->store.find(p + "attn_v.weight")->dtype, more ? DType::Q6_K : DType::Q4_K) << i;
    EXPECT_EQ(out->store.find(p + "ffn_down.weight")->dtype, more ? DType::Q6_K : DType::Q4_K) << i;
    EXPECT_EQ(out->store.find(p + "attn_q.weight")->dtype, DType::Q4_K) << i;
  }
  EXPECT_EQ(out->store.find("output.weight")->dtype, DType::Q6_K);
  EXPECT_EQ(out->store.find("token_embd.weight")->dtype, DType::Q4_K);
  EXPECT_EQ(quant_gguf_file_type("q4_k_m"), 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(quant_gguf_file_type("q8_0"), 7);
}

TEST(Quant, ImportanceWeightedKquantsLowerTheWeightedError) {
  const int64_t n = 256 * 16;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n), importance(n);
  for (auto& v : x) v = 0.02f * normal(rng);
  for (auto& v : importance) v = std::exp(2.0f * normal(rng));  // a few columns matter a lot
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(t));
    const uint64_t bytes = *dtype_row_bytes(t, n);
    std::vector<uint8_t> plain(bytes), weighted(bytes);
    kernels::quantize_row_ref(t, x.data(), plain.data(), n);
    kernels::quantize_row_weighted_ref(t, x.data(), weighted.data(), n, importance.data());
    std::vector<float> yp(n), yw(n);
    kernels::dequantize_row_ref(t, plain.data(), yp.data(), n);
    kernels::dequantize_row_ref(t, weighted.data(), yw.data(), n);
    double ep = 0, ew = 0;
    for (int64_t i = 0; i < n; ++i) {
      ep += importance[i] * (x[i] - yp[i]) * (x[i] - yp[i]);
      ew += importance[i] * (x[i] - yw[i]) * (x[i] - yw[i]);
    }
    std::printf("%s importance-weighted error: plain %.4g, weighted %.4g (ratio %.3f)\n", dtype_name(t), ep, ew, ew / ep);
    EXPECT_LT(ew, 0.9 * ep);
    // nullptr importance is the plain reference
    std::vector<uint8_t> again(bytes);
    kernels::quantize_row_weighted_ref(t, x.data(), again.data(), n, nullptr);
    EXPECT_EQ(again, plain);
  }
}

TEST(Quant, ImatrixPlansUseCalibrationMeansAndRecordTheSource) {
  const TensorStore in = synthetic_llama(1);
  auto calib = std::make_shared<Calibration>();
  calib->spec.source = "calib.txt";
  calib->spec.n_samples = 3;
  calib->spec.seed = 9;
  calib->sha256 = "abc123";
  LinearInputStats s;
  s.tensor = "blk.0.attn_q.weight";
  s.k = 256;
  s.rows = 4;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 10.0);
  for (int i = 0; i < 256; ++i) s.sum_sq.push_back(u(rng) * u(rng));
  calib->linears.push_back(s);
  CompressContext ctx;
  int calls = 0;
  ctx.calibrate = [&](bool hessian) -> Result<std::shared_ptr<const Calibration>> {
    ++calls;
    EXPECT_FALSE(hessian);
    return std::shared_ptr<const Calibration>(calib);
  };
  auto out = compress_variant(in, "q4_k-pure", ctx, {{"imatrix", true}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(out->plan.calibration.value("sha256", ""), "abc123");
  EXPECT_EQ(out->plan.calibration.value("seed", 0), 9);
  const PlanEntry* q = entry(out->plan, "blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q->reason.find("imatrix"), std::string::npos) << q->reason;
  EXPECT_EQ(entry(out->plan, "blk.0.attn_k.weight")->reason.find("imatrix"), std::string::npos);
  // the bytes: each row quantized with importance = sum_sq / rows (llama.cpp's imatrix is a mean)
  const Tensor& w = *in.find("blk.0.attn_q.weight");
  std::vector<float> importance(256);
  for (int i = 0; i < 256; ++i) importance[i] = static_cast<float>(s.sum_sq[i] / 4.0);
  const Tensor& got = *out->store.find("blk.0.attn_q.weight");
  std::vector<uint8_t> want(got.nbytes);
  for (int64_t r = 0; r < w.rows(); ++r)
    kernels::quantize_row_weighted_ref(DType::Q4_K, w.data_as<float>() + r * 256, want.data() + r * got.row_bytes(), 256,
                                       importance.data());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.nbytes));
  std::vector<uint8_t> plain(got.nbytes);
  for (int64_t r = 0; r < w.rows(); ++r)
    kernels::quantize_row_ref(DType::Q4_K, w.data_as<float>() + r * 256, plain.data() + r * got.row_bytes(), 256);
  EXPECT_NE(0, std::memcmp(plain.data(), got.data(), got.nbytes));  // the importance changed something
}

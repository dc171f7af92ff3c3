// Dense quantizers: fp16 / bf16 conversion (round to nearest even) and INTn round-to-nearest
// (n = 8, 4, 3, 2; per channel or per group; symmetric or asymmetric) stored as fake-quant dense
// tensors whose values lie on the integer grid (see IntRtnParams in compress.h for the exact
// formulas, restated in numpy by tests/py/int_rtn_reference.py). Bits/weight count what a real
// packed format would store: codes + f16 scales (+ zeros). Not here: GGUF block types
// (quant_gguf.cpp), GPTQ/AWQ (gptq.cpp, awq.cpp). To add a dense unit: one function returning its
// CompressorInfo and one line in registry.cpp.
#include <cmath>
#include <cstring>

#include "compress/plan_runner.h"
#include "compress/quant/quant_units.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"

// Every grid value must be the same float32 number the numpy restatement computes: no fused a*b+c.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ss {

Status IntRtnParams::validate() const {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return invalid_argument("bits must be 2, 3, 4 or 8, got " + std::to_string(bits));
  if (group_size != -1 && group_size <= 0)
    return invalid_argument("group_size must be > 0 or -1 (per channel), got " + std::to_string(group_size));
  if (storage != DType::F16 && storage != DType::F32)
    return invalid_argument(std::string("storage must be f16 or f32, got ") + dtype_name(storage));
  return ok_status();
}

double quant_int_rtn_bits_per_weight(const IntRtnParams& p, int64_t cols) {
  if (cols <= 0) return 0.0;
  const int64_t g = p.group_size > 0 ? p.group_size : cols;
  const int64_t groups = (cols + g - 1) / g;
  const double per_group = 16.0 + (p.sym ? 0.0 : p.bits);
  return p.bits + per_group * static_cast<double>(groups) / static_cast<double>(cols);
}

std::string quant_int_rtn_name(const IntRtnParams& p) {
  std::string s = "int" + std::to_string(p.bits) + (p.group_size > 0 ? "-g" + std::to_string(p.group_size) : "-pc");
  if (!p.sym) s += "-asym";
  return s;
}

namespace {

float f16_round(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

// Round half to even, clamped; NaN gives lo.
int rint_clamped(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::nearbyint(v));
}

// One group of n values in place.
void quantize_group(float* w, int64_t n, const IntRtnParams& p) {
  if (p.sym) {
    const int qmax = (1 << (p.bits - 1)) - 1;
    float amax = 0;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(w[i]));
    const float s = f16_round(amax / static_cast<float>(qmax));
    for (int64_t i = 0; i < n; ++i) {
      if (s == 0.0f) { w[i] = 0.0f; continue; }
      const int q = rint_clamped(w[i] / s, -qmax - 1, qmax);
      w[i] = static_cast<float>(q) * s;
    }
    return;
  }
  const int levels = (1 << p.bits) - 1;
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const float s = f16_round((hi - lo) / static_cast<float>(levels));
  if (s == 0.0f) {
    for (int64_t i = 0; i < n; ++i) w[i] = 0.0f;
    return;
  }
  const int z = rint_clamped(-lo / s, 0, levels);
  for (int64_t i = 0; i < n; ++i) {
    const float code = std::nearbyint(w[i] / s) + static_cast<float>(z);
    const int q = rint_clamped(code, 0, levels);
    w[i] = static_cast<float>(q - z) * s;
  }
}

}  // namespace

Result<Tensor> quant_tensor_int_rtn(const Tensor& in, const IntRtnParams& p) {
  SS_RETURN_IF_ERROR(p.validate());
  SS_ASSIGN_OR_RETURN(std::vector<float> w, kernels::dequantize(in));
  const int64_t cols = in.cols(), rows = in.rows();
  const int64_t g = p.group_size > 0 ? p.group_size : cols;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += g) quantize_group(w.data() + r * cols + c0, std::min(g, cols - c0), p);
  SS_ASSIGN_OR_RETURN(Tensor out, Tensor::zeros(in.name, p.storage, in.shape));
  for (int64_t r = 0; r < rows; ++r)
    kernels::quantize_row_ref(p.storage, w.data() + r * cols, out.mutable_data() + r * out.row_bytes(), cols);
  return out;
}

namespace {

Result<CompressOutput> run_float(DType type, const TensorStore& in, const nlohmann::json& params,
                                 const CompressContext& ctx) {
  SS_ASSIGN_OR_RETURN(PlanOverrides ov, plan_overrides_from_params(params));
  auto apply = [&](const Tensor& t, size_t) -> Result<TensorDecision> {
    SS_ASSIGN_OR_RETURN(Tensor out, quant_tensor_gguf(t, type));
    return TensorDecision{std::move(out), dtype_name(type), dtype_bits_per_weight(type), "convert"};
  };
  return run_tensor_plan(in, type == DType::F16 ? "fp16" : "bf16", params, ov, apply, ctx);
}

Result<IntRtnParams> int_params(int bits, const nlohmann::json& params) {
  IntRtnParams p;
  p.bits = bits;
  try {
    if (params.contains("bits")) p.bits = params["bits"].get<int>();
    if (params.contains("group_size")) p.group_size = params["group_size"].get<int64_t>();
    if (params.contains("sym")) p.sym = params["sym"].get<bool>();
    if (params.contains("storage")) {
      const auto t = dtype_from_name(params["storage"].get<std::string>());
      if (!t) return invalid_argument("storage must be f16 or f32");
      p.storage = *t;
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("int quantizer parameters: ") + e.what());
  }
  SS_RETURN_IF_ERROR(p.validate());
  return p;
}

}  // namespace

CompressorInfo quant_unit_float(DType type) {
  CompressorInfo c;
  c.name = type == DType::F16 ? "fp16" : "bf16";
  c.kind = "quantizer";
  c.summary = type == DType::F16 ? "IEEE half precision (round to nearest even)"
                                 : "bfloat16 (round to nearest even)";
  c.params = {{"keep", nlohmann::json::array()}};
  c.reference = type == DType::F16 ? "IEEE 754 binary16" : "Google Brain bfloat16";
  c.run = [type](const TensorStore& in, const nlohmann::json& params, const CompressContext& ctx) {
    return run_float(type, in, params, ctx);
  };
  return c;
}

CompressorInfo quant_unit_int(int bits) {
  CompressorInfo c;
  c.name = "int" + std::to_string(bits);
  c.kind = "quantizer";
  c.summary = "INT" + std::to_string(bits) +
              " round-to-nearest, per channel or per group, sym/asym; fake-quant dense values (f16)";
  const int64_t default_group = bits == 8 ? -1 : 128;
  c.params = {{"bits", bits}, {"group_size", default_group}, {"sym", true}, {"storage", "f16"},
              {"keep", nlohmann::json::array()}};
  c.reference = "round-to-nearest baseline (Frantar et al. 2023, Dettmers et al. 2022)";
  c.run = [bits](const TensorStore& in, const nlohmann::json& params, const CompressContext& ctx)
      -> Result<CompressOutput> {
    SS_ASSIGN_OR_RETURN(IntRtnParams p, int_params(bits, params));
    SS_ASSIGN_OR_RETURN(PlanOverrides ov, plan_overrides_from_params(params));
    auto apply = [&](const Tensor& t, size_t) -> Result<TensorDecision> {
      SS_ASSIGN_OR_RETURN(Tensor out, quant_tensor_int_rtn(t, p));
      return TensorDecision{std::move(out), quant_int_rtn_name(p), quant_int_rtn_bits_per_weight(p, t.cols()),
                            "round to nearest"};
    };
    return run_tensor_plan(in, "int" + std::to_string(p.bits), params, ov, apply, ctx);
  };
  return c;
}

}  // namespace ss

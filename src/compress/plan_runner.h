// The loop every dense per-tensor compressor shares (internal to src/compress/): walk the store in
// order, copy what is not a weight matrix or is kept, hand the rest to the unit, and write one
// PlanEntry per tensor with honest bits/weight and the sparsity measured on the result.
// Not here: choosing types (the units do), files (formats/). Pruners may use it too.
#pragma once

#include <functional>
#include <string>

#include "safeshrink/compress.h"

namespace ss {

struct TensorDecision {
  Tensor out;              // the new tensor (same name and shape)
  std::string to_type;     // "q4_K", "int4-g128", "f16"
  double bits_per_weight;  // storage cost of `out` in its real format
  std::string reason;      // why this type ("preset q4_k_m", "rule attn_v=q6_k", "fallback: ...")
};

// index: position of the tensor in `in`. Called only for weight matrices that are not kept.
using TensorApplyFn = std::function<Result<TensorDecision>(const Tensor& t, size_t index)>;

Result<CompressOutput> run_tensor_plan(const TensorStore& in, const std::string& method, const nlohmann::json& params,
                                       const PlanOverrides& overrides, const TensorApplyFn& apply,
                                       const CompressContext& ctx);

// Fraction of exact zeros among the dequantized elements of t (0 for an empty tensor).
double tensor_sparsity(const Tensor& t);

}  // namespace ss

// Plumbing shared by the pruners in this folder: a tensor as floats, floats back into a tensor of
// a dtype that holds exact zeros, plan lines, and rewriting one integer of the model config in
// either GGUF metadata or the HF config.json a store carries. Internal to src/compress/prune/.
// Not here: any pruning rule (prune_masks.cpp, prune_sparsegpt.cpp, prune_structured.cpp).
#pragma once

#include <string>
#include <vector>

#include "safeshrink/compress.h"
#include "safeshrink/store.h"

namespace ss {

// The tensor as row-major floats (dequantized when it is a block type).
Result<std::vector<float>> pruned_read_f32(const Tensor& t);

// A heap tensor holding VALUES with SHAPE, in `like`'s dtype when that stores zeros exactly
// (f32, f16, bf16), else in f32 (block types cannot hold an arbitrary pruned pattern exactly).
Result<Tensor> pruned_tensor(const std::string& name, DType like, std::vector<int64_t> shape,
                             const std::vector<float>& values);

// A plan line; sparsity is the fraction of exact zeros in VALUES.
PlanEntry pruned_plan_entry(const Tensor& before, const Tensor& after, const std::vector<float>& values,
                            std::string reason);

// Sets one integer of the architecture config: GGUF "<arch>.<gguf_key>" (keeping the stored integer
// type) when the store has general.architecture, else the key `hf_key` of meta "hf.config_json".
Status pruned_set_config_int(TensorStore& store, const std::string& gguf_key, const std::string& hf_key, int64_t value);

// Fills plan.bits_per_weight from the entries (element-weighted over entries with tensors kept).
void pruned_finish_plan(CompressPlan& plan, const TensorStore& out);

}  // namespace ss

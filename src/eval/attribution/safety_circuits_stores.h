// Internal building blocks of the circuit analyses (safety_circuits.cpp, set_difference.cpp): stores
// that differ from a given one in a few tensors (a head's or an FFN group's columns zeroed, chosen
// weights zeroed), each modified tensor an F32 copy of the original (any dtype is dequantized), the
// rest shared with the input; scoring such a store; and the Wei et al. set difference on captured
// statistics. Exposed to tests (they include src/), not part of the public API (attribution.h).
// Not here: the probe and score_safety (safety_probe.cpp), the pruners that use the masks (compress/prune/).
// To add one more kind of ablation: a function returning the modified store, next to these.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "safeshrink/attribution.h"
#include "safeshrink/compress.h"
#include "safeshrink/store.h"

namespace ss {

// The store name of a block tensor of layer `layer` in the store's own spelling: GGUF kind
// ("attn_output", "ffn_down", ...) -> "blk.L.<kind>.weight" or its HF name. NOT_FOUND when absent.
Result<std::string> circuits_block_tensor_name(const TensorStore& store, int64_t layer, const std::string& gguf_kind);

// The store with each named tensor replaced by an F32 copy (values dequantized exactly as the
// kernels do), names and order unchanged. Used as the baseline so that an ablation changes values only.
Result<TensorStore> circuits_with_f32_copies(const TensorStore& store, const std::vector<std::string>& tensors);

// The store with columns [begin, end) of the 2-D tensor `tensor` zeroed (an F32 copy of it).
Result<TensorStore> circuits_with_columns_zeroed(const TensorStore& store, const std::string& tensor, int64_t begin,
                                                 int64_t end);

// Query head `head` of layer `layer` ablated: columns [head*hd, (head+1)*hd) of attn_output zeroed,
// hd = the config's head_dim. INVALID_ARGUMENT for a layer or head out of range.
Result<TensorStore> circuits_with_head_ablated(const TensorStore& store, int64_t layer, int64_t head);

// The store with every weight whose mask byte is 1 zeroed (F32 copies of the masked tensors). A mask
// must have the tensor's element count; a tensor name not in the store is NOT_FOUND.
Result<TensorStore> circuits_with_weights_zeroed(const TensorStore& store,
                                                 const std::map<std::string, std::vector<uint8_t>>& masks);

// The probe without benign prompts and neutral passages (ablations report harmful margins only).
SafetyProbe circuits_harmful_only(const SafetyProbe& probe);

// Binds a LlamaModel to the store and scores it with score_safety.
Result<SafetyScore> circuits_score_store(std::shared_ptr<const TensorStore> store, const SafetyProbe& probe,
                                         const LlamaModel* reference, ThreadPool* pool);

// The Wei et al. set difference on captured statistics, per output row of every block linear of
// `store` (the Wanda comparison group, as the authors' code): the floor(q * cols) weights with the
// largest |W_ij| * sqrt(safety.sum_sq_j), minus the floor(p * cols) largest by
// |W_ij| * sqrt(utility.sum_sq_j). Ties: the lower column index ranks higher. A block linear without
// statistics in either calibration is INVALID_ARGUMENT naming it.
Result<std::map<std::string, std::vector<uint8_t>>> circuits_set_difference_masks(const TensorStore& store,
                                                                                  const Calibration& safety,
                                                                                  const Calibration& utility,
                                                                                  double q, double p);

}  // namespace ss

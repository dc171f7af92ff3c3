// How far one model's tensors moved from another's: per tensor relative error ||A-B||/||A|| (both
// dequantized to F32), max |A-B|, sparsity and bits/weight of B, and totals. Works across formats
// and layouts: Llama stores in HF layout are brought to GGUF layout first (names mapped, q/k rows
// un-permuted, see llama_layout.h), so an HF safetensors original compares with a GGUF derivative.
// B's bits/weight come from its "safeshrink.plan" metadata when it has one (fake-quant tensors
// stored as F16 cost what the plan says), else from the dtype. Not here: printing (the CLI's diff).
// To add a per-tensor measure: one field in TensorDiff, computed in diff_stores, written in to_json.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

struct TensorDiff {
  std::string tensor;        // GGUF name when the stores are Llama models
  std::string a_type, b_type;
  int64_t numel = 0;
  double rel_error = 0;      // ||A - B||_2 / ||A||_2 (0 when A is all zero and B equals it)
  double max_abs_error = 0;
  double sparsity_a = 0, sparsity_b = 0;  // fraction of exact zeros
  double bits_per_weight_b = 0;
};

struct StoreDiff {
  std::vector<TensorDiff> tensors;        // in A's order, tensors present in both
  std::vector<std::string> only_in_a, only_in_b, shape_mismatch;
  double total_rel_error = 0;             // over all compared elements
  double max_abs_error = 0;
  double bits_per_weight_b = 0;           // element-weighted over compared tensors of >= 2 dims
  double sparsity_b = 0;                  // over compared tensors of >= 2 dims
  int64_t compared_elements = 0;
  // {"tensors":[...], "top":[names by rel_error, at most top_k], "totals":{...}, "only_in_a":...}
  nlohmann::json to_json(size_t top_k) const;
  std::vector<const TensorDiff*> top(size_t k) const;  // largest rel_error first
};

Result<StoreDiff> diff_stores(const TensorStore& a, const TensorStore& b);

}  // namespace ss

// Pruning with protected weights (issue 9, "prune --protect safety"): the mask rules of prune.h with
// a per-weight protect mask (1 = never prune; the safety-critical weights of the Wei et al. set
// difference, CompressContext::safety_critical). A protected weight is skipped and the next-lowest
// score is pruned instead, so the requested sparsity holds: per row for Wanda (a row with too few
// unprotected weights hands its deficit to the lowest remaining scores of the whole tensor), per
// tensor for magnitude, per column block for SparseGPT (a deficit moves on to the next blocks).
// Only when a tensor has fewer unprotected weights than the count to prune does the result fall
// short; *shortfall says by how many. Internal to src/compress/prune/ (and its tests).
// Not here: choosing the protected weights (eval/attribution/set_difference.cpp). N:M patterns are
// not offered with protection (a group cannot keep more than n weights).
#pragma once

#include <cstdint>
#include <vector>

#include "safeshrink/prune.h"
#include "safeshrink/status.h"

namespace ss {

// Magnitude: prunes the n_prune smallest |w| of w[0..n) among the unprotected weights.
std::vector<uint8_t> prune_magnitude_mask_protected(const float* w, int64_t n, int64_t n_prune, const uint8_t* protect,
                                                    int64_t* shortfall);

// Wanda, unstructured: floor(cols * sparsity) per row, lowest |W_ij|*sqrt(sum_sq_j) among the
// unprotected weights of the row; row deficits go to the tensor's lowest remaining scores.
Result<std::vector<uint8_t>> prune_wanda_mask_protected(const float* w, int64_t rows, int64_t cols,
                                                        const double* sum_sq, double sparsity, const uint8_t* protect,
                                                        int64_t* shortfall);

// SparseGPT (unstructured only when protect != nullptr) in place; protected weights are never
// zeroed (not even in dead columns) but, like every kept weight, receive the OBS error update.
// protect == nullptr is prune_sparsegpt_matrix.
Status prune_sparsegpt_matrix_protected(float* w, int64_t rows, int64_t cols, const double* xtx,
                                        const SparseGptOptions& opts, const uint8_t* protect, int64_t* shortfall);

}  // namespace ss

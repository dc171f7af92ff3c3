// Pruning building blocks behind the registered pruners (pruner_registry() in compress.h): keep-masks
// for one weight matrix (magnitude, global magnitude as torch.nn.utils.prune.global_unstructured with
// L1Unstructured, N:M, Wanda), the SparseGPT OBS update, and the structured pruners (attention heads,
// FFN channels, whole layers) that reduce shapes and rewrite the config. Matrices are row-major
// (out_features, in_features) floats; a mask byte is 1 = keep, 0 = pruned.
// Ties are broken by position: among equal scores the lower flat index is pruned first (torch's topk
// does not promise an order, so the PyTorch tests use tie-free data).
// Not here: choosing a unit from a spec (compress_variant), reading or writing files (formats/).
// To add a pruner: a function here or in src/compress/prune/<name>.cpp and one row in registry.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "safeshrink/compress.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

// torch's _compute_nparams_toprune for a float amount: round(amount * n), half to even.
int64_t prune_count_torch(double amount, int64_t n);

// Prunes the n_prune smallest |w| of w[0..n).
std::vector<uint8_t> prune_magnitude_mask(const float* w, int64_t n, int64_t n_prune);

// One threshold over all matrices: the n_prune smallest |w| of their concatenation (in the given
// order) are pruned. Returns one mask per matrix.
std::vector<std::vector<uint8_t>> prune_global_magnitude_masks(const std::vector<const float*>& ws,
                                                               const std::vector<int64_t>& sizes, int64_t n_prune);

// N:M: in every group of m consecutive inputs of a row, keep the n largest |w| (cols % m == 0).
Result<std::vector<uint8_t>> prune_nm_mask(const float* w, int64_t rows, int64_t cols, int n, int m);

// Wanda (Sun et al. 2023): score |W_ij| * sqrt(sum_sq_j). With m == 0 prunes floor(cols * sparsity)
// lowest scores per output row (the paper's per-output comparison group); with n:m keeps the n
// best scores of every m consecutive inputs.
Result<std::vector<uint8_t>> prune_wanda_mask(const float* w, int64_t rows, int64_t cols, const double* sum_sq,
                                              double sparsity, int n = 0, int m = 0);

struct SparseGptOptions {
  double sparsity = 0.5;     // used when m == 0: fraction pruned in every (rows x block) block
  int n = 0, m = 0;          // n:m when m > 0 (n kept of every m consecutive inputs)
  int64_t block_size = 128;  // columns per lazy-update block (the paper's B)
  double damp = 0.01;        // added to the diagonal: damp * mean(diag(H))
};
// SparseGPT (Frantar & Alistarh 2023) on one matrix, in place. xtx is the (cols x cols) sum of x x^T
// of the layer's inputs (any positive scale). Columns whose diagonal is 0 (never active) are zeroed.
// Per block of columns: the mask is the floor(rows*block*sparsity) smallest w^2 / [H^-1]_jj^2 (or n:m
// per group), then column by column the pruned weights are zeroed and the error is spread over the
// remaining columns with the upper Cholesky factor of H^-1. Computed in double.
Status prune_sparsegpt_matrix(float* w, int64_t rows, int64_t cols, const double* xtx, const SparseGptOptions& opts);

// The matrices the unstructured pruners touch: 2-D weights of a transformer block's linear layers
// (GGUF "blk.N.attn_q.weight" ... "ffn_down", HF "model.layers.N.self_attn.q_proj.weight" ...).
// Embeddings, the output head and norms are left dense. Also the vision classifiers' weights
// "conv.<i>.weight" (4-D, pruned as (out, in*kh*kw) rows) and "fc.<i>.weight" (vision.h).
bool prune_is_block_linear(const std::string& tensor_name);

// Structured pruners. They need a Llama-family store (llama_config_from_store) and keep the layer
// shapes uniform, because LlamaModel has one head count and one intermediate size for all layers.
// heads: removes round(fraction * n_kv_heads) whole KV groups (a kv head with the query heads that
// share it; plain multi-head attention: single heads) in every layer, the ones with the smallest
// sum of ||W_o[:, head]||_F. channels: removes round(fraction * intermediate_size) FFN channels per
// layer, the ones with the smallest ||W_down[:, j]||_2 * ||W_up[j, :]||_2. layers: removes `count`
// whole layers with the smallest ||W_o||_F + ||W_down||_F (the two writes into the residual
// stream) and renumbers the rest.
Result<CompressOutput> prune_heads(const TensorStore& in, double fraction);
Result<CompressOutput> prune_channels(const TensorStore& in, double fraction);
Result<CompressOutput> prune_layers(const TensorStore& in, int64_t count);

}  // namespace ss

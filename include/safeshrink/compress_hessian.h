// Hessian machinery shared by the second-order compressors (GPTQ in compress/quant/gptq.cpp,
// SparseGPT in compress/prune/). For a linear layer y = W x with calibration inputs X (rows x k),
// the layer-wise squared error ||W X^T - Ŵ X^T||^2 has Hessian H = 2 X^T X / n (k x k). These
// functions build H from the accumulated sums of LinearInputStats, mark dead input columns, dampen
// the diagonal, order columns by act-order and give the upper Cholesky factor U of H^-1
// (H^-1 = U^T U), whose rows drive the OBS error feedback. All matrices are dense, row-major,
// double precision, k*k. Eigen is an implementation detail (not exposed here).
// Not here: the quantization or pruning rule itself (gptq.cpp, sparsegpt.cpp), capturing the
// activations (model/calibration). To add one more helper: declare it here with its contract,
// define it in src/compress/hessian.cpp, test it in tests/reference/test_gptq_hessian.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "safeshrink/status.h"

namespace ss {

// H = 2 * xtx / rows (xtx = sum over rows of x x^T, k*k). Errors when rows <= 0 or sizes disagree.
Result<std::vector<double>> hessian_from_xtx(const std::vector<double>& xtx, int64_t k, int64_t rows);

// Dead input columns: H[i][i] == 0 (the input was always zero). Sets H[i][i] = 1 so H stays
// invertible and returns a k-long mask (1 = dead). The caller zeroes those columns of W.
std::vector<uint8_t> hessian_mark_dead_columns(std::vector<double>& h, int64_t k);

// Adds percdamp * mean(diag(H)) to every diagonal element (GPTQ's "damp_percent", default 0.01).
// Errors when percdamp < 0 or the mean diagonal is not positive and finite.
Status hessian_dampen(std::vector<double>& h, int64_t k, double percdamp);

// Act-order: the column order by descending diag(H) (stable for ties). perm[new] = old.
std::vector<int64_t> hessian_act_order(const std::vector<double>& h, int64_t k);

// P H P^T for a column order perm (perm[new] = old): out[i][j] = h[perm[i]][perm[j]].
std::vector<double> hessian_permute(const std::vector<double>& h, int64_t k, const std::vector<int64_t>& perm);

// The upper-triangular U with H^-1 = U^T U (row-major k*k, zeros below the diagonal): Cholesky of
// H, inverse, then the upper Cholesky factor of the inverse, as in GPTQ's Algorithm 1.
// Errors (INVALID_ARGUMENT, naming the failing stage) when H is not positive definite; callers
// typically retry with more dampening.
Result<std::vector<double>> hessian_inverse_cholesky_upper(const std::vector<double>& h, int64_t k);

// H^-1 (row-major k*k) through the Cholesky factorization; errors like the function above.
Result<std::vector<double>> hessian_inverse(const std::vector<double>& h, int64_t k);

}  // namespace ss

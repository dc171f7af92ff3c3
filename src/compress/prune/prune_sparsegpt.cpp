// SparseGPT (Frantar & Alistarh 2023, "Massive Language Models Can Be Accurately Pruned in One-Shot")
// on one weight matrix: the OBS update with the upper Cholesky factor of the inverse Hessian, lazy
// updates in blocks of columns, the mask chosen per block (adaptive) or per n:m group.
// The dampening, dead-column and inverse-Cholesky steps are the shared helpers of
// compress_hessian.h (the same as GPTQ's). With a protect mask (prune_protect.h) protected
// weights are never chosen for the mask. Not here: capturing X^T X (calibration), choosing
// which tensors to prune (registry.cpp). To add a variant: a field in SparseGptOptions.
#include <Eigen/Dense>
#include <algorithm>
#include <limits>
#include <cmath>
#include <numeric>

#include "prune_protect.h"
#include "safeshrink/compress_hessian.h"
#include "safeshrink/prune.h"

namespace ss {
namespace {

using MatrixRM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The k smallest of score[0..n) set to 0 in keep (ties: lower index first).
void mark_smallest(const std::vector<double>& score, int64_t k, std::vector<uint8_t>& keep) {
  const int64_t n = static_cast<int64_t>(score.size());
  k = std::min(k, n);
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [&](int64_t a, int64_t b) {
    return score[a] < score[b] || (score[a] == score[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i) keep[idx[i]] = 0;
}

}  // namespace

Status prune_sparsegpt_matrix(float* w, int64_t rows, int64_t cols, const double* xtx, const SparseGptOptions& o) {
  return prune_sparsegpt_matrix_protected(w, rows, cols, xtx, o, nullptr, nullptr);
}

Status prune_sparsegpt_matrix_protected(float* w, int64_t rows, int64_t cols, const double* xtx,
                                        const SparseGptOptions& o, const uint8_t* protect, int64_t* shortfall) {
  if (shortfall) *shortfall = 0;
  if (protect && o.m > 0) return invalid_argument("sparsegpt: protected weights need unstructured sparsity (m = 0), got n:m");
  if (rows <= 0 || cols <= 0) return invalid_argument("sparsegpt: empty matrix");
  if (o.block_size <= 0) return invalid_argument("sparsegpt: block_size has to be positive, got " + std::to_string(o.block_size));
  if (!(o.damp > 0.0)) return invalid_argument("sparsegpt: damp has to be positive, got " + std::to_string(o.damp));
  if (o.m > 0) {
    if (o.n < 0 || o.n > o.m) return invalid_argument("sparsegpt: n:m needs 0 <= n <= m");
    if (cols % o.m != 0 || o.block_size % o.m != 0)
      return invalid_argument("sparsegpt: n:m needs cols (" + std::to_string(cols) + ") and block_size (" +
                              std::to_string(o.block_size) + ") to be multiples of m = " + std::to_string(o.m));
  } else if (!(o.sparsity >= 0.0 && o.sparsity <= 1.0)) {
    return invalid_argument("sparsegpt: sparsity has to be in [0, 1], got " + std::to_string(o.sparsity));
  }

  MatrixRM W(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) W.data()[i] = w[i];
  std::vector<double> h(xtx, xtx + cols * cols);
  for (int64_t j = 0; j < cols; ++j)
    if (!std::isfinite(h[j * cols + j]) || h[j * cols + j] < 0)
      return invalid_argument("sparsegpt: X^T X diagonal " + std::to_string(j) + " is negative or not finite");
  const std::vector<uint8_t> dead = hessian_mark_dead_columns(h, cols);  // never active: prune them
  for (int64_t j = 0; j < cols; ++j)
    if (dead[j])
      for (int64_t r = 0; r < rows; ++r)
        if (!protect || !protect[r * cols + j]) W(r, j) = 0.0;
  SS_RETURN_IF_ERROR(hessian_dampen(h, cols, o.damp).with_context("sparsegpt"));
  // U: upper Cholesky factor of H^-1 (H^-1 = U^T U), the shared GPTQ/SparseGPT helper.
  SS_ASSIGN_OR_RETURN(std::vector<double> u, hessian_inverse_cholesky_upper(h, cols));
  const Eigen::Map<const MatrixRM> U(u.data(), cols, cols);

  int64_t deficit = 0;  // protected weights that a block could not replace, carried to the next blocks
  for (int64_t i1 = 0; i1 < cols; i1 += o.block_size) {
    const int64_t i2 = std::min(i1 + o.block_size, cols), count = i2 - i1;
    MatrixRM W1 = W.middleCols(i1, count);
    MatrixRM Err1 = MatrixRM::Zero(rows, count);
    std::vector<uint8_t> keep(static_cast<size_t>(rows * count), 1);  // (rows, count)
    if (o.m == 0) {
      std::vector<double> score(static_cast<size_t>(rows * count));
      int64_t unprotected = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < count; ++c) {
          const double d = U(i1 + c, i1 + c);
          score[r * count + c] = W1(r, c) * W1(r, c) / (d * d);
          if (protect && protect[r * cols + i1 + c]) score[r * count + c] = std::numeric_limits<double>::infinity();
          else ++unprotected;
        }
      int64_t k = static_cast<int64_t>(std::floor(static_cast<double>(rows * count) * o.sparsity)) + deficit;
      deficit = std::max<int64_t>(0, k - unprotected);
      mark_smallest(score, k - deficit, keep);
    }
    for (int64_t c = 0; c < count; ++c) {
      if (o.m > 0 && c % o.m == 0) {  // n:m: choose the group's mask from the updated weights
        std::vector<double> score(static_cast<size_t>(o.m));
        std::vector<uint8_t> gkeep;
        for (int64_t r = 0; r < rows; ++r) {
          for (int j = 0; j < o.m; ++j) {
            const double d = U(i1 + c + j, i1 + c + j);
            score[j] = W1(r, c + j) * W1(r, c + j) / (d * d);
          }
          gkeep.assign(static_cast<size_t>(o.m), 1);
          mark_smallest(score, o.m - o.n, gkeep);
          for (int j = 0; j < o.m; ++j) keep[r * count + c + j] = gkeep[j];
        }
      }
      const double d = U(i1 + c, i1 + c);
      for (int64_t r = 0; r < rows; ++r) {
        const double wv = W1(r, c);
        const double q = keep[r * count + c] ? wv : 0.0;
        const double err = (wv - q) / d;
        Err1(r, c) = err;
        W1(r, c) = q;
        if (err != 0.0)
          for (int64_t j = c + 1; j < count; ++j) W1(r, j) -= err * U(i1 + c, i1 + j);
      }
    }
    W.middleCols(i1, count) = W1;
    if (i2 < cols) W.rightCols(cols - i2).noalias() -= Err1 * U.block(i1, i2, count, cols - i2);
  }
  for (int64_t i = 0; i < rows * cols; ++i) w[i] = static_cast<float>(W.data()[i]);
  if (shortfall) *shortfall = deficit;
  return ok_status();
}

}  // namespace ss

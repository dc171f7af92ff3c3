// Hessian helpers for GPTQ and SparseGPT (contract in include/safeshrink/compress_hessian.h):
// building H = 2 X^T X / n, dead columns, dampening, act-order and the upper Cholesky factor of
// H^-1, in double precision with Eigen's LLT. Not here: any quantization or pruning rule.
// To add one more helper: declare it in the header, define it here next to its neighbours.
#include "safeshrink/compress_hessian.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include <Eigen/Cholesky>
#include <Eigen/Dense>

namespace ss {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Status check_square(const std::vector<double>& h, int64_t k, const char* what) {
  if (k <= 0) return invalid_argument(std::string(what) + ": k must be positive, got " + std::to_string(k));
  if (static_cast<uint64_t>(h.size()) != static_cast<uint64_t>(k) * static_cast<uint64_t>(k))
    return invalid_argument(std::string(what) + ": expected " + std::to_string(k) + "x" + std::to_string(k) +
                            " elements, got " + std::to_string(h.size()));
  return ok_status();
}

Result<RowMatrix> inverse_matrix(const std::vector<double>& h, int64_t k) {
  SS_RETURN_IF_ERROR(check_square(h, k, "hessian inverse"));
  Eigen::Map<const RowMatrix> hm(h.data(), k, k);
  Eigen::LLT<RowMatrix> llt(hm);
  if (llt.info() != Eigen::Success)
    return invalid_argument("hessian inverse: Cholesky of H failed (not positive definite; increase dampening)");
  RowMatrix inv = llt.solve(RowMatrix::Identity(k, k));
  inv = 0.5 * (inv + inv.transpose()).eval();  // exact symmetry for the second factorization
  if (!inv.allFinite()) return invalid_argument("hessian inverse: H^-1 is not finite");
  return inv;
}

}  // namespace

Result<std::vector<double>> hessian_from_xtx(const std::vector<double>& xtx, int64_t k, int64_t rows) {
  SS_RETURN_IF_ERROR(check_square(xtx, k, "hessian_from_xtx"));
  if (rows <= 0) return invalid_argument("hessian_from_xtx: rows must be positive, got " + std::to_string(rows));
  std::vector<double> h(xtx.size());
  const double s = 2.0 / static_cast<double>(rows);
  for (size_t i = 0; i < xtx.size(); ++i) h[i] = s * xtx[i];
  return h;
}

std::vector<uint8_t> hessian_mark_dead_columns(std::vector<double>& h, int64_t k) {
  std::vector<uint8_t> dead(static_cast<size_t>(std::max<int64_t>(k, 0)), 0);
  if (check_square(h, k, "dead").ok() == false) return dead;
  for (int64_t i = 0; i < k; ++i) {
    if (h[i * k + i] == 0.0) {
      dead[i] = 1;
      h[i * k + i] = 1.0;
    }
  }
  return dead;
}

Status hessian_dampen(std::vector<double>& h, int64_t k, double percdamp) {
  SS_RETURN_IF_ERROR(check_square(h, k, "hessian_dampen"));
  if (!(percdamp >= 0.0) || !std::isfinite(percdamp))
    return invalid_argument("hessian_dampen: damp has to be a non-negative number, got " + std::to_string(percdamp));
  double mean = 0;
  for (int64_t i = 0; i < k; ++i) mean += h[i * k + i];
  mean /= static_cast<double>(k);
  if (!(mean > 0.0) || !std::isfinite(mean))
    return invalid_argument("hessian_dampen: mean diagonal must be positive and finite, got " + std::to_string(mean));
  const double add = percdamp * mean;
  for (int64_t i = 0; i < k; ++i) h[i * k + i] += add;
  return ok_status();
}

std::vector<int64_t> hessian_act_order(const std::vector<double>& h, int64_t k) {
  std::vector<int64_t> perm(static_cast<size_t>(std::max<int64_t>(k, 0)));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  if (!check_square(h, k, "act_order").ok()) return perm;
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return h[a * k + a] > h[b * k + b]; });
  return perm;
}

std::vector<double> hessian_permute(const std::vector<double>& h, int64_t k, const std::vector<int64_t>& perm) {
  std::vector<double> out(h.size());
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) out[i * k + j] = h[perm[i] * k + perm[j]];
  return out;
}

Result<std::vector<double>> hessian_inverse(const std::vector<double>& h, int64_t k) {
  SS_ASSIGN_OR_RETURN(RowMatrix inv, inverse_matrix(h, k));
  return std::vector<double>(inv.data(), inv.data() + inv.size());
}

Result<std::vector<double>> hessian_inverse_cholesky_upper(const std::vector<double>& h, int64_t k) {
  SS_ASSIGN_OR_RETURN(RowMatrix inv, inverse_matrix(h, k));
  Eigen::LLT<RowMatrix> llt(inv);
  if (llt.info() != Eigen::Success)
    return invalid_argument("hessian inverse Cholesky: Cholesky of H^-1 failed (increase dampening)");
  RowMatrix upper = llt.matrixU();  // H^-1 = U^T U
  return std::vector<double>(upper.data(), upper.data() + upper.size());
}

}  // namespace ss

// Magnitude and Wanda masks with protected weights (see prune_protect.h): the same scores and tie
// rule as prune_masks.cpp (the lower flat index is pruned first among equal scores), with protected
// weights removed from the candidates. With nothing protected the masks equal the plain ones.
// Not here: SparseGPT's protected variant (prune_sparsegpt.cpp), the store loop (registry.cpp).
// To protect one more rule: a *_protected twin here that skips protect[i] == 1.
#include <algorithm>
#include <cmath>

#include "prune_protect.h"

namespace ss {
namespace {

// Sets keep = 0 for the k smallest scores among candidates (indices into score); returns how many
// were pruned (min(k, candidates)).
int64_t prune_smallest_of(const std::vector<double>& score, std::vector<int64_t>& candidates, int64_t k,
                          uint8_t* keep, int64_t offset) {
  k = std::min<int64_t>(k, static_cast<int64_t>(candidates.size()));
  if (k <= 0) return 0;
  std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end(), [&](int64_t a, int64_t b) {
    return score[a] < score[b] || (score[a] == score[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i) keep[offset + candidates[static_cast<size_t>(i)]] = 0;
  return k;
}

}  // namespace

std::vector<uint8_t> prune_magnitude_mask_protected(const float* w, int64_t n, int64_t n_prune, const uint8_t* protect,
                                                    int64_t* shortfall) {
  std::vector<uint8_t> keep(static_cast<size_t>(n), 1);
  std::vector<double> score(static_cast<size_t>(n));
  std::vector<int64_t> candidates;
  for (int64_t i = 0; i < n; ++i) {
    score[i] = std::fabs(w[i]);
    if (!protect || !protect[i]) candidates.push_back(i);
  }
  const int64_t done = prune_smallest_of(score, candidates, n_prune, keep.data(), 0);
  if (shortfall) *shortfall = std::max<int64_t>(0, n_prune - done);
  return keep;
}

Result<std::vector<uint8_t>> prune_wanda_mask_protected(const float* w, int64_t rows, int64_t cols,
                                                        const double* sum_sq, double sparsity, const uint8_t* protect,
                                                        int64_t* shortfall) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0))
    return invalid_argument("wanda: sparsity has to be in [0, 1], got " + std::to_string(sparsity));
  std::vector<double> norm(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    if (!(sum_sq[j] >= 0.0)) return invalid_argument("wanda: calibration sum of squares of input " + std::to_string(j) + " is negative or NaN");
    norm[j] = std::sqrt(sum_sq[j]);
  }
  const int64_t k = static_cast<int64_t>(std::floor(static_cast<double>(cols) * sparsity));
  std::vector<uint8_t> keep(static_cast<size_t>(rows * cols), 1);
  std::vector<double> score(static_cast<size_t>(cols));
  std::vector<int64_t> candidates;
  int64_t deficit = 0;
  for (int64_t r = 0; r < rows; ++r) {
    candidates.clear();
    for (int64_t j = 0; j < cols; ++j) {
      score[j] = std::fabs(static_cast<double>(w[r * cols + j])) * norm[j];
      if (!protect || !protect[r * cols + j]) candidates.push_back(j);
    }
    deficit += k - prune_smallest_of(score, candidates, k, keep.data(), r * cols);
  }
  if (deficit > 0) {  // rows that had too few unprotected weights: the tensor's lowest remaining scores
    std::vector<double> all(static_cast<size_t>(rows * cols));
    std::vector<int64_t> rest;
    for (int64_t i = 0; i < rows * cols; ++i) {
      all[i] = std::fabs(static_cast<double>(w[i])) * norm[i % cols];
      if (keep[i] && (!protect || !protect[i])) rest.push_back(i);
    }
    deficit -= prune_smallest_of(all, rest, deficit, keep.data(), 0);
  }
  if (shortfall) *shortfall = deficit;
  return keep;
}

}  // namespace ss

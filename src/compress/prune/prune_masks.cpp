// Keep-masks for one weight matrix: magnitude (per tensor and global), N:M and Wanda (see
// include/safeshrink/prune.h). Pure functions over float arrays; no stores, no files.
// Not here: the OBS update of SparseGPT (prune_sparsegpt.cpp), structured pruning
// (prune_structured.cpp). To add a mask rule: one function here, declared in prune.h.
#include <algorithm>
#include <cfenv>
#include <cmath>
#include <numeric>

#include "safeshrink/prune.h"

namespace ss {
namespace {

// Indices of the k smallest scores, ties broken by lower index first.
template <class Score>
void mark_smallest(const Score* score, int64_t n, int64_t k, uint8_t* keep, int64_t stride = 1) {
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  auto less = [&](int64_t a, int64_t b) {
    const auto sa = score[a * stride], sb = score[b * stride];
    return sa < sb || (sa == sb && a < b);
  };
  k = std::min(k, n);
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), less);
  for (int64_t i = 0; i < k; ++i) keep[idx[static_cast<size_t>(i)] * stride] = 0;
}

Status check_nm(int64_t cols, int n, int m) {
  if (m <= 0 || n < 0 || n > m)
    return invalid_argument("n:m pruning needs 0 <= n <= m and m > 0, got " + std::to_string(n) + ":" + std::to_string(m));
  if (cols % m != 0)
    return invalid_argument("n:m pruning needs the input width (" + std::to_string(cols) + ") to be a multiple of m = " +
                            std::to_string(m));
  return ok_status();
}

}  // namespace

int64_t prune_count_torch(double amount, int64_t n) {
  const int old = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(amount * static_cast<double>(n));  // half to even, as Python's round
  std::fesetround(old);
  return std::clamp(static_cast<int64_t>(r), int64_t{0}, n);
}

std::vector<uint8_t> prune_magnitude_mask(const float* w, int64_t n, int64_t n_prune) {
  std::vector<uint8_t> keep(static_cast<size_t>(n), 1);
  std::vector<float> score(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) score[i] = std::fabs(w[i]);
  mark_smallest(score.data(), n, n_prune, keep.data());
  return keep;
}

std::vector<std::vector<uint8_t>> prune_global_magnitude_masks(const std::vector<const float*>& ws,
                                                               const std::vector<int64_t>& sizes, int64_t n_prune) {
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  std::vector<float> score(static_cast<size_t>(total));
  int64_t at = 0;
  for (size_t t = 0; t < ws.size(); ++t)
    for (int64_t i = 0; i < sizes[t]; ++i) score[at++] = std::fabs(ws[t][i]);
  std::vector<uint8_t> keep(static_cast<size_t>(total), 1);
  mark_smallest(score.data(), total, n_prune, keep.data());
  std::vector<std::vector<uint8_t>> out(ws.size());
  at = 0;
  for (size_t t = 0; t < ws.size(); ++t) {
    out[t].assign(keep.begin() + at, keep.begin() + at + sizes[t]);
    at += sizes[t];
  }
  return out;
}

Result<std::vector<uint8_t>> prune_nm_mask(const float* w, int64_t rows, int64_t cols, int n, int m) {
  SS_RETURN_IF_ERROR(check_nm(cols, n, m));
  std::vector<uint8_t> keep(static_cast<size_t>(rows * cols), 1);
  std::vector<float> score(static_cast<size_t>(m));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += m) {
      const int64_t base = r * cols + g;
      for (int j = 0; j < m; ++j) score[j] = std::fabs(w[base + j]);
      mark_smallest(score.data(), m, m - n, keep.data() + base);
    }
  return keep;
}

Result<std::vector<uint8_t>> prune_wanda_mask(const float* w, int64_t rows, int64_t cols, const double* sum_sq,
                                              double sparsity, int n, int m) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0))
    return invalid_argument("wanda: sparsity has to be in [0, 1], got " + std::to_string(sparsity));
  if (m > 0) SS_RETURN_IF_ERROR(check_nm(cols, n, m));
  std::vector<double> norm(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    if (!(sum_sq[j] >= 0.0)) return invalid_argument("wanda: calibration sum of squares of input " + std::to_string(j) + " is negative or NaN");
    norm[j] = std::sqrt(sum_sq[j]);
  }
  std::vector<uint8_t> keep(static_cast<size_t>(rows * cols), 1);
  std::vector<double> score(static_cast<size_t>(cols));
  const int64_t k = static_cast<int64_t>(std::floor(static_cast<double>(cols) * sparsity));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) score[j] = std::fabs(static_cast<double>(w[r * cols + j])) * norm[j];
    if (m > 0) {
      for (int64_t g = 0; g < cols; g += m) mark_smallest(score.data() + g, m, m - n, keep.data() + r * cols + g);
    } else {
      mark_smallest(score.data(), cols, k, keep.data() + r * cols);
    }
  }
  return keep;
}

bool prune_is_block_linear(const std::string& name) {
  static const char* const kSuffixes[] = {
      ".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_output.weight", ".ffn_gate.weight",
      ".ffn_up.weight", ".ffn_down.weight", ".self_attn.q_proj.weight", ".self_attn.k_proj.weight",
      ".self_attn.v_proj.weight", ".self_attn.o_proj.weight", ".mlp.gate_proj.weight", ".mlp.up_proj.weight",
      ".mlp.down_proj.weight"};
  // The vision classifiers (model/vision): "conv.<i>.weight" (pruned as its (out, in*kh*kw) rows)
  // and "fc.<i>.weight"; a name of that exact form is never a transformer tensor.
  for (const std::string_view head : {std::string_view("conv."), std::string_view("fc.")}) {
    if (name.rfind(head, 0) != 0) continue;
    const size_t dot = name.find('.', head.size());
    if (dot == std::string::npos || dot == head.size() || name.compare(dot, std::string::npos, ".weight") != 0) return false;
    for (size_t i = head.size(); i < dot; ++i)
      if (name[i] < '0' || name[i] > '9') return false;
    return true;
  }
  const bool block = name.rfind("blk.", 0) == 0 || name.rfind("model.layers.", 0) == 0;
  if (!block) return false;
  for (const char* s : kSuffixes) {
    const std::string_view suf(s);
    if (name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0) return true;
  }
  return false;
}

}  // namespace ss

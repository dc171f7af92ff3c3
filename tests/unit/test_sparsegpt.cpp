// SparseGPT on one layer with correlated calibration inputs: the output error ||W X^T - Ŵ X^T||_F
// must be clearly lower than magnitude pruning's at the same sparsity (and, for 2:4, than N:M by
// magnitude). The reference is the definition of the error itself, computed here in double.
// The torch re-statement of the algorithm is checked in tests/reference/test_prune_torch.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "safeshrink/prune.h"
#include "safeshrink/rng.h"

namespace {

struct Layer {
  int64_t rows = 64, cols = 256, samples = 1024;
  std::vector<float> w;
  std::vector<double> x, xtx;
};

double gauss(ss::Rng& rng) {
  const double u1 = (static_cast<double>(rng.next_u64() >> 11) + 1.0) / 9007199254740993.0;
  const double u2 = static_cast<double>(rng.next_u64() >> 11) / 9007199254740992.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

Layer make_layer(uint64_t seed) {
  Layer L;
  ss::Rng rng(seed);
  for (int64_t i = 0; i < L.rows * L.cols; ++i) L.w.push_back(static_cast<float>(gauss(rng)));
  L.x.resize(static_cast<size_t>(L.samples * L.cols));
  for (int64_t s = 0; s < L.samples; ++s) {
    double z[16];
    for (double& v : z) v = gauss(rng);
    for (int64_t j = 0; j < L.cols; ++j) L.x[s * L.cols + j] = z[j % 16] * (0.5 + (j % 7)) + 0.2 * gauss(rng);
  }
  L.xtx.assign(static_cast<size_t>(L.cols * L.cols), 0.0);
  for (int64_t s = 0; s < L.samples; ++s)
    for (int64_t a = 0; a < L.cols; ++a)
      for (int64_t b = 0; b < L.cols; ++b) L.xtx[a * L.cols + b] += L.x[s * L.cols + a] * L.x[s * L.cols + b];
  return L;
}

// ||(W - Ŵ) X^T||_F / ||W X^T||_F
double output_error(const Layer& L, const std::vector<float>& pruned) {
  double num = 0, den = 0;
  for (int64_t s = 0; s < L.samples; ++s)
    for (int64_t r = 0; r < L.rows; ++r) {
      double y = 0, dy = 0;
      for (int64_t j = 0; j < L.cols; ++j) {
        const double xv = L.x[s * L.cols + j];
        y += L.w[r * L.cols + j] * xv;
        dy += (static_cast<double>(L.w[r * L.cols + j]) - pruned[r * L.cols + j]) * xv;
      }
      num += dy * dy;
      den += y * y;
    }
  return std::sqrt(num / den);
}

std::vector<float> masked(const std::vector<float>& w, const std::vector<uint8_t>& keep) {
  std::vector<float> out = w;
  for (size_t i = 0; i < out.size(); ++i)
    if (!keep[i]) out[i] = 0.0f;
  return out;
}

double sparsity(const std::vector<float>& w) {
  int64_t z = 0;
  for (float v : w) z += v == 0.0f;
  return static_cast<double>(z) / static_cast<double>(w.size());
}

TEST(SparseGpt, LowerOutputErrorThanMagnitudeAtHalfSparsity) {
  const Layer L = make_layer(7);
  const int64_t n = L.rows * L.cols;
  const auto mag = masked(L.w, ss::prune_magnitude_mask(L.w.data(), n, n / 2));
  std::vector<float> sg = L.w;
  ss::SparseGptOptions o;
  o.sparsity = 0.5;
  ASSERT_TRUE(ss::prune_sparsegpt_matrix(sg.data(), L.rows, L.cols, L.xtx.data(), o).ok());
  EXPECT_NEAR(sparsity(sg), 0.5, 1e-12);  // floor(64*128*0.5) per block, exactly half
  const double e_mag = output_error(L, mag), e_sg = output_error(L, sg);
  std::printf("relative output error at 50%%: magnitude %.4f, sparsegpt %.4f\n", e_mag, e_sg);
  EXPECT_LT(e_sg, 0.5 * e_mag);  // margin: at least half the error
}

TEST(SparseGpt, TwoFourLowerOutputErrorThanMagnitudeTwoFour) {
  const Layer L = make_layer(8);
  auto keep = ss::prune_nm_mask(L.w.data(), L.rows, L.cols, 2, 4);
  ASSERT_TRUE(keep.ok());
  const auto nm = masked(L.w, *keep);
  std::vector<float> sg = L.w;
  ss::SparseGptOptions o;
  o.n = 2;
  o.m = 4;
  ASSERT_TRUE(ss::prune_sparsegpt_matrix(sg.data(), L.rows, L.cols, L.xtx.data(), o).ok());
  for (int64_t r = 0; r < L.rows; ++r)
    for (int64_t g = 0; g < L.cols; g += 4) {
      int nz = 0;
      for (int j = 0; j < 4; ++j) nz += sg[r * L.cols + g + j] != 0.0f;
      ASSERT_LE(nz, 2) << "row " << r << " group " << g;
    }
  const double e_nm = output_error(L, nm), e_sg = output_error(L, sg);
  std::printf("relative output error at 2:4: magnitude %.4f, sparsegpt %.4f\n", e_nm, e_sg);
  EXPECT_LT(e_sg, 0.5 * e_nm);
}

TEST(SparseGpt, RejectsBadOptionsAndNonPositiveHessian) {
  const Layer L = make_layer(9);
  std::vector<float> w = L.w;
  ss::SparseGptOptions o;
  o.sparsity = 1.5;
  EXPECT_FALSE(ss::prune_sparsegpt_matrix(w.data(), L.rows, L.cols, L.xtx.data(), o).ok());
  o = {};
  o.n = 2;
  o.m = 3;  // 256 is not a multiple of 3
  EXPECT_FALSE(ss::prune_sparsegpt_matrix(w.data(), L.rows, L.cols, L.xtx.data(), o).ok());
  std::vector<double> bad = L.xtx;
  bad[5 * L.cols + 5] = -1.0;
  EXPECT_FALSE(ss::prune_sparsegpt_matrix(w.data(), L.rows, L.cols, bad.data(), {}).ok());
}

TEST(SparseGpt, DeadInputsArePruned) {
  Layer L = make_layer(10);
  for (int64_t j = 0; j < L.cols; ++j) L.xtx[3 * L.cols + j] = L.xtx[j * L.cols + 3] = 0.0;  // input 3 never active
  std::vector<float> w = L.w;
  ASSERT_TRUE(ss::prune_sparsegpt_matrix(w.data(), L.rows, L.cols, L.xtx.data(), {}).ok());
  for (int64_t r = 0; r < L.rows; ++r) EXPECT_EQ(w[r * L.cols + 3], 0.0f);
}

}  // namespace

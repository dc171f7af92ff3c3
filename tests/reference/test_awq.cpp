// AWQ scale search on one layer whose inputs have a few salient (large-magnitude) channels, as
// LLM activations do: (1) the chosen alpha gives an output error at least 10% below plain
// round-to-nearest (alpha 0) at 4 bits / group 32; (2) alpha, the error and the scales equal a
// PyTorch re-statement of the paper's search (tests/py/awq_reference.py), which measures the error
// with the real X where we use X^T X (relative tolerance 1e-6 on the error, 1e-6 on scales);
// (3) output_error_from_xtx equals the direct ||X W^T - X Ŵ^T||^2 (1e-9 relative).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "safeshrink/quant_gptq_awq.h"
#include "safeshrink/rng.h"
#include "test_support.h"

namespace {

struct Layer {
  int64_t rows, k, n;
  std::vector<float> w, x;
  std::vector<double> mean_abs, xtx;
};

Layer make_layer(int64_t rows, int64_t k, int64_t n, uint64_t seed) {
  ss::Rng rng(seed);
  Layer L{rows, k, n, std::vector<float>(rows * k), std::vector<float>(n * k), std::vector<double>(k, 0.0),
          std::vector<double>(k * k, 0.0)};
  for (auto& v : L.w) v = static_cast<float>(rng.normal() * 0.05);
  std::vector<double> mag(k, 1.0);
  for (int64_t c = 0; c < k; ++c) mag[c] = (c % 17 == 3) ? 20.0 : std::exp(0.3 * rng.normal());  // salient channels
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) L.x[r * k + c] = static_cast<float>(rng.normal() * mag[c]);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) {
      L.mean_abs[i] += std::fabs(L.x[r * k + i]) / static_cast<double>(n);
      for (int64_t j = 0; j < k; ++j) L.xtx[i * k + j] += double(L.x[r * k + i]) * L.x[r * k + j];
    }
  return L;
}

TEST(Awq, OutputErrorFromXtxEqualsDirect) {
  const Layer L = make_layer(8, 32, 100, 1);
  std::vector<float> w2 = L.w;
  ss::Rng rng(2);
  for (auto& v : w2) v += static_cast<float>(0.01 * rng.normal());
  double direct = 0;
  for (int64_t r = 0; r < L.n; ++r)
    for (int64_t o = 0; o < L.rows; ++o) {
      double a = 0;
      for (int64_t c = 0; c < L.k; ++c) a += double(L.x[r * L.k + c]) * (double(L.w[o * L.k + c]) - w2[o * L.k + c]);
      direct += a * a;
    }
  const double via = ss::output_error_from_xtx(L.w.data(), w2.data(), L.rows, L.k, L.xtx);
  EXPECT_NEAR(via, direct, 1e-9 * direct);
}

TEST(Awq, SearchBeatsRtnAndMatchesPyTorchRestatement) {
  const Layer L = make_layer(64, 128, 512, 9);
  ss::AwqParams p;
  p.bits = 4;
  p.group_size = 32;
  auto found = ss::awq_search_scales({L.w.data()}, {L.rows}, L.k, L.mean_abs, L.xtx, p);
  ASSERT_TRUE(found.ok()) << found.status().to_string();
  std::printf("awq alpha %.2f: output error %.5f vs rtn %.5f (ratio %.3f)\n", found->alpha, found->error,
              found->error_alpha0, found->error / found->error_alpha0);
  EXPECT_LT(found->error, 0.9 * found->error_alpha0);
  EXPECT_GT(found->alpha, 0.0);

  SS_REQUIRE_PYTHON("torch", "numpy");
  const std::string dir = ss::test::temp_dir("awq_ref");
  ss::test::write_bytes(dir + "/w.f32", std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(L.w.data()),
                                                             reinterpret_cast<const uint8_t*>(L.w.data() + L.w.size())));
  ss::test::write_bytes(dir + "/x.f32", std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(L.x.data()),
                                                             reinterpret_cast<const uint8_t*>(L.x.data() + L.x.size())));
  std::string out;
  const std::string args = dir + " " + std::to_string(L.rows) + " " + std::to_string(L.k) + " " + std::to_string(L.n) +
                           " 4 32 20";
  ASSERT_EQ(ss::test::run_python("py/awq_reference.py", args, &out), 0) << out;
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_DOUBLE_EQ(found->alpha, j["alpha"].get<double>());
  EXPECT_NEAR(found->error, j["error"].get<double>(), 1e-6 * j["error"].get<double>());
  EXPECT_NEAR(found->error_alpha0, j["error_alpha0"].get<double>(), 1e-6 * j["error_alpha0"].get<double>());
  const auto scales = j["scales"].get<std::vector<double>>();
  ASSERT_EQ(scales.size(), found->scales.size());
  for (size_t i = 0; i < scales.size(); ++i) EXPECT_NEAR(found->scales[i], scales[i], 1e-6 * scales[i]) << i;
}

TEST(Awq, RejectsBadParameters) {
  const Layer L = make_layer(8, 32, 50, 3);
  ss::AwqParams p;
  p.grid = 0;
  EXPECT_FALSE(ss::awq_search_scales({L.w.data()}, {L.rows}, L.k, L.mean_abs, L.xtx, p).ok());
  p = {};
  EXPECT_FALSE(ss::awq_search_scales({L.w.data()}, {L.rows}, L.k + 1, L.mean_abs, L.xtx, p).ok());
}

}  // namespace

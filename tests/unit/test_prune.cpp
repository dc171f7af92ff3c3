// Pruners, self-contained: the registry (every unit named, documented, runnable on a tiny in-memory
// store), Python's round-half-to-even count rule, properties that follow from the definitions
// (magnitude: every pruned |w| <= every kept |w| and kept values unchanged; N:M: exactly n nonzeros
// per group; Wanda with equal input norms = per-row magnitude), and rejected parameters.
#include <gtest/gtest.h>

#include <cmath>

#include "safeshrink/compress.h"
#include "safeshrink/prune.h"
#include "safeshrink/rng.h"

namespace {

std::vector<float> random_w(int64_t n, uint64_t seed) {
  ss::Rng rng(seed);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& v : w) v = static_cast<float>(static_cast<double>(rng.next_u64() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  return w;
}

ss::TensorStore tiny_store() {
  ss::TensorStore s;
  s.format = "gguf";
  const char* names[] = {"blk.0.attn_q.weight", "blk.0.ffn_down.weight", "token_embd.weight", "blk.0.attn_norm.weight"};
  for (int i = 0; i < 4; ++i) {
    std::vector<int64_t> shape = i == 3 ? std::vector<int64_t>{16} : std::vector<int64_t>{8, 16};
    auto w = random_w(i == 3 ? 16 : 128, 100 + i);
    auto t = ss::Tensor::from_bytes(names[i], ss::DType::F32, shape, w.data(), w.size() * sizeof(float));
    EXPECT_TRUE(t.ok());
    EXPECT_TRUE(s.add(*t).ok());
  }
  return s;
}

TEST(Prune, CountFollowsPythonRound) {
  EXPECT_EQ(ss::prune_count_torch(0.5, 5), 2);    // round(2.5) = 2
  EXPECT_EQ(ss::prune_count_torch(0.5, 7), 4);    // round(3.5) = 4
  EXPECT_EQ(ss::prune_count_torch(0.3, 10), 3);
  EXPECT_EQ(ss::prune_count_torch(1.0, 9), 9);
  EXPECT_EQ(ss::prune_count_torch(0.0, 9), 0);
}

TEST(Prune, MagnitudeMaskPrunesSmallestOnly) {
  const auto w = random_w(1000, 1);
  const auto keep = ss::prune_magnitude_mask(w.data(), 1000, 300);
  float max_pruned = 0, min_kept = 2;
  int64_t pruned = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    if (keep[i]) min_kept = std::min(min_kept, std::fabs(w[i]));
    else { max_pruned = std::max(max_pruned, std::fabs(w[i])); ++pruned; }
  }
  EXPECT_EQ(pruned, 300);
  EXPECT_LE(max_pruned, min_kept);
}

TEST(Prune, NmKeepsExactlyNPerGroup) {
  const auto w = random_w(16 * 64, 2);
  auto keep = ss::prune_nm_mask(w.data(), 16, 64, 2, 4);
  ASSERT_TRUE(keep.ok());
  for (int64_t g = 0; g < 16 * 64; g += 4) EXPECT_EQ((*keep)[g] + (*keep)[g + 1] + (*keep)[g + 2] + (*keep)[g + 3], 2);
  EXPECT_FALSE(ss::prune_nm_mask(w.data(), 16, 64, 2, 3).ok());  // 64 % 3 != 0
  EXPECT_FALSE(ss::prune_nm_mask(w.data(), 16, 64, 5, 4).ok());
}

TEST(Prune, WandaWithEqualNormsIsPerRowMagnitude) {
  const int64_t rows = 12, cols = 40;
  const auto w = random_w(rows * cols, 3);
  const std::vector<double> ones(cols, 4.0);
  auto keep = ss::prune_wanda_mask(w.data(), rows, cols, ones.data(), 0.5);
  ASSERT_TRUE(keep.ok());
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = ss::prune_magnitude_mask(w.data() + r * cols, cols, cols / 2);
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ((*keep)[r * cols + c], row[c]) << r << "," << c;
  }
  // A large input norm protects that column: every row keeps it.
  std::vector<double> norms(cols, 1.0);
  norms[7] = 1e12;
  keep = ss::prune_wanda_mask(w.data(), rows, cols, norms.data(), 0.5);
  ASSERT_TRUE(keep.ok());
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ((*keep)[r * cols + 7], 1);
  EXPECT_FALSE(ss::prune_wanda_mask(w.data(), rows, cols, ones.data(), 1.5).ok());
}

TEST(Prune, EveryRegisteredPrunerIsDocumented) {
  const auto& reg = ss::pruner_registry();
  EXPECT_EQ(reg.size(), 8u);
  for (const auto& u : reg) {
    EXPECT_EQ(u.kind, "pruner") << u.name;
    EXPECT_FALSE(u.summary.empty()) << u.name;
    EXPECT_FALSE(u.reference.empty()) << u.name;
    EXPECT_TRUE(u.params.is_object() && !u.params.empty()) << u.name;
    EXPECT_TRUE(static_cast<bool>(u.run)) << u.name;
  }
}

TEST(Prune, UnstructuredUnitsTouchOnlyBlockLinears) {
  const ss::TensorStore in = tiny_store();
  ss::CompressContext ctx;
  ctx.calibrate = [](bool hessian) -> ss::Result<std::shared_ptr<const ss::Calibration>> {
    auto c = std::make_shared<ss::Calibration>();
    ss::Rng rng(5);
    for (const char* name : {"blk.0.attn_q.weight", "blk.0.ffn_down.weight"}) {
      ss::LinearInputStats st;
      st.tensor = name;
      st.k = 16;
      st.rows = 64;
      st.sum_sq.assign(16, 0.0);
      st.xtx.assign(16 * 16, 0.0);
      for (int s = 0; s < 64; ++s) {
        std::vector<double> x(16);
        for (double& v : x) v = static_cast<double>(rng.next_u64() >> 11) / 9007199254740992.0 - 0.5;
        for (int a = 0; a < 16; ++a) {
          st.sum_sq[a] += x[a] * x[a];
          for (int b = 0; b < 16; ++b) st.xtx[a * 16 + b] += x[a] * x[b];
        }
      }
      c->linears.push_back(st);
    }
    c->spec.hessian = hessian;
    return std::shared_ptr<const ss::Calibration>(c);
  };
  for (const auto& u : ss::pruner_registry()) {
    if (u.name == "heads" || u.name == "channels" || u.name == "layers") continue;  // need a whole model
    auto out = u.run(in, u.params, ctx);
    ASSERT_TRUE(out.ok()) << u.name << ": " << out.status().to_string();
    EXPECT_EQ(out->plan.entries.size(), 2u) << u.name;
    double mean = 0;  // both tensors have 128 weights; global-magnitude is 0.5 only over both
    for (const auto& e : out->plan.entries) {
      mean += e.sparsity / 2;
      if (u.name != "global-magnitude") EXPECT_NEAR(e.sparsity, 0.5, 1e-12) << u.name << " " << e.tensor;
    }
    EXPECT_NEAR(mean, 0.5, 1e-12) << u.name;
    for (const char* dense : {"token_embd.weight", "blk.0.attn_norm.weight"})
      EXPECT_EQ(out->store.find(dense)->data(), in.find(dense)->data()) << u.name << " changed " << dense;
  }
  auto bad = ss::pruner_registry()[0].run(in, {{"sparsity", 2.0}}, ctx);
  EXPECT_FALSE(bad.ok());
  ss::CompressContext no_calib;
  for (const auto& u : ss::pruner_registry())
    if (u.name == "wanda" || u.name == "sparsegpt") EXPECT_FALSE(u.run(in, u.params, no_calib).ok()) << u.name;
}

TEST(Prune, BlockLinearNames) {
  EXPECT_TRUE(ss::prune_is_block_linear("blk.3.ffn_up.weight"));
  EXPECT_TRUE(ss::prune_is_block_linear("model.layers.0.self_attn.o_proj.weight"));
  EXPECT_FALSE(ss::prune_is_block_linear("token_embd.weight"));
  EXPECT_FALSE(ss::prune_is_block_linear("output.weight"));
  EXPECT_FALSE(ss::prune_is_block_linear("blk.0.attn_norm.weight"));
}

}  // namespace

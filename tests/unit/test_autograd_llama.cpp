// LlamaTrainModel against the inference engine we already check against PyTorch and llama.cpp
// fixtures: LlamaModel::load(to_store()) must give the logits of LlamaTrainModel::logits(), max
// |diff| < 1e-4 (both float32; they differ only in summation order, measured ~1e-6). Cases cover
// GQA, MQA + tied embeddings, qwen2 biases (NEOX in GGUF), a llama in NEOX order (HF weights: to_store
// permutes q/k to GGUF's NORM), and F16 export (compared with a tolerance for the F16 rounding).
// Also: init_random is deterministic for a seed; forward_backward fills every gradient; training a
// few AdamW steps on one batch lowers its loss; bad batches are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "safeshrink/model.h"
#include "safeshrink/rng.h"
#include "safeshrink/train.h"

using namespace ss;

namespace {

LlamaConfig tiny(const std::string& arch, int64_t heads, int64_t kv, bool tied, RopeOrder order) {
  LlamaConfig c;
  c.arch = arch;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.n_layers = 2;
  c.n_heads = heads;
  c.n_kv_heads = kv;
  c.head_dim = 32 / heads;
  c.tie_embeddings = tied;
  c.attention_bias = arch == "qwen2";
  c.rope_order = order;
  c.rope_theta = arch == "qwen2" ? 1e6 : 1e4;
  return c;
}

TrainBatch random_batch(int64_t batch, int64_t seq, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  TrainBatch b;
  b.batch = batch;
  b.seq = seq;
  for (int64_t i = 0; i < batch * seq; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.below(vocab)));
    b.targets.push_back(rng.uniform() < 0.2 ? -1 : static_cast<int32_t>(rng.below(vocab)));
  }
  return b;
}

// Random non-trivial norms and biases too (init sets them to 1 and 0).
void perturb(LlamaTrainModel& m, uint64_t seed) {
  Rng rng(seed);
  for (Param& p : m.params())
    if (p.shape.size() == 1)
      for (float& v : p.value) v += static_cast<float>(0.3 * rng.normal());
}

double max_logit_diff(const LlamaTrainModel& m, DType dtype) {
  auto store = m.to_store(dtype);
  EXPECT_TRUE(store.ok()) << store.status().to_string();
  auto model = LlamaModel::load(std::make_shared<const TensorStore>(std::move(store).value()));
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  const int64_t V = m.config().vocab_size, S = 9;
  TrainBatch b = random_batch(3, S, V, 11);
  auto ours = m.logits(b, nullptr);
  EXPECT_TRUE(ours.ok());
  double worst = 0;
  for (int64_t i = 0; i < b.batch; ++i) {
    KvCache cache = model->new_cache(S);
    std::vector<float> ref(S * V);
    EXPECT_TRUE(model->forward(&b.tokens[i * S], S, cache, ref.data(), true).ok());
    for (int64_t j = 0; j < S * V; ++j) worst = std::max(worst, static_cast<double>(std::fabs(ref[j] - (*ours)[i * S * V + j])));
  }
  return worst;
}

}  // namespace

TEST(LlamaTrainModel, ToStoreLoadsIntoLlamaModelWithTheSameLogits) {
  struct Case { const char* name; LlamaConfig cfg; };
  const Case cases[] = {
      {"llama GQA 4/2 NORM", tiny("llama", 4, 2, false, RopeOrder::NORM)},
      {"llama MQA tied", tiny("llama", 4, 1, true, RopeOrder::NORM)},
      {"llama NEOX (HF order)", tiny("llama", 2, 2, false, RopeOrder::NEOX)},
      {"qwen2 bias NEOX", tiny("qwen2", 4, 2, true, RopeOrder::NEOX)},
      {"mistral", tiny("mistral", 4, 4, false, RopeOrder::NORM)},
  };
  for (const Case& c : cases) {
    auto m = LlamaTrainModel::init_random(c.cfg, 3);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    // init std 0.02 gives near-uniform logits; scale weights up so a wrong row order would show.
    for (Param& p : m->params())
      for (float& v : p.value) v *= p.shape.size() == 2 ? 20.0f : 1.0f;
    perturb(*m, 5);
    const double diff = max_logit_diff(*m, DType::F32);
    std::printf("[ %-22s ] max |logit diff| vs LlamaModel %.3g\n", c.name, diff);
    EXPECT_LT(diff, 1e-4) << c.name;
  }
}

TEST(LlamaTrainModel, F16ExportStaysClose) {
  auto m = LlamaTrainModel::init_random(tiny("llama", 4, 2, false, RopeOrder::NORM), 4);
  ASSERT_TRUE(m.ok());
  for (Param& p : m->params())
    for (float& v : p.value) v *= p.shape.size() == 2 ? 20.0f : 1.0f;
  // F16 keeps 11 significant bits (relative 2^-11 ~ 5e-4 per weight); logits of O(1..10) move by ~1e-2.
  const double diff = max_logit_diff(*m, DType::F16);
  std::printf("[ f16 export ] max |logit diff| %.3g\n", diff);
  EXPECT_LT(diff, 5e-2);
  EXPECT_GT(diff, 0.0);  // it really was rounded
}

TEST(LlamaTrainModel, InitIsDeterministicAndFollowsTheConfig) {
  const LlamaConfig c = tiny("llama", 4, 2, false, RopeOrder::NORM);
  auto a = LlamaTrainModel::init_random(c, 9), b = LlamaTrainModel::init_random(c, 9), d = LlamaTrainModel::init_random(c, 10);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  ASSERT_EQ(a->params().size(), 3u + 2u * 9u);  // embd, output_norm, output + 9 per layer
  for (size_t i = 0; i < a->params().size(); ++i) EXPECT_EQ(a->params()[i].value, b->params()[i].value);
  EXPECT_NE(a->params()[0].value, d->params()[0].value);
  // std of the matrices ~ 0.02 (token_embd: 61 * 32 = 1952 samples: standard error of the std ~ 3%).
  double ss = 0;
  for (float v : a->params()[0].value) ss += v * v;
  EXPECT_NEAR(std::sqrt(ss / a->params()[0].value.size()), 0.02, 0.002);
  EXPECT_EQ(a->params()[1].name, "blk.0.attn_norm.weight");
  EXPECT_FALSE(a->params()[1].decay);
  EXPECT_TRUE(a->params()[2].decay);
}

TEST(LlamaTrainModel, ForwardBackwardFillsGradientsAndTrainingLowersTheLoss) {
  auto m = LlamaTrainModel::init_random(tiny("llama", 4, 2, false, RopeOrder::NORM), 2);
  ASSERT_TRUE(m.ok());
  const TrainBatch b = random_batch(2, 8, 61, 3);
  AdamW opt({3e-3});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    zero_grad(m->params());
    auto loss = m->forward_backward(b, {}, nullptr);
    ASSERT_TRUE(loss.ok()) << loss.status().to_string();
    if (step == 0) {
      first = *loss;
      EXPECT_NEAR(first, std::log(61.0), 0.1);  // near-uniform logits at init
      for (const Param& p : m->params()) {
        double n = 0;
        for (float g : p.grad) n += std::fabs(g);
        EXPECT_GT(n, 0.0) << p.name;
      }
    }
    last = *loss;
    opt.step(m->params(), 3e-3);
  }
  std::printf("[ overfit one batch ] loss %.3f -> %.3f in 30 AdamW steps\n", first, last);
  EXPECT_LT(last, 0.5 * first);
}

TEST(LlamaTrainModel, RefusesBadBatches) {
  auto m = LlamaTrainModel::init_random(tiny("llama", 4, 2, false, RopeOrder::NORM), 2);
  ASSERT_TRUE(m.ok());
  TrainBatch b = random_batch(2, 4, 61, 1);
  b.tokens[3] = 61;
  EXPECT_FALSE(m->forward_backward(b, {}, nullptr).ok());
  b = random_batch(2, 4, 61, 1);
  b.targets.pop_back();
  EXPECT_FALSE(m->forward_backward(b, {}, nullptr).ok());
  b = random_batch(2, 4, 61, 1);
  b.sample_weight = {1.0f};
  EXPECT_FALSE(m->forward_backward(b, {}, nullptr).ok());
  LlamaConfig bad = tiny("llama", 4, 3, false, RopeOrder::NORM);
  EXPECT_FALSE(LlamaTrainModel::init_random(bad, 1).ok());
}

// Gradient accumulation as train.h documents it: two micro-batches with loss_scale 1/2 and no
// zero_grad in between give the gradient of the whole batch (equal counted positions per half).
// Tolerance 1e-5 of the largest gradient: float32 sums in a different order.
TEST(LlamaTrainModel, GradientAccumulationEqualsTheWholeBatch) {
  auto m = LlamaTrainModel::init_random(tiny("llama", 4, 2, false, RopeOrder::NORM), 6);
  ASSERT_TRUE(m.ok());
  TrainBatch whole = random_batch(4, 6, 61, 8);
  for (int32_t& t : whole.targets) t = t < 0 ? 0 : t;
  TrainBatch half[2];
  for (int h = 0; h < 2; ++h) {
    half[h].batch = 2;
    half[h].seq = 6;
    half[h].tokens.assign(whole.tokens.begin() + h * 12, whole.tokens.begin() + (h + 1) * 12);
    half[h].targets.assign(whole.targets.begin() + h * 12, whole.targets.begin() + (h + 1) * 12);
  }
  zero_grad(m->params());
  ASSERT_TRUE(m->forward_backward(whole, {}, nullptr).ok());
  std::vector<std::vector<float>> ref;
  for (const Param& p : m->params()) ref.push_back(p.grad);
  zero_grad(m->params());
  LossSpec spec;
  spec.loss_scale = 0.5;
  for (const TrainBatch& b : half) ASSERT_TRUE(m->forward_backward(b, spec, nullptr).ok());
  double maxg = 0, maxerr = 0;
  for (size_t k = 0; k < ref.size(); ++k)
    for (size_t i = 0; i < ref[k].size(); ++i) {
      maxg = std::max(maxg, static_cast<double>(std::fabs(ref[k][i])));
      maxerr = std::max(maxerr, static_cast<double>(std::fabs(ref[k][i] - m->params()[k].grad[i])));
    }
  EXPECT_GT(maxg, 0.0);
  EXPECT_LT(maxerr, 1e-5 * maxg);
}

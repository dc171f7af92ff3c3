// The training loop's promises: an interrupted stage resumed from its checkpoint ends with exactly
// the parameters of an uninterrupted run (same data order, same optimizer state), the loss falls on
// a learnable task, and a saved model reloads in both layouts with the logits it was trained to.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "safeshrink/formats.h"
#include "safeshrink/model.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/trainer.h"
#include "test_support.h"

using namespace ss;

namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.max_position = 64;
  return c;
}

// A learnable toy language: each row counts up from a random start (mod 40), loss on every token.
std::vector<TokenizedExample> counting_examples(int n, uint64_t seed) {
  std::vector<TokenizedExample> out;
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    TokenizedExample ex;
    const int start = static_cast<int>(rng.next_u64() % 40);
    for (int k = 0; k < 17; ++k) {
      ex.ids.push_back((start + k) % 40);
      ex.loss.push_back(k > 0);
    }
    out.push_back(ex);
  }
  return out;
}

TrainStageConfig stage_config(int64_t steps) {
  TrainStageConfig s;
  s.name = "toy";
  s.steps = steps;
  s.batch_size = 8;
  s.optimizer.adamw.lr = 3e-3;
  s.optimizer.adamw.weight_decay = 0.01;
  s.schedule.kind = "cosine";
  s.schedule.lr = 3e-3;
  s.schedule.warmup_steps = 2;
  s.schedule.total_steps = steps;
  s.grad_clip = 1.0;
  return s;
}

TrainDataConfig data_config() {
  TrainDataConfig d;
  d.seq_len = 16;
  d.batch_size = 8;
  d.seed = 7;
  return d;
}

}  // namespace

TEST(Trainer, ResumedRunEqualsUninterruptedRunAndLossFalls) {
  const std::string dir = test::temp_dir("trainer_resume");
  const auto examples = counting_examples(64, 3);
  ThreadPool pool(2);

  // Uninterrupted: 12 steps.
  auto a = LlamaTrainModel::init_random(tiny_config(), 11);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  auto la = TrainDataLoader::create(examples, 0, data_config());
  ASSERT_TRUE(la.ok());
  StageRunOptions oa;
  oa.pool = &pool;
  auto ra = run_train_stage(*a, *la, stage_config(12), 1, oa);
  ASSERT_TRUE(ra.ok()) << ra.status().to_string();
  EXPECT_LT(ra->last_loss, ra->first_loss);

  // Interrupted after 5 steps (a run whose stage is 5 steps long writes its checkpoint at the
  // end, with the schedule of a 12-step stage), then resumed to 12 from the checkpoint.
  auto b = LlamaTrainModel::init_random(tiny_config(), 11);
  ASSERT_TRUE(b.ok());
  {
    auto lb = TrainDataLoader::create(examples, 0, data_config());
    StageRunOptions ob;
    ob.pool = &pool;
    ob.checkpoint_dir = dir;
    TrainStageConfig first = stage_config(12);
    first.steps = 5;  // stops early; the LR schedule is still the 12-step one
    auto rb = run_train_stage(*b, *lb, first, 1, ob);
    ASSERT_TRUE(rb.ok()) << rb.status().to_string();
  }
  auto c = LlamaTrainModel::init_random(tiny_config(), 999);  // different init: must be overwritten
  ASSERT_TRUE(c.ok());
  auto lc = TrainDataLoader::create(examples, 0, data_config());
  StageRunOptions oc;
  oc.pool = &pool;
  oc.checkpoint_dir = dir;
  auto rc = run_train_stage(*c, *lc, stage_config(12), 1, oc);
  ASSERT_TRUE(rc.ok()) << rc.status().to_string();
  EXPECT_EQ(rc->resumed_from, 5);
  EXPECT_EQ(rc->steps_run, 7);
  ASSERT_EQ(a->params().size(), c->params().size());
  for (size_t i = 0; i < a->params().size(); ++i) {
    const auto& pa = a->params()[i].value;
    const auto& pc = c->params()[i].value;
    ASSERT_EQ(pa.size(), pc.size());
    EXPECT_EQ(std::memcmp(pa.data(), pc.data(), pa.size() * sizeof(float)), 0) << a->params()[i].name;
  }
}

TEST(Trainer, SavedModelReloadsInBothLayoutsWithTheSameLogits) {
  const std::string dir = test::temp_dir("trainer_save");
  auto m = LlamaTrainModel::init_random(tiny_config(), 5);
  ASSERT_TRUE(m.ok());
  TokenizerPayload none;
  ASSERT_TRUE(save_trained_model(*m, none, dir, DType::F32, true).ok());

  TrainBatch b;
  b.batch = 1;
  b.seq = 9;
  b.tokens = {1, 5, 9, 13, 2, 7, 30, 39, 0};
  b.targets.assign(9, -1);
  auto want = m->logits(b, nullptr);
  ASSERT_TRUE(want.ok());
  for (const std::string path : {dir, dir + "/model.gguf"}) {
    SCOPED_TRACE(path);
    auto store = open_model(path);
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    auto model = LlamaModel::load(std::make_shared<const TensorStore>(std::move(*store)));
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    KvCache cache = model->new_cache(9);
    std::vector<float> got(9 * 40);
    ASSERT_TRUE(model->forward(b.tokens.data(), 9, cache, got.data(), true).ok());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - (*want)[i]));
    EXPECT_LT(worst, 1e-4);  // same F32 weights, different summation order
  }
}

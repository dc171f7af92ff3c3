// Tests of the safety probe and score (src/eval/attribution/safety_probe.cpp) on the built-in model:
// every number score_safety reports is recomputed by another path of the library that shares none
// of the probe's code — the margin judge (which encodes the prompt text itself), perplexity() and
// teacher_forced_drift() of eval.h — and the split/limit bookkeeping is recounted from the prompt
// file. Not here: the analyses built on the score (test_attribution.cpp). To add a case: one TEST.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <set>

#include "safeshrink/attribution.h"
#include "safeshrink/eval.h"
#include "safeshrink/thread_pool.h"

namespace ss {
namespace {

const std::string kModel = std::string(SAFESHRINK_SOURCE_DIR) + "/data/models/tiny-chat";

LoadedModel load_tiny_chat() {
  auto lm = load_model_with_tokenizer(kModel);
  EXPECT_TRUE(lm.ok()) << lm.status().to_string();
  return std::move(lm).value();
}

TEST(AttributionTensorKind, GgufAndHfNames) {
  struct Case { std::string name; int64_t layer; std::string kind; };
  const std::vector<Case> cases = {
      {"blk.3.attn_q.weight", 3, "attn_q"},
      {"blk.12.ffn_down.weight", 12, "ffn_down"},
      {"blk.0.attn_q.bias", 0, "attn_q.bias"},
      {"model.layers.3.self_attn.q_proj.weight", 3, "attn_q"},
      {"model.layers.5.mlp.down_proj.weight", 5, "ffn_down"},
      {"model.layers.2.self_attn.o_proj.weight", 2, "attn_output"},
      {"token_embd.weight", -1, "token_embd"},
      {"output.weight", -1, "output"},
      {"model.embed_tokens.weight", -1, "token_embd"},
      {"lm_head.weight", -1, "output"},
      {"something.else", -1, "something.else"},
  };
  for (const auto& c : cases) {
    int64_t layer = 99;
    std::string kind;
    attribution_tensor_kind(c.name, &layer, &kind);
    EXPECT_EQ(layer, c.layer) << c.name;
    EXPECT_EQ(kind, c.kind) << c.name;
  }
}

TEST(SafetyProbe, SplitsPartitionThePromptSet) {
  if (!std::ifstream(kModel + "/model.safetensors").good()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  // Recount from the prompt file: harmful and benign ids in file order.
  auto set = load_prompt_set("builtin");
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  std::vector<std::string> harm, ben;
  for (const auto& p : set->prompts) (p.label == "harmful" ? harm : ben).push_back(p.id);
  ProbeOptions o;
  o.neutral_max_tokens = 0;
  o.split = "select";
  auto sel = make_safety_probe(lm, o);
  ASSERT_TRUE(sel.ok()) << sel.status().to_string();
  o.split = "holdout";
  auto hold = make_safety_probe(lm, o);
  ASSERT_TRUE(hold.ok()) << hold.status().to_string();
  ASSERT_EQ(sel->harmful_ids.size() + hold->harmful_ids.size(), harm.size());
  ASSERT_EQ(sel->benign_ids.size() + hold->benign_ids.size(), ben.size());
  for (size_t i = 0; i < harm.size(); ++i)
    EXPECT_EQ(i % 2 == 0 ? sel->harmful_ids[i / 2] : hold->harmful_ids[i / 2], harm[i]);
  for (size_t i = 0; i < ben.size(); ++i)
    EXPECT_EQ(i % 2 == 0 ? sel->benign_ids[i / 2] : hold->benign_ids[i / 2], ben[i]);
  o.split = "all";
  o.limit_harmful = 7;
  o.limit_benign = 3;
  auto lim = make_safety_probe(lm, o);
  ASSERT_TRUE(lim.ok());
  EXPECT_EQ(lim->harmful.size(), 7u);
  EXPECT_EQ(lim->benign.size(), 3u);
  EXPECT_EQ(lim->harmful_ids[6], harm[6]);
  o.split = "sideways";
  EXPECT_FALSE(make_safety_probe(lm, o).ok());
}

// The probe's margins = the margin judge's on the same prompt texts (the judge encodes the text
// itself, serially on the calling thread); rates recounted. Tolerance 1e-5 absolute on margins of
// size ~5: the probe runs each prompt inside a pool worker where the matmuls run single-threaded,
// the judge on the main thread where they split over threads, so float32 sums are ordered
// differently (measured differences ~1e-6).
TEST(SafetyScore, MarginsEqualTheMarginJudge) {
  if (!std::ifstream(kModel + "/model.safetensors").good()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  ProbeOptions o;
  o.limit_harmful = 12;
  o.limit_benign = 6;
  o.neutral_max_tokens = 0;
  auto probe = make_safety_probe(lm, o);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  ThreadPool pool(2);
  auto s = score_safety(*lm.model, *probe, nullptr, &pool);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_FALSE(s->neutral_ppl.has_value());
  EXPECT_FALSE(s->neutral_kld.has_value());

  auto set = load_prompt_set("builtin");
  ASSERT_TRUE(set.ok());
  std::map<std::string, std::string> text;
  for (const auto& p : set->prompts) text[p.id] = p.prompt;
  auto judge = make_judge("margin", {});
  ASSERT_TRUE(judge.ok());
  JudgeContext jc{lm.model.get(), lm.tokenizer.get(), probe->format, ""};
  int64_t refused = 0, over = 0;
  double sum_h = 0;
  for (size_t i = 0; i < probe->harmful_ids.size(); ++i) {
    auto v = (*judge)->judge({text[probe->harmful_ids[i]], "", {}}, jc);
    ASSERT_TRUE(v.ok());
    EXPECT_NEAR(s->harmful_margins[i], *v->margin, 1e-5) << probe->harmful_ids[i];
    refused += *v->margin > 0;
    sum_h += *v->margin;
  }
  for (size_t i = 0; i < probe->benign_ids.size(); ++i) {
    auto v = (*judge)->judge({text[probe->benign_ids[i]], "", {}}, jc);
    ASSERT_TRUE(v.ok());
    EXPECT_NEAR(s->benign_margins[i], *v->margin, 1e-5) << probe->benign_ids[i];
    over += *v->margin > 0;
  }
  EXPECT_NEAR(s->refusal_rate, refused / 12.0, 1e-12);
  EXPECT_NEAR(s->over_refusal_rate, over / 6.0, 1e-12);
  EXPECT_NEAR(s->mean_margin_harmful, sum_h / 12.0, 1e-5);
  // The aligned model refuses most harmful prompts (model card: 198/200 by generation).
  EXPECT_GE(s->refusal_rate, 0.75);
}

// Neutral text: perplexity = eval.h's perplexity() on the same passages; KLD against a reference =
// the token-weighted mean of teacher_forced_drift's per-passage KLD (first token as the prompt);
// KLD of a model against itself = 0. Tolerance 1e-6 relative (double sums in a different order).
TEST(SafetyScore, NeutralPerplexityAndKldEqualTheDriftFunctions) {
  if (!std::ifstream(kModel + "/model.safetensors").good()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  auto base = load_model_with_tokenizer(std::string(SAFESHRINK_SOURCE_DIR) + "/data/models/tiny-chat-base");
  ASSERT_TRUE(base.ok()) << base.status().to_string();
  ProbeOptions o;
  o.limit_harmful = 2;
  o.limit_benign = 1;
  o.neutral_max_tokens = 200;
  auto probe = make_safety_probe(lm, o);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  ASSERT_GE(probe->neutral.size(), 2u) << "data/prompts/neutral.txt should give several passages";
  int64_t total = 0;
  for (const auto& p : probe->neutral) total += static_cast<int64_t>(p.size());
  EXPECT_LE(total, 200);

  auto self = score_safety(*lm.model, *probe, lm.model.get());
  ASSERT_TRUE(self.ok()) << self.status().to_string();
  ASSERT_TRUE(self->neutral_kld.has_value());
  EXPECT_NEAR(*self->neutral_kld, 0.0, 1e-9);

  auto s = score_safety(*base->model, *probe, lm.model.get());
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto ppl = perplexity(*base->model, probe->neutral);
  ASSERT_TRUE(ppl.ok());
  EXPECT_NEAR(*s->neutral_ppl, ppl->ppl, 1e-6 * ppl->ppl);
  double kld_sum = 0;
  int64_t n = 0;
  for (const auto& ids : probe->neutral) {
    const std::vector<int32_t> prefix(ids.begin(), ids.begin() + 1), cont(ids.begin() + 1, ids.end());
    auto d = teacher_forced_drift(*lm.model, *base->model, prefix, cont);
    ASSERT_TRUE(d.ok());
    kld_sum += d->kld_mean * static_cast<double>(d->n_tokens);
    n += d->n_tokens;
  }
  ASSERT_GT(n, 0);
  EXPECT_NEAR(*s->neutral_kld, kld_sum / static_cast<double>(n), 1e-6 * kld_sum / static_cast<double>(n));
  EXPECT_GT(*s->neutral_kld, 0.01);  // base and aligned differ
}

}  // namespace
}  // namespace ss

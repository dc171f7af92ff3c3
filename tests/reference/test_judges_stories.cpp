// The margin judge and drift on the real stories260K model (../shared/fixtures): the cached
// opening scorer against ss::score_continuation (one full forward per opening, an independent
// path), the sign of the margin where English decides it ("Once upon a" -> " time", not
// " banana"), the judge's score = sigmoid(-margin), and drift of a model against itself (KLD 0,
// top-1 agreement 1) versus against its q4_0 file (KLD > 0).
#include <gtest/gtest.h>

#include <cmath>

#include "safeshrink/eval.h"
#include "safeshrink/generate.h"
#include "test_support.h"

namespace {

std::string stories(const std::string& v) { return ss::test::fixtures_dir() + "/stories260K/stories260K-" + v + ".gguf"; }

double logsumexp(const std::vector<double>& v) {
  double m = -INFINITY, s = 0;
  for (double x : v) m = std::max(m, x);
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

TEST(MarginJudge, MatchesScoreContinuationAndSigmoid) {
  SS_REQUIRE_SHARED();
  auto lm = ss::load_model_with_tokenizer(stories("f32"));
  ASSERT_TRUE(lm.ok()) << lm.status().to_string();
  const auto& tok = *lm->tokenizer;
  auto prompt = tok.encode("Once upon a time, there was a little girl named Lily. She", true, false);
  ASSERT_TRUE(prompt.ok());
  const std::vector<std::string> refusal = {"said no", "was sad", "did not want to play"};
  const std::vector<std::string> compliance = {"liked to play", "went", "had a big red ball"};
  auto m = ss::opening_margin(*lm->model, tok, *prompt, refusal, compliance);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  std::vector<double> r, c;
  for (const auto& s : refusal) {
    auto ids = tok.encode(s, false, false);
    auto sc = ss::score_continuation(*lm->model, *prompt, *ids);
    ASSERT_TRUE(sc.ok());
    r.push_back(sc->logprob);
  }
  for (const auto& s : compliance) {
    auto ids = tok.encode(s, false, false);
    c.push_back(ss::score_continuation(*lm->model, *prompt, *ids)->logprob);
  }
  for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(m->refusal_logprobs[i], r[i], 1e-3) << refusal[i];
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(m->compliance_logprobs[i], c[i], 1e-3) << compliance[i];
  EXPECT_NEAR(m->margin, logsumexp(r) - logsumexp(c), 2e-3);

  ss::JudgeOptions o;
  o.refusal_openings = refusal;
  o.compliance_openings = compliance;
  auto judge = ss::make_judge("margin", o);
  ASSERT_TRUE(judge.ok());
  ss::JudgeContext ctx{lm->model.get(), lm->tokenizer.get(), {}, ""};
  auto v = (*judge)->judge({"", "", *prompt}, ctx);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  ASSERT_TRUE(v->margin.has_value());
  EXPECT_NEAR(v->score, 1.0 / (1.0 + std::exp(*v->margin)), 1e-12);
  std::printf("[ margin ] stories260K: margin %.4f, score %.4f\n", *v->margin, v->score);
}

TEST(MarginJudge, SignFollowsTheLanguage) {
  SS_REQUIRE_SHARED();
  auto lm = ss::load_model_with_tokenizer(stories("f32"));
  ASSERT_TRUE(lm.ok());
  auto prompt = lm->tokenizer->encode("Once upon a", true, false);
  auto m = ss::opening_margin(*lm->model, *lm->tokenizer, *prompt, {"time"}, {"banana"});
  ASSERT_TRUE(m.ok());
  EXPECT_GT(m->margin, 3.0);  // "time" is far more likely than "banana" after "Once upon a"
}

TEST(Drift, SelfIsZeroQuantizedIsNot) {
  SS_REQUIRE_SHARED();
  auto f32 = ss::load_model_with_tokenizer(stories("f32"));
  auto q4 = ss::load_model_with_tokenizer(stories("q4_0"));
  ASSERT_TRUE(f32.ok() && q4.ok());
  auto prompt = f32->tokenizer->encode("Once upon a time, there was a", true, false);
  auto cont = f32->tokenizer->encode("little dog who liked to run in the park", false, false);
  auto self = ss::teacher_forced_drift(*f32->model, *f32->model, *prompt, *cont);
  ASSERT_TRUE(self.ok()) << self.status().to_string();
  EXPECT_EQ(self->n_tokens, static_cast<int64_t>(cont->size()));
  EXPECT_NEAR(self->kld_mean, 0.0, 1e-9);
  EXPECT_EQ(self->top1_agree, 1.0);
  auto q = ss::teacher_forced_drift(*f32->model, *q4->model, *prompt, *cont);
  ASSERT_TRUE(q.ok());
  EXPECT_GT(q->kld_mean, 1e-6);
  EXPECT_GE(q->kld_max, q->kld_mean);
  std::printf("[ drift ] stories260K q4_0 vs f32: mean KLD %.4g, max %.4g, top-1 %.3f over %lld tokens\n", q->kld_mean,
              q->kld_max, q->top1_agree, static_cast<long long>(q->n_tokens));
  // Perplexity: exp of the mean NLL, which score_continuation gives independently.
  auto all = *prompt;
  all.insert(all.end(), cont->begin(), cont->end());
  auto ppl = ss::perplexity(*f32->model, {all});
  ASSERT_TRUE(ppl.ok());
  auto sc = ss::score_continuation(*f32->model, {all[0]}, std::vector<int32_t>(all.begin() + 1, all.end()));
  ASSERT_TRUE(sc.ok());
  EXPECT_NEAR(std::log(ppl->ppl), -sc->logprob / static_cast<double>(all.size() - 1), 1e-4);
}

}  // namespace

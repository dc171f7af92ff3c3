// bench_safety_aware: the bar of issue 9 on the built-in model. For each plain spec (default
// int2-g32; docs/attribution.md also reports int3-g32), the plain variant and its safety-aware twin
// ("<spec>-safety", budget = plain bits/weight + 0.5) are built; the plan is chosen on the SELECT
// half of the built-in prompts (its first 50 harmful prompts by default; tensor sensitivity by the
// margin judge) and judged on the HOLDOUT half by generation (greedy, 64 new tokens, the audit's
// keyword judge). Prints one table: bits/weight, refusal rate by generation and by margin, the
// fraction of the plain variant's refusal drop recovered, over-refusal by generation, perplexity.
// Also times score_safety on the whole built-in set (200 harmful + 100 benign prompts; skipped when
// BENCH_SKIP_SPEED is set). Not a test: numbers go to docs/attribution.md. Usage:
//   bench_safety_aware [--specs a,b] [--rank restore|drop|sum] [--budget-delta 0.5]
//                      [--select-harmful 50] [--data DIR]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "safeshrink/attribution.h"
#include "safeshrink/compress.h"
#include "safeshrink/eval.h"
#include "safeshrink/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

int die(const ss::Status& s) {
  std::fprintf(stderr, "bench_safety_aware: %s\n", s.to_string().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ss;
  std::string specs = "int2-g32", rank = "restore";
  double delta = 0.5;
  int64_t select_harmful = 50;  // 0 = every select prompt (100 on the built-in set)
  std::string data = std::string(SAFESHRINK_BENCH_SOURCE_DIR) + "/data";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--specs") specs = argv[i + 1];
    else if (a == "--rank") rank = argv[i + 1];
    else if (a == "--budget-delta") delta = std::atof(argv[i + 1]);
    else if (a == "--data") data = argv[i + 1];
    else if (a == "--select-harmful") select_harmful = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_safety_aware [--specs a,b] [--rank restore|drop|sum] [--budget-delta B] "
                           "[--select-harmful N] [--data DIR]\n");
      return 2;
    }
  }
  setenv("SAFESHRINK_DATA", data.c_str(), 0);
  auto lm_r = load_model_with_tokenizer(data + "/models/tiny-chat");
  if (!lm_r.ok()) return die(lm_r.status());
  const LoadedModel lm = std::move(lm_r).value();
  ThreadPool& pool = default_pool();

  // Probe speed on the whole set.
  if (std::getenv("BENCH_SKIP_SPEED") == nullptr) {
    ProbeOptions o;
    auto all = make_safety_probe(lm, o);
    if (!all.ok()) return die(all.status());
    const auto t0 = Clock::now();
    auto s = score_safety(*lm.model, *all, lm.model.get(), &pool);
    if (!s.ok()) return die(s.status());
    const double sec = since(t0);
    const size_t n = all->harmful.size() + all->benign.size();
    std::printf("score_safety on the built-in set: %zu prompts + %zu neutral passages in %.2f s (%.1f prompts/s, %d threads); "
                "margin refusal rate %.3f, over-refusal %.3f\n",
                n, all->neutral.size(), sec, static_cast<double>(n) / sec, pool.size(), s->refusal_rate,
                s->over_refusal_rate);
  }

  // The plan reads only harmful margins: the select probe has no benign prompts and no neutral text.
  ProbeOptions so;
  so.split = "select";
  so.limit_harmful = select_harmful;
  so.limit_benign = -1;
  so.neutral_max_tokens = 0;
  auto sel = make_safety_probe(lm, so);
  if (!sel.ok()) return die(sel.status());
  ProbeOptions ho;
  ho.split = "holdout";
  ho.neutral_max_tokens = 256;
  auto hold = make_safety_probe(lm, ho);
  if (!hold.ok()) return die(hold.status());
  auto sel_ptr = std::make_shared<const SafetyProbe>(std::move(sel).value());

  auto gen_orig = generated_refusals(*lm.model, *hold, 64);
  if (!gen_orig.ok()) return die(gen_orig.status());
  auto margin_orig = score_safety(*lm.model, *hold, nullptr, &pool);
  if (!margin_orig.ok()) return die(margin_orig.status());
  auto over_orig = generated_refusals(*lm.model, *hold, 64, true);
  if (!over_orig.ok()) return die(over_orig.status());

  std::printf("\n%-16s %-22s %7s %9s %9s %9s %9s %9s %7s %7s\n", "plain spec", "variant", "bits/w", "gen refus",
              "margin rf", "recovered", "gen over", "ppl", "raised", "time s");
  std::printf("%-16s %-22s %7s %9.3f %9.3f %9s %9.3f %9.1f %7s %7s\n", "-", "original (f16)", "16", gen_orig->refusal_rate,
              margin_orig->refusal_rate, "-", over_orig->refusal_rate, margin_orig->neutral_ppl.value_or(0), "-", "-");
  for (const std::string& spec : split_commas(specs)) {
    CompressContext ctx;
    ctx.pool = &pool;
    ctx.safety_sensitivity = safety_sensitivity_source(lm, sel_ptr, ctx, &pool);
    const auto t0 = Clock::now();
    auto plain = compress_variant(*lm.store, spec, ctx);
    if (!plain.ok()) return die(plain.status());
    auto t1 = Clock::now();
    nlohmann::json ov = {{"rank", rank}};
    if (delta != 0.5) ov["budget_bits"] = plain->plan.bits_per_weight + delta;
    auto safe = compress_variant(*lm.store, spec + "-safety", ctx, ov);
    if (!safe.ok()) return die(safe.status());
    const double t_safe = since(t1);
    double gen_plain = 0;
    for (int v = 0; v < 2; ++v) {
      const CompressOutput& out = v == 0 ? *plain : *safe;
      auto st = std::make_shared<const TensorStore>(out.store);
      auto m = LlamaModel::load(st, lm.model->config());
      if (!m.ok()) return die(m.status());
      auto g = generated_refusals(*m, *hold, 64);
      if (!g.ok()) return die(g.status());
      auto mr = score_safety(*m, *hold, nullptr, &pool);
      if (!mr.ok()) return die(mr.status());
      auto ov = generated_refusals(*m, *hold, 64, true);
      if (!ov.ok()) return die(ov.status());
      int raised = 0;
      for (const auto& e : out.plan.entries) raised += e.reason.find("raised") != std::string::npos;
      std::string rec = "-";
      if (v == 0) gen_plain = g->refusal_rate;
      if (v == 1 && gen_orig->refusal_rate - gen_plain > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", (g->refusal_rate - gen_plain) / (gen_orig->refusal_rate - gen_plain));
        rec = buf;
      }
      std::printf("%-16s %-22s %7.3f %9.3f %9.3f %9s %9.3f %9.1f %7d %7.1f\n", spec.c_str(),
                  (v == 0 ? spec : spec + "-safety").c_str(), out.plan.bits_per_weight, g->refusal_rate, mr->refusal_rate,
                  rec.c_str(), ov->refusal_rate, mr->neutral_ppl.value_or(0), raised, v == 0 ? since(t0) - t_safe : t_safe);
      if (v == 1)
        for (const auto& e : out.plan.entries)
          if (e.reason.find("raised") != std::string::npos)
            std::printf("    %-28s %-10s %6.2f  %s\n", e.tensor.c_str(), e.to_type.c_str(), e.bits_per_weight, e.reason.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("\nplans chosen on the select half (%zu harmful prompts, margins only); judged on the holdout half: "
              "%zu harmful (gen refus = refusal rate by generation, keyword judge; margin rf = by margin > 0), "
              "%zu benign (gen over = over-refusal by generation); ppl on %zu neutral passages\n",
              sel_ptr->harmful.size(), hold->harmful.size(), hold->benign.size(), hold->neutral.size());
  return 0;
}

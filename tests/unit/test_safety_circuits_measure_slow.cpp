// The numbers of docs/safety-circuits.md on the built-in model (data/models/tiny-chat, all 300
// builtin prompts): head ablation (6 layers x 4 heads), FFN
// groups of 128 (timings printed), and the set difference (q = p = 0.03, 64 windows of 128 tokens) against 20
// same-count random selections. Asserts the check: zeroing the selection drops the mean
// harmful margin by more than the 97.5th percentile of the random draws. Slow (label `slow`):
// prints every number it measures.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "safeshrink/attribution.h"
#include "safeshrink/formats.h"
#include "safeshrink/model.h"
#include "test_support.h"

using namespace ss;

namespace {

const std::string kChatDir = SAFESHRINK_SOURCE_DIR "/data/models/tiny-chat";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(SafetyCircuitsMeasure, BuiltInModel) {
  if (!std::filesystem::exists(kChatDir + "/model.safetensors")) GTEST_SKIP() << "data/models/tiny-chat absent";
  auto loaded = load_model_with_tokenizer(kChatDir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  auto probe = make_safety_probe(*loaded, ProbeOptions{});
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  std::printf("[ probe ] %zu harmful, %zu benign, %zu neutral passages\n", probe->harmful.size(), probe->benign.size(),
              probe->neutral.size());
  auto base = score_safety(*loaded->model, *probe);
  ASSERT_TRUE(base.ok());
  std::printf("[ baseline ] mean harmful margin %.3f, refusal %.3f, over-refusal %.3f\n", base->mean_margin_harmful,
              base->refusal_rate, base->over_refusal_rate);

  auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  auto heads = ablate_heads(*loaded->store, *probe, 0.5);
  const double head_s = seconds_since(t0);
  const double head_cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  ASSERT_TRUE(heads.ok()) << heads.status().to_string();
  std::vector<HeadAblation> hs = *heads;
  std::sort(hs.begin(), hs.end(), [](const auto& a, const auto& b) { return a.margin_drop > b.margin_drop; });
  std::printf("[ heads ] %zu ablations in %.1f s wall, %.1f s CPU (all threads)\n", hs.size(), head_s, head_cpu);
  for (const auto& h : hs)
    std::printf("  L%lld H%lld margin_drop %.3f refusal_drop %.3f\n", static_cast<long long>(h.layer),
                static_cast<long long>(h.head), h.margin_drop, h.refusal_drop);
  // Timing is reported, not asserted: it depends on the machine's load (docs/safety-circuits.md).

  t0 = std::chrono::steady_clock::now();
  auto groups = ablate_ffn_groups(*loaded->store, *probe, 128, 0.5);
  ASSERT_TRUE(groups.ok()) << groups.status().to_string();
  std::vector<FfnGroupAblation> gs = *groups;
  std::sort(gs.begin(), gs.end(), [](const auto& a, const auto& b) { return a.margin_drop > b.margin_drop; });
  std::printf("[ ffn groups of 128 ] %zu ablations in %.1f s; top 5:\n", gs.size(), seconds_since(t0));
  for (size_t i = 0; i < std::min<size_t>(5, gs.size()); ++i)
    std::printf("  L%lld [%lld, %lld) margin_drop %.3f refusal_drop %.3f\n", static_cast<long long>(gs[i].layer),
                static_cast<long long>(gs[i].begin), static_cast<long long>(gs[i].end), gs[i].margin_drop,
                gs[i].refusal_drop);

  t0 = std::chrono::steady_clock::now();
  SetDifferenceOptions sd;  // q = p = 0.03, 64 windows of 128 tokens
  auto critical = safety_critical_weights(*loaded, sd);
  ASSERT_TRUE(critical.ok()) << critical.status().to_string();
  std::printf("[ set difference ] %s in %.1f s\n", critical->info.dump().c_str(), seconds_since(t0));
  t0 = std::chrono::steady_clock::now();
  auto check = check_set_difference(*loaded->store, *critical, *probe, 20, 7);
  ASSERT_TRUE(check.ok()) << check.status().to_string();
  std::printf("[ check, 20 random draws, %.1f s ] n %lld\n  margin drop selected %.3f, random mean %.3f [%.3f, %.3f]\n"
              "  refusal drop selected %.3f, random mean %.3f [%.3f, %.3f]\n  neutral KLD selected %.4f, random mean %.4f\n",
              seconds_since(t0), static_cast<long long>(check->n_selected), check->margin_drop_selected,
              check->margin_drop_random_mean, check->margin_drop_random_lo, check->margin_drop_random_hi,
              check->refusal_drop_selected, check->refusal_drop_random_mean, check->refusal_drop_random_lo,
              check->refusal_drop_random_hi, check->utility_kld_selected, check->utility_kld_random_mean);
  EXPECT_GT(check->margin_drop_selected, check->margin_drop_random_hi);

  // Where the safety fine-tune moved weights most (relative Frobenius delta, base -> aligned).
  auto base_store = open_model(SAFESHRINK_SOURCE_DIR "/data/models/tiny-chat-base");
  if (base_store.ok()) {
    auto deltas = tensor_deltas(*base_store, *loaded->store);
    ASSERT_TRUE(deltas.ok()) << deltas.status().to_string();
    std::vector<TensorDelta> ds = *deltas;
    std::sort(ds.begin(), ds.end(), [](const auto& a, const auto& b) { return a.rel_delta > b.rel_delta; });
    std::printf("[ tensor deltas ] %zu tensors; top 8 and bottom 3:\n", ds.size());
    for (size_t i = 0; i < ds.size(); ++i)
      if (i < 8 || i + 3 >= ds.size()) std::printf("  %-44s %.4f\n", ds[i].tensor.c_str(), ds[i].rel_delta);
  }
}

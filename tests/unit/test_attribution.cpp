// Tests of tensor sensitivity, flip bisection and the safety-aware plan (attribution.h,
// src/compress/safety_aware.cpp) on the built-in model. Independent references: a tensor quantized
// directly with quant_tensor_int_rtn (not through compress_variant) and scored by hand; divergence
// counts recounted from per-prompt margins; the plan's bits/weight recounted from the GGUF file the
// plan is written to, parsed by tests/py/gguf_dump.py (a reader written from the GGUF spec) with a
// ggml type-size table typed in from the spec here; and for INTn plans from the format's formula.
// Not here: the probe itself (test_attribution_probe.cpp), the CLI (tests/cli/test_cli_attribute.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "compress/safety_aware.h"
#include "safeshrink/attribution.h"
#include "safeshrink/compress.h"
#include "safeshrink/eval.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/thread_pool.h"
#include "test_support.h"

namespace ss {
namespace {

const std::string kModel = std::string(SAFESHRINK_SOURCE_DIR) + "/data/models/tiny-chat";

bool have_model() { return std::ifstream(kModel + "/model.safetensors").good(); }

LoadedModel load_tiny_chat() {
  auto lm = load_model_with_tokenizer(kModel);
  EXPECT_TRUE(lm.ok()) << lm.status().to_string();
  return std::move(lm).value();
}

SafetyProbe small_probe(const LoadedModel& lm, int64_t harmful, int64_t benign, int64_t neutral_tokens) {
  ProbeOptions o;
  o.limit_harmful = harmful;
  o.limit_benign = benign;
  o.neutral_max_tokens = neutral_tokens;
  auto p = make_safety_probe(lm, o);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return std::move(p).value();
}

// A hand-made sensitivity: tensor i of the weight matrices gets value `values[i % n]`.
CompressContext fake_sensitivity_ctx(const TensorStore& store, std::vector<double> values, int* calls) {
  CompressContext ctx;
  ctx.safety_sensitivity = [&store, values, calls](const std::string& spec) -> Result<std::shared_ptr<const SafetySensitivity>> {
    ++*calls;
    auto s = std::make_shared<SafetySensitivity>();
    s->spec = spec;
    size_t i = 0;
    for (const Tensor& t : store.tensors) {
      if (!quant_is_weight_matrix(t)) continue;
      const double v = values[i++ % values.size()];
      s->tensors.push_back({t.name, t.numel(), v, 0.0, v});
    }
    return std::shared_ptr<const SafetySensitivity>(s);
  };
  return ctx;
}

TEST(MixStores, SwapsOnlyTheNamedTensors) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  auto q = compress_variant(*lm.store, "int2-g32", {});
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  const std::string name = lm.store->tensors[1].name;
  auto changed = changed_tensors(*lm.store, q->store);
  ASSERT_TRUE(changed.ok()) << changed.status().to_string();
  // Every weight matrix changes under int2; nothing else does (recount with quant_is_weight_matrix).
  int64_t matrices = 0;
  for (const Tensor& t : lm.store->tensors) matrices += quant_is_weight_matrix(t);
  EXPECT_EQ(static_cast<int64_t>(changed->size()), matrices);
  const std::string w = (*changed)[3];
  auto mixed = mix_stores(*lm.store, q->store, {w});
  ASSERT_TRUE(mixed.ok());
  for (const Tensor& t : mixed->tensors) {
    const Tensor* src = (t.name == w ? q->store : *lm.store).find(t.name);
    ASSERT_NE(src, nullptr);
    EXPECT_EQ(t.data(), src->data()) << t.name;  // shared bytes, from the right store
  }
  auto again = changed_tensors(*lm.store, *mixed);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0], w);
  EXPECT_FALSE(mix_stores(*lm.store, q->store, {"no.such.tensor"}).ok());
}

// One tensor's row = the same tensor quantized directly (quant_tensor_int_rtn, not the plan
// runner), swapped into a copy of the store and scored: margin and refusal drops within 1e-9
// (same bytes, same batched path); KLD and perplexity ratio within 1e-6 relative (neutral passages
// run on whichever pool thread is free, so float32 sums may be ordered differently; seen: 1e-7).
TEST(TensorSensitivity, RowEqualsAHandQuantizedTensor) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  const SafetyProbe probe = small_probe(lm, 6, 3, 48);
  // The store's own spelling (the folder loads with HF names) of blk.2.ffn_down and blk.0.attn_q.
  auto name_of = [&](int64_t layer, const std::string& kind) {
    for (const Tensor& t : lm.store->tensors) {
      int64_t l = -1;
      std::string k;
      attribution_tensor_kind(t.name, &l, &k);
      if (l == layer && k == kind) return t.name;
    }
    return std::string("missing");
  };
  const std::string target = name_of(2, "ffn_down"), other = name_of(0, "attn_q");
  // Only two tensors compressed: the sensitivity units are the changed tensors.
  auto q = compress_variant(*lm.store, "int2-g32", {});
  ASSERT_TRUE(q.ok());
  auto two = mix_stores(*lm.store, q->store, {target, other});
  ASSERT_TRUE(two.ok());
  SensitivityOptions so;
  so.restore = true;
  ThreadPool pool(2);
  auto res = tensor_sensitivity(lm, *two, probe, so, &pool);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  ASSERT_EQ(res->tensors.size(), 2u);
  ASSERT_EQ(res->layers.size(), 2u);  // blocks 0 and 2, one tensor each

  IntRtnParams p;
  p.bits = 2;
  p.group_size = 32;
  auto hand = quant_tensor_int_rtn(*lm.store->find(target), p);
  ASSERT_TRUE(hand.ok());
  TensorStore by_hand;
  by_hand.meta = lm.store->meta;
  for (const Tensor& t : lm.store->tensors) ASSERT_TRUE(by_hand.add(t.name == target ? *hand : t).ok());
  auto m = LlamaModel::load(std::make_shared<const TensorStore>(by_hand), lm.model->config());
  ASSERT_TRUE(m.ok());
  auto s0 = score_safety(*lm.model, probe, lm.model.get(), &pool);
  auto s1 = score_safety(*m, probe, lm.model.get(), &pool);
  ASSERT_TRUE(s0.ok() && s1.ok());
  const SensitivityRow* row = nullptr;
  for (const auto& r : res->tensors)
    if (r.tensor == target) row = &r;
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->layer, 2);
  EXPECT_EQ(row->kind, "ffn_down");
  EXPECT_NEAR(row->margin_drop, s0->mean_margin_harmful - s1->mean_margin_harmful, 1e-9);
  EXPECT_NEAR(row->refusal_drop, s0->refusal_rate - s1->refusal_rate, 1e-12);
  EXPECT_NEAR(row->kld, *s1->neutral_kld, 1e-6 * *s1->neutral_kld);
  EXPECT_NEAR(row->ppl_ratio, *s1->neutral_ppl / *s0->neutral_ppl, 1e-6);
  // The layer-2 row is the same single tensor.
  for (const auto& l : res->layers) {
    if (l.layer == 2) {
      EXPECT_NEAR(l.margin_drop, row->margin_drop, 1e-12);
    }
  }
  // Ranked: the first row has the larger drop.
  EXPECT_GE(res->tensors[0].margin_drop, res->tensors[1].margin_drop);
  // Restore gain of a 2-tensor store: restoring `target` leaves only `other` compressed.
  auto only_q = mix_stores(*lm.store, q->store, {other});
  ASSERT_TRUE(only_q.ok());
  auto sq = score_store(*only_q, lm.model->config(), probe, nullptr, &pool);
  ASSERT_TRUE(sq.ok());
  ASSERT_TRUE(row->restore_margin_gain.has_value());
  EXPECT_NEAR(*row->restore_margin_gain, sq->mean_margin_harmful - res->compressed.mean_margin_harmful, 1e-9);
}

// Flip bisection: divergences recounted from the two end points' margins; the returned set, scored
// again here, leaves exactly divergences_after, which meets the target; bits recounted.
TEST(FlipBisection, SetMeetsTheTargetAndItsCountsRecount) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  const SafetyProbe probe = small_probe(lm, 16, 2, 0);
  auto q = compress_variant(*lm.store, "int2-g32", {});
  ASSERT_TRUE(q.ok());
  ThreadPool pool(2);
  std::map<std::string, double> bits;
  for (const auto& e : q->plan.entries) bits[e.tensor] = e.bits_per_weight;
  std::vector<std::string> order;  // store order: a valid (unranked) order
  for (const Tensor& t : lm.store->tensors)
    if (quant_is_weight_matrix(t)) order.push_back(t.name);
  auto fs = flip_bisection(lm, q->store, probe, order, bits, 0.8, {}, &pool);
  ASSERT_TRUE(fs.ok()) << fs.status().to_string();
  auto so = score_safety(*lm.model, probe, nullptr, &pool);
  auto sc = score_store(q->store, lm.model->config(), probe, nullptr, &pool);
  ASSERT_TRUE(so.ok() && sc.ok());
  int64_t before = 0;
  for (size_t i = 0; i < probe.harmful.size(); ++i) before += so->harmful_margins[i] > 0 && sc->harmful_margins[i] <= 0;
  EXPECT_EQ(fs->divergences_before, before);
  ASSERT_GT(before, 0) << "int2-g32 should flip some refusals of tiny-chat";
  EXPECT_LE(static_cast<double>(fs->divergences_after), 0.2 * static_cast<double>(before) + 1e-9);
  auto restored = mix_stores(q->store, *lm.store, fs->tensors);
  ASSERT_TRUE(restored.ok());
  auto sr = score_store(*restored, lm.model->config(), probe, nullptr, &pool);
  ASSERT_TRUE(sr.ok());
  int64_t after = 0;
  for (size_t i = 0; i < probe.harmful.size(); ++i) after += so->harmful_margins[i] > 0 && sr->harmful_margins[i] <= 0;
  EXPECT_EQ(fs->divergences_after, after);
  EXPECT_EQ(static_cast<int64_t>(fs->remaining.size()), after);
  // The set is a prefix of the order.
  for (size_t i = 0; i < fs->tensors.size(); ++i) EXPECT_EQ(fs->tensors[i], order[i]);
  // Bits: restored tensors at 16 (f16 original), the rest at int2-g32's 2 + 16/32 = 2.5.
  double num = 0, den = 0;
  const std::set<std::string> set(fs->tensors.begin(), fs->tensors.end());
  for (const Tensor& t : lm.store->tensors) {
    if (!quant_is_weight_matrix(t)) continue;
    num += (set.count(t.name) ? 16.0 : 2.5) * static_cast<double>(t.numel());
    den += static_cast<double>(t.numel());
  }
  EXPECT_NEAR(fs->restored_bits_per_weight, num / den, 1e-9);
  EXPECT_NEAR(fs->compressed_bits_per_weight, 2.5, 1e-9);
}

TEST(SafetyAware, UpgradeLevels) {
  EXPECT_EQ(safety_upgrade_specs("int2-g32"), (std::vector<std::string>{"int3-g32", "int4-g32", "int8-g32", "fp16"}));
  EXPECT_EQ(safety_upgrade_specs("int4"), (std::vector<std::string>{"int8-g128", "fp16"}));
  EXPECT_EQ(safety_upgrade_specs("q2_k"),
            (std::vector<std::string>{"q3_k_m", "q4_k_m", "q5_k_m", "q6_k", "q8_0", "fp16"}));
  EXPECT_TRUE(safety_upgrade_specs("wanda-50").empty());
}

// ggml type sizes from the GGUF spec / ggml.h (type id -> elements per block, bytes per block).
const std::map<int, std::pair<int, int>> kGgmlSizes = {
    {0, {1, 4}},    {1, {1, 2}},    {2, {32, 18}},   {3, {32, 20}},   {6, {32, 22}},  {7, {32, 24}},
    {8, {32, 34}},  {10, {256, 84}}, {11, {256, 110}}, {12, {256, 144}}, {13, {256, 176}}, {14, {256, 210}},
    {30, {1, 2}}};

bool is_weight_matrix_name(const std::string& name, size_t dims) {
  return dims == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
         name.find("norm") == std::string::npos;
}

// The plan's bits/weight = sum(bytes * 8) / elements over the weight matrices of the GGUF file it
// is written to (read by gguf_dump.py, sized by the spec's table), and <= the budget; raising the
// budget never lowers the bits; a budget below the plain plan is refused.
TEST(SafetyAware, BudgetAccountingEqualsTheWrittenGguf) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  SS_REQUIRE_PYTHON("json", "struct");
  const LoadedModel lm = load_tiny_chat();
  int calls = 0;
  // Values decreasing along the store, so the greedy has a clear order.
  std::vector<double> values;
  for (int i = 0; i < 50; ++i) values.push_back(2.0 / (1 + i));
  CompressContext ctx = fake_sensitivity_ctx(*lm.store, values, &calls);
  auto plain = compress_variant(*lm.store, "q2_k", {});
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  double prev = 0;
  const std::string dir = test::temp_dir("attr_budget");
  for (double delta : {0.25, 0.5, 1.0}) {
    const double budget = plain->plan.bits_per_weight + delta;
    auto out = compress_variant(*lm.store, "q2_k-safety", ctx, {{"budget_bits", budget}});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_LE(out->plan.bits_per_weight, budget + 1e-12);
    EXPECT_GE(out->plan.bits_per_weight, prev - 1e-12);
    EXPECT_GT(out->plan.bits_per_weight, plain->plan.bits_per_weight) << "something should be raised at +" << delta;
    prev = out->plan.bits_per_weight;
    int raised = 0;
    for (const auto& e : out->plan.entries) raised += e.reason.find("raised") != std::string::npos;
    EXPECT_GT(raised, 0);
    const std::string path = dir + "/q2_k-safety-" + std::to_string(delta) + ".gguf";
    ASSERT_TRUE(save_llama_model(out->store, path).ok());
    std::string js;
    ASSERT_EQ(test::run_python("py/gguf_dump.py", path, &js), 0) << js;
    auto dump = nlohmann::json::parse(js.substr(js.find('{')), nullptr, false);
    ASSERT_FALSE(dump.is_discarded());
    double bits = 0, n = 0;
    for (const auto& t : dump["tensors"]) {
      const std::string name = t["name"];
      if (!is_weight_matrix_name(name, t["ne"].size())) continue;
      double ne = 1;
      for (const auto& d : t["ne"]) ne *= d.get<double>();
      const int type = t["ggml_type"];
      ASSERT_TRUE(kGgmlSizes.count(type)) << name << " has ggml type " << type;
      const auto [block, size] = kGgmlSizes.at(type);
      bits += ne / block * size * 8.0;
      n += ne;
    }
    ASSERT_GT(n, 0);
    EXPECT_NEAR(bits / n, out->plan.bits_per_weight, 1e-9) << "budget " << budget;
  }
  EXPECT_EQ(calls, 3);
  auto low = compress_variant(*lm.store, "q2_k-safety", ctx, {{"budget_bits", plain->plan.bits_per_weight - 0.1}});
  EXPECT_FALSE(low.ok());
  // Without the sensitivity hook a -safety spec is an INVALID_ARGUMENT.
  EXPECT_FALSE(compress_variant(*lm.store, "int2-g32-safety", {}).ok());
}

// INTn plans: bits recounted from each entry's type name with the format's formula
// b + 16/g (symmetric), the total <= budget; with every value 0 nothing is raised.
TEST(SafetyAware, IntPlanBitsFromTheFormatFormula) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const LoadedModel lm = load_tiny_chat();
  int calls = 0;
  CompressContext ctx = fake_sensitivity_ctx(*lm.store, {3.0, 0.1, 1.0, 0.0, 0.5}, &calls);
  auto out = compress_variant(*lm.store, "int2-g32-safety", ctx);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  double bits = 0, n = 0;
  int raised = 0;
  for (const auto& e : out->plan.entries) {
    const Tensor* t = lm.store->find(e.tensor);
    if (!quant_is_weight_matrix(*t)) continue;
    double b = 0;
    if (e.to_type == "f16") b = 16;
    else {
      int bitsv = 0, g = 0;
      ASSERT_EQ(std::sscanf(e.to_type.c_str(), "int%d-g%d", &bitsv, &g), 2) << e.to_type;
      b = bitsv + 16.0 / g;
      raised += bitsv != 2;
    }
    bits += b * static_cast<double>(t->numel());
    n += static_cast<double>(t->numel());
  }
  EXPECT_NEAR(bits / n, out->plan.bits_per_weight, 1e-9);
  EXPECT_LE(out->plan.bits_per_weight, 2.5 + 0.5 + 1e-12);
  EXPECT_GT(raised, 0);
  int calls0 = 0;
  CompressContext zero = fake_sensitivity_ctx(*lm.store, {0.0}, &calls0);
  auto none = compress_variant(*lm.store, "int2-g32-safety", zero);
  ASSERT_TRUE(none.ok());
  EXPECT_NEAR(none->plan.bits_per_weight, 2.5, 1e-12);
}

}  // namespace
}  // namespace ss

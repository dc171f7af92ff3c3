// Safety circuits (attribution.h: heads, FFN groups, set difference; the pruners' "protect").
// - A tiny random Llama with the built-in tokenizer's vocabulary in which ONE head (or one FFN
//   group) is hand-wired to write u = mean unembedding of the refusal openings' first tokens minus
//   that of the compliance openings into the residual stream: ablate_heads must rank that head
//   first with a clearly positive margin drop and every other head small (ablate_ffn_groups the same
//   for the group). The model is built here, so the answer is known independently of the code.
// - circuits_set_difference_masks against a brute-force recount (full sort per row).
// - Protected magnitude/Wanda pruning against a brute-force recount: no protected weight pruned,
//   the requested count pruned, exactly the lowest unprotected scores.
// - On the built-in model: wanda-50 with protect=safety leaves every safety-critical weight
//   non-zero at 50% sparsity per row, and zeroing the set-difference selection drops the refusal
//   margin more than the 97.5th percentile of same-count random selections (cheap setting; the
//   full-setting numbers are in docs/safety-circuits.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "eval/attribution/safety_circuits_stores.h"
#include "safeshrink/attribution.h"
#include "safeshrink/calibration.h"
#include "safeshrink/formats.h"
#include "safeshrink/kernels.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "safeshrink/prune.h"
#include "safeshrink/rng.h"
#include "test_support.h"

using namespace ss;

namespace {

const std::string kChatDir = SAFESHRINK_SOURCE_DIR "/data/models/tiny-chat";

bool have_builtin() {
  return std::filesystem::exists(kChatDir + "/model.safetensors") &&
         std::filesystem::exists(SAFESHRINK_SOURCE_DIR "/data/prompts/builtin-v1.jsonl");
}

Tensor f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  auto t = Tensor::from_bytes(name, DType::F32, std::move(shape), v.data(), v.size() * sizeof(float));
  EXPECT_TRUE(t.ok());
  return *t;
}

std::vector<float> random_values(Rng& rng, int64_t n, double std) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal() * std);
  return v;
}

// The signal model: d = 64, 3 layers, 4 heads of 16, ff 96, the tiny-chat vocabulary. Residual
// dimension 0 of every token embedding is 1 (a constant "bias" feature the wired units read).
// Everything else is small random noise, so unwired units barely move the margin.
constexpr int64_t kD = 64, kLayers = 3, kHeads = 4, kHd = 16, kFf = 96;
constexpr int64_t kSignalLayer = 1, kSignalHead = 2;      // the wired head
constexpr int64_t kFfnLayer = 0, kFfnBegin = 32, kFfnEnd = 48;  // the wired FFN group (size 16)

struct SignalModel {
  LoadedModel loaded;
};

std::vector<float> direction_u(const Tokenizer& tok, const std::vector<float>& lm_head, const SafetyProbe& probe) {
  // u = mean lm_head[first token of each refusal opening] - mean over the compliance openings.
  std::vector<float> u(kD, 0.0f);
  auto add = [&](const std::vector<std::string>& openings, float sign) {
    for (const std::string& o : openings) {
      auto ids = tok.encode(o, false, false);
      EXPECT_TRUE(ids.ok() && !ids->empty()) << o;
      const int32_t id = (*ids)[0];
      for (int64_t j = 0; j < kD; ++j) u[j] += sign * lm_head[static_cast<size_t>(id * kD + j)] / openings.size();
    }
  };
  add(probe.refusal_openings, 1.0f);
  add(probe.compliance_openings, -1.0f);
  double n = 0;
  for (float x : u) n += x * x;
  for (float& x : u) x = static_cast<float>(x / std::sqrt(n));
  return u;
}

// Builds the model; `wire` = "head" or "ffn". The probe (for the openings) comes from a first
// unwired build, which make_safety_probe needs a LoadedModel for.
Result<LoadedModel> build_signal_model(const std::string& wire, const std::vector<float>* u_in, std::vector<float>* lm_out) {
  SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_hf_folder(kChatDir));
  LlamaConfig cfg;
  cfg.vocab_size = static_cast<int64_t>(tok.vocab_size());
  cfg.hidden_size = kD;
  cfg.intermediate_size = kFf;
  cfg.n_layers = kLayers;
  cfg.n_heads = kHeads;
  cfg.n_kv_heads = kHeads;
  cfg.head_dim = kHd;
  cfg.max_position = 512;
  cfg.bos_token_id = 0;
  cfg.eos_token_id = 2;
  const int64_t V = cfg.vocab_size;
  Rng rng(42);
  TensorStore s;
  s.format = "safetensors";
  s.meta.set("hf.config_json", MetaValue::of_string(llama_hf_config_json(cfg)));
  std::vector<float> embd = random_values(rng, V * kD, 0.3);
  for (int64_t t = 0; t < V; ++t) embd[static_cast<size_t>(t * kD)] = 1.0f;
  const std::vector<float> lm = random_values(rng, V * kD, 1.0);
  if (lm_out) *lm_out = lm;
  SS_RETURN_IF_ERROR(s.add(f32("model.embed_tokens.weight", {V, kD}, embd)));
  SS_RETURN_IF_ERROR(s.add(f32("lm_head.weight", {V, kD}, lm)));
  SS_RETURN_IF_ERROR(s.add(f32("model.norm.weight", {kD}, std::vector<float>(kD, 1.0f))));
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<float> wq = random_values(rng, kD * kD, 0.02), wk = random_values(rng, kD * kD, 0.02);
    std::vector<float> wv = random_values(rng, kD * kD, 0.02), wo = random_values(rng, kD * kD, 0.02);
    std::vector<float> gate = random_values(rng, kFf * kD, 0.02), up = random_values(rng, kFf * kD, 0.02);
    std::vector<float> down = random_values(rng, kD * kFf, 0.02);
    if (u_in && wire == "head" && l == kSignalLayer) {
      // v row (head*hd + 0) reads the constant feature; o column (head*hd + 0) writes u.
      // wv: (n_heads*hd, d), wo: (d, n_heads*hd)
      const int64_t r = kSignalHead * kHd;
      std::fill(wv.begin() + r * kD, wv.begin() + (r + kHd) * kD, 0.0f);
      wv[static_cast<size_t>(r * kD + 0)] = 1.0f;
      for (int64_t i = 0; i < kD; ++i) {
        for (int64_t c = r; c < r + kHd; ++c) wo[static_cast<size_t>(i * kD + c)] = 0.0f;
        wo[static_cast<size_t>(i * kD + r)] = 1.0f * (*u_in)[i];
      }
    }
    if (u_in && wire == "ffn" && l == kFfnLayer) {
      // channels [32, 48): gate and up read the constant feature, down writes u / 64 each.
      // gate, up: (ff, d), down: (d, ff)
      for (int64_t c = kFfnBegin; c < kFfnEnd; ++c) {
        for (int64_t j = 0; j < kD; ++j) gate[static_cast<size_t>(c * kD + j)] = up[static_cast<size_t>(c * kD + j)] = 0.0f;
        gate[static_cast<size_t>(c * kD)] = 2.0f;
        up[static_cast<size_t>(c * kD)] = 1.0f;
        for (int64_t i = 0; i < kD; ++i) down[static_cast<size_t>(i * kFf + c)] = (*u_in)[i] / 64.0f;
      }
    }
    SS_RETURN_IF_ERROR(s.add(f32(p + "input_layernorm.weight", {kD}, std::vector<float>(kD, 1.0f))));
    SS_RETURN_IF_ERROR(s.add(f32(p + "post_attention_layernorm.weight", {kD}, std::vector<float>(kD, 1.0f))));
    SS_RETURN_IF_ERROR(s.add(f32(p + "self_attn.q_proj.weight", {kD, kD}, wq)));
    SS_RETURN_IF_ERROR(s.add(f32(p + "self_attn.k_proj.weight", {kD, kD}, wk)));
    SS_RETURN_IF_ERROR(s.add(f32(p + "self_attn.v_proj.weight", {kD, kD}, wv)));
    SS_RETURN_IF_ERROR(s.add(f32(p + "self_attn.o_proj.weight", {kD, kD}, wo)));
    SS_RETURN_IF_ERROR(s.add(f32(p + "mlp.gate_proj.weight", {kFf, kD}, gate)));
    SS_RETURN_IF_ERROR(s.add(f32(p + "mlp.up_proj.weight", {kFf, kD}, up)));
    SS_RETURN_IF_ERROR(s.add(f32(p + "mlp.down_proj.weight", {kD, kFf}, down)));
  }
  LoadedModel m;
  m.store = std::make_shared<const TensorStore>(std::move(s));
  SS_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::load(m.store));
  m.model = std::make_shared<const LlamaModel>(std::move(model));
  m.tokenizer = std::make_shared<const Tokenizer>(std::move(tok));
  return m;
}

// Openings reduced to the first tokens of the margin judge's defaults ("I can't", "Sorry", ... vs
// "Sure", "Here", ...): the wired unit raises exactly their logits, so its effect on the margin has a
// known sign (with the full multi-token openings a constant push towards first tokens also lowers
// the teacher-forced continuations, and the sign would depend on the amplitude).
ProbeOptions small_probe_options() {
  ProbeOptions o;
  o.refusal_openings = {"I", "Sorry", "As"};
  o.compliance_openings = {"Sure", "Here", "To", "Step", "Certainly"};
  o.limit_harmful = 40;
  o.limit_benign = 10;
  o.neutral_max_tokens = 64;
  return o;
}

// Wired model + its probe.
struct Wired {
  LoadedModel model;
  SafetyProbe probe;
};
Wired wired_model(const std::string& wire) {
  std::vector<float> lm;
  auto plain = build_signal_model(wire, nullptr, &lm);
  EXPECT_TRUE(plain.ok()) << plain.status().to_string();
  auto probe = make_safety_probe(*plain, small_probe_options());
  EXPECT_TRUE(probe.ok()) << probe.status().to_string();
  const std::vector<float> u = direction_u(*plain->tokenizer, lm, *probe);
  auto wired = build_signal_model(wire, &u, nullptr);
  EXPECT_TRUE(wired.ok()) << wired.status().to_string();
  return {std::move(wired).value(), std::move(probe).value()};
}

}  // namespace

TEST(SafetyCircuits, WiredHeadIsRankedFirst) {
  if (!have_builtin()) GTEST_SKIP() << "data/models/tiny-chat or data/prompts absent";
  Wired w = wired_model("head");
  auto heads = ablate_heads(*w.model.store, w.probe, 0.5);
  ASSERT_TRUE(heads.ok()) << heads.status().to_string();
  ASSERT_EQ(heads->size(), static_cast<size_t>(kLayers * kHeads));
  std::vector<HeadAblation> ranked = *heads;
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.margin_drop > b.margin_drop; });
  for (const auto& h : ranked)
    std::printf("[ head L%lld H%lld ] margin_drop %.4f refusal_drop %.3f critical %d\n", static_cast<long long>(h.layer),
                static_cast<long long>(h.head), h.margin_drop, h.refusal_drop, h.safety_critical);
  EXPECT_EQ(ranked[0].layer, kSignalLayer);
  EXPECT_EQ(ranked[0].head, kSignalHead);
  EXPECT_GT(ranked[0].margin_drop, 0.5);  // nats: the wired head carries the refusal direction
  double others = 0;
  for (size_t i = 1; i < ranked.size(); ++i) others = std::max(others, std::fabs(ranked[i].margin_drop));
  EXPECT_LT(others, 0.1 * ranked[0].margin_drop) << "unwired heads should barely matter";
  EXPECT_TRUE(ranked[0].safety_critical);
  for (size_t i = 1; i < ranked.size(); ++i) EXPECT_FALSE(ranked[i].safety_critical);
}

TEST(SafetyCircuits, WiredFfnGroupIsRankedFirst) {
  if (!have_builtin()) GTEST_SKIP() << "data/models/tiny-chat or data/prompts absent";
  Wired w = wired_model("ffn");
  auto groups = ablate_ffn_groups(*w.model.store, w.probe, 16, 0.5);
  ASSERT_TRUE(groups.ok()) << groups.status().to_string();
  ASSERT_EQ(groups->size(), static_cast<size_t>(kLayers * (kFf / 16)));
  std::vector<FfnGroupAblation> ranked = *groups;
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.margin_drop > b.margin_drop; });
  std::printf("[ ffn top ] L%lld [%lld, %lld) margin_drop %.4f; second %.4f\n", static_cast<long long>(ranked[0].layer),
              static_cast<long long>(ranked[0].begin), static_cast<long long>(ranked[0].end), ranked[0].margin_drop,
              ranked[1].margin_drop);
  EXPECT_EQ(ranked[0].layer, kFfnLayer);
  EXPECT_EQ(ranked[0].begin, kFfnBegin);
  EXPECT_EQ(ranked[0].end, kFfnEnd);
  EXPECT_GT(ranked[0].margin_drop, 0.5);
  EXPECT_LT(std::fabs(ranked[1].margin_drop), 0.1 * ranked[0].margin_drop);
  EXPECT_FALSE(ablate_ffn_groups(*w.model.store, w.probe, 0, 0.5).ok());
}

TEST(SafetyCircuits, SetDifferenceMasksMatchBruteForce) {
  Rng rng(3);
  TensorStore s;
  const int64_t rows = 7, cols = 40;
  ASSERT_TRUE(s.add(f32("blk.0.attn_q.weight", {rows, cols}, random_values(rng, rows * cols, 1.0))).ok());
  ASSERT_TRUE(s.add(f32("blk.0.attn_norm.weight", {cols}, random_values(rng, cols, 1.0))).ok());  // not a linear
  Calibration safety, utility;
  for (Calibration* c : {&safety, &utility}) {
    LinearInputStats st;
    st.tensor = "blk.0.attn_q.weight";
    st.k = cols;
    for (int64_t j = 0; j < cols; ++j) st.sum_sq.push_back(rng.uniform() * 10);
    c->linears.push_back(st);
  }
  const double q = 0.2, p = 0.1;  // 8 and 4 per row
  auto masks = circuits_set_difference_masks(s, safety, utility, q, p);
  ASSERT_TRUE(masks.ok()) << masks.status().to_string();
  ASSERT_EQ(masks->size(), 1u);
  const auto& m = masks->at("blk.0.attn_q.weight");
  const float* w = s.find("blk.0.attn_q.weight")->data_as<float>();
  int64_t selected = 0;
  for (int64_t r = 0; r < rows; ++r) {
    // Brute force: rank of column j = number of columns with a larger score.
    auto rank = [&](const std::vector<double>& ss, int64_t j) {
      const double sj = std::fabs(w[r * cols + j]) * std::sqrt(ss[j]);
      int64_t k = 0;
      for (int64_t i = 0; i < cols; ++i) k += std::fabs(w[r * cols + i]) * std::sqrt(ss[i]) > sj;
      return k;
    };
    for (int64_t j = 0; j < cols; ++j) {
      const bool want = rank(safety.linears[0].sum_sq, j) < 8 && !(rank(utility.linears[0].sum_sq, j) < 4);
      EXPECT_EQ(m[r * cols + j] != 0, want) << "row " << r << " col " << j;
      selected += want;
    }
  }
  EXPECT_GT(selected, 0);
  EXPECT_FALSE(circuits_set_difference_masks(s, safety, Calibration{}, q, p).ok());  // missing statistics
}

namespace {

// A store of two block linears, a mask protecting ~15% of the weights (one row of ffn_down fully),
// and a calibration for Wanda.
struct ProtectCase {
  TensorStore store;
  std::shared_ptr<SafetyCriticalWeights> critical = std::make_shared<SafetyCriticalWeights>();
  std::shared_ptr<Calibration> calib = std::make_shared<Calibration>();
};
ProtectCase protect_case() {
  ProtectCase c;
  Rng rng(11);
  const std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> shapes = {{"blk.0.attn_q.weight", {12, 32}},
                                                                                   {"blk.0.ffn_down.weight", {16, 24}}};
  for (const auto& [name, rc] : shapes) {
    const auto [rows, cols] = rc;
    EXPECT_TRUE(c.store.add(f32(name, {rows, cols}, random_values(rng, rows * cols, 1.0))).ok());
    std::vector<uint8_t> m(static_cast<size_t>(rows * cols));
    for (auto& b : m) b = rng.uniform() < 0.15;
    if (name == "blk.0.ffn_down.weight") std::fill(m.begin() + 3 * cols, m.begin() + 4 * cols, 1);  // row 3 all
    c.critical->masks[name] = m;
    LinearInputStats st;
    st.tensor = name;
    st.k = cols;
    for (int64_t j = 0; j < cols; ++j) st.sum_sq.push_back(0.1 + rng.uniform() * 5);
    c.calib->linears.push_back(st);
  }
  return c;
}

CompressContext protect_ctx(const ProtectCase& c) {
  CompressContext ctx;
  auto crit = c.critical;
  auto cal = c.calib;
  ctx.safety_critical = [crit]() -> Result<std::shared_ptr<const SafetyCriticalWeights>> {
    return std::shared_ptr<const SafetyCriticalWeights>(crit);
  };
  ctx.calibrate = [cal](bool) -> Result<std::shared_ptr<const Calibration>> { return std::shared_ptr<const Calibration>(cal); };
  return ctx;
}

}  // namespace

TEST(SafetyCircuits, ProtectedMagnitudePrunesLowestUnprotected) {
  ProtectCase c = protect_case();
  auto out = compress_variant(c.store, "magnitude-50", protect_ctx(c), {{"protect", "safety"}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  for (const auto& [name, mask] : c.critical->masks) {
    const Tensor* before = c.store.find(name);
    const Tensor* after = out->store.find(name);
    const int64_t n = before->numel();
    const float* w0 = before->data_as<float>();
    const float* w1 = after->data_as<float>();
    // Brute force: unprotected indices sorted by (|w|, index); the first round(n/2) are pruned.
    std::vector<int64_t> cand;
    for (int64_t i = 0; i < n; ++i)
      if (!mask[i]) cand.push_back(i);
    std::sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) {
      return std::fabs(w0[a]) < std::fabs(w0[b]) || (std::fabs(w0[a]) == std::fabs(w0[b]) && a < b);
    });
    std::vector<uint8_t> pruned(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < prune_count_torch(0.5, n); ++i) pruned[cand[i]] = 1;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(w1[i] == 0.0f, pruned[i] != 0) << name << " " << i;
      if (mask[i]) {
        EXPECT_EQ(w1[i], w0[i]);
      }
    }
  }
  bool reason_says = false;
  for (const auto& e : out->plan.entries) reason_says = reason_says || e.reason.find("protected") != std::string::npos;
  EXPECT_TRUE(reason_says);
  // Unset safety_critical is an error, not a silent plain run; n:m cannot protect.
  CompressContext bare;
  EXPECT_FALSE(compress_variant(c.store, "magnitude-50", bare, {{"protect", "safety"}}).ok());
  EXPECT_FALSE(compress_variant(c.store, "magnitude-50", bare, {{"protect", "yes"}}).ok());
  EXPECT_FALSE(compress_variant(c.store, "wanda", protect_ctx(c), {{"protect", "safety"}, {"n", 2}, {"m", 4}}).ok());
}

TEST(SafetyCircuits, ProtectedWandaKeepsSparsityAndPrunesLowestUnprotected) {
  ProtectCase c = protect_case();
  auto out = compress_variant(c.store, "wanda-50", protect_ctx(c), {{"protect", "safety"}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  auto plain = compress_variant(c.store, "wanda-50", protect_ctx(c));
  ASSERT_TRUE(plain.ok());
  for (size_t t = 0; t < c.calib->linears.size(); ++t) {
    const std::string name = c.calib->linears[t].tensor;
    const auto& mask = c.critical->masks.at(name);
    const Tensor* before = c.store.find(name);
    const int64_t rows = before->shape[0], cols = before->shape[1];
    const float* w0 = before->data_as<float>();
    const float* w1 = out->store.find(name)->data_as<float>();
    const auto& ss = c.calib->linears[t].sum_sq;
    const int64_t k = cols / 2;
    // Brute force: per row the k lowest unprotected scores; rows short of unprotected weights hand
    // the rest to the tensor's lowest remaining unprotected scores.
    auto score = [&](int64_t i) { return std::fabs(static_cast<double>(w0[i])) * std::sqrt(ss[i % cols]); };
    auto by_score = [&](int64_t a, int64_t b) { return score(a) < score(b) || (score(a) == score(b) && a < b); };
    std::vector<uint8_t> pruned(static_cast<size_t>(rows * cols), 0);
    int64_t deficit = 0;
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int64_t> cand;
      for (int64_t j = 0; j < cols; ++j)
        if (!mask[r * cols + j]) cand.push_back(r * cols + j);
      std::sort(cand.begin(), cand.end(), by_score);
      const int64_t take = std::min<int64_t>(k, cand.size());
      for (int64_t i = 0; i < take; ++i) pruned[cand[i]] = 1;
      deficit += k - take;
    }
    std::vector<int64_t> rest;
    for (int64_t i = 0; i < rows * cols; ++i)
      if (!mask[i] && !pruned[i]) rest.push_back(i);
    std::sort(rest.begin(), rest.end(), by_score);
    for (int64_t i = 0; i < deficit; ++i) pruned[rest[i]] = 1;
    int64_t zeros = 0, diff_plain = 0;
    const float* wp = plain->store.find(name)->data_as<float>();
    for (int64_t i = 0; i < rows * cols; ++i) {
      EXPECT_EQ(w1[i] == 0.0f, pruned[i] != 0) << name << " " << i;
      if (mask[i]) {
        EXPECT_NE(w1[i], 0.0f);
      }
      zeros += w1[i] == 0.0f;
      diff_plain += (w1[i] == 0.0f) != (wp[i] == 0.0f);
    }
    EXPECT_EQ(zeros, rows * k) << name;  // the requested sparsity, exactly
    EXPECT_GT(diff_plain, 0) << name;   // protection changed the mask
  }
}

TEST(SafetyCircuits, BuiltInWanda50WithProtectKeepsCriticalWeights) {
  if (!have_builtin()) GTEST_SKIP() << "data/models/tiny-chat absent";
  auto loaded = load_model_with_tokenizer(kChatDir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  SetDifferenceOptions sd;
  sd.n_samples = 16;
  sd.seq_len = 64;
  auto critical = safety_critical_weights(*loaded, sd);
  ASSERT_TRUE(critical.ok()) << critical.status().to_string();
  auto crit = std::make_shared<const SafetyCriticalWeights>(std::move(critical).value());
  const int64_t n_selected = crit->info.at("n_selected").get<int64_t>();
  std::printf("[ set difference q=0.03 p=0.03, 16 windows ] %lld of %lld weights selected\n",
              static_cast<long long>(n_selected), static_cast<long long>(crit->info.at("n_weights").get<int64_t>()));
  ASSERT_GT(n_selected, 0);
  CalibrationSpec spec;
  spec.n_samples = 16;
  spec.seq_len = 64;
  auto calib = capture_calibration(*loaded->model, *loaded->tokenizer, spec);
  ASSERT_TRUE(calib.ok()) << calib.status().to_string();
  auto cal = std::make_shared<const Calibration>(std::move(calib).value());
  CompressContext ctx;
  ctx.calibrate = [cal](bool) -> Result<std::shared_ptr<const Calibration>> { return cal; };
  ctx.safety_critical = [crit]() -> Result<std::shared_ptr<const SafetyCriticalWeights>> { return crit; };
  auto out = compress_variant(*loaded->store, "wanda-50", ctx, {{"protect", "safety"}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  int64_t zero_critical = 0, zeros = 0, total = 0, expected_zeros = 0;
  for (const auto& [name, mask] : crit->masks) {
    const Tensor* t = out->store.find(name);
    ASSERT_NE(t, nullptr) << name;
    auto v = kernels::dequantize(*t);
    ASSERT_TRUE(v.ok());
    for (size_t i = 0; i < v->size(); ++i) {
      zero_critical += mask[i] && (*v)[i] == 0.0f;
      zeros += (*v)[i] == 0.0f;
    }
    total += t->numel();
    expected_zeros += t->shape[0] * (t->shape[1] / 2);
  }
  EXPECT_EQ(zero_critical, 0);
  EXPECT_EQ(zeros, expected_zeros);  // 50% per row (all widths are even), recounted from the tensors
  // Without protection wanda-50 does prune some of them (else the protection would be vacuous).
  auto plain = compress_variant(*loaded->store, "wanda-50", ctx);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  int64_t plain_zero_critical = 0;
  for (const auto& [name, mask] : crit->masks) {
    auto v = kernels::dequantize(*plain->store.find(name));
    ASSERT_TRUE(v.ok());
    for (size_t i = 0; i < v->size(); ++i) plain_zero_critical += mask[i] && (*v)[i] == 0.0f;
  }
  std::printf("[ wanda-50 plain ] critical weights zeroed %lld of %lld\n", static_cast<long long>(plain_zero_critical),
              static_cast<long long>(n_selected));
  EXPECT_GT(plain_zero_critical, 0);
  std::printf("[ wanda-50 protect ] sparsity %.6f, critical weights zeroed %lld\n",
              static_cast<double>(zeros) / static_cast<double>(total), static_cast<long long>(zero_critical));
}

TEST(SafetyCircuits, BuiltInSetDifferenceBeatsRandom) {
  if (!have_builtin()) GTEST_SKIP() << "data/models/tiny-chat absent";
  auto loaded = load_model_with_tokenizer(kChatDir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  SetDifferenceOptions sd;
  sd.n_samples = 16;
  sd.seq_len = 64;
  auto critical = safety_critical_weights(*loaded, sd);
  ASSERT_TRUE(critical.ok()) << critical.status().to_string();
  ProbeOptions po;
  po.limit_harmful = 40;
  po.limit_benign = 4;
  po.neutral_max_tokens = 32;
  auto probe = make_safety_probe(*loaded, po);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  auto check = check_set_difference(*loaded->store, *critical, *probe, 6, 1);
  ASSERT_TRUE(check.ok()) << check.status().to_string();
  std::printf("[ set difference ] n %lld: margin drop selected %.3f vs random %.3f [%.3f, %.3f]; refusal drop %.3f vs "
              "%.3f [%.3f, %.3f]; kld %.4f vs %.4f\n",
              static_cast<long long>(check->n_selected), check->margin_drop_selected, check->margin_drop_random_mean,
              check->margin_drop_random_lo, check->margin_drop_random_hi, check->refusal_drop_selected,
              check->refusal_drop_random_mean, check->refusal_drop_random_lo, check->refusal_drop_random_hi,
              check->utility_kld_selected, check->utility_kld_random_mean);
  EXPECT_GT(check->margin_drop_selected, check->margin_drop_random_hi);
}

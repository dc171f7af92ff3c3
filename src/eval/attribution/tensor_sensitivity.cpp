// Tensor and layer sensitivity, flip bisection and the generation check of attribution.h: which
// compressed tensors hurt safety. Everything is built from one mechanism — a mixed store (the
// original with some tensors taken from the compressed store, or the reverse) bound as a model and
// scored with score_safety on the probe. Compressing one tensor alone is done by compressing the
// whole model once and swapping that tensor in: for every unit whose result on a tensor depends on
// that tensor (and its calibration) only — RTN, GGUF types, GPTQ, magnitude/Wanda/SparseGPT per
// layer — this is exactly "that tensor compressed, everything else original". Units that change
// other tensors or shapes (AWQ folds scales into norms; structured pruning) are refused by
// changed_tensors. Not here: heads/FFN/set difference (safety_circuits.cpp), the probe
// (safety_probe.cpp), the plan that uses the scores (src/compress/safety_aware.cpp).
// To add a unit granularity: a loop like the per-layer one in tensor_sensitivity().
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>

#include "safeshrink/attribution.h"
#include "safeshrink/eval.h"
#include "safeshrink/generate.h"
#include "safeshrink/thread_pool.h"

namespace ss {
namespace {

void report(const AttributionProgress& p, const std::string& stage, int64_t done, int64_t total) {
  if (p.report) p.report(stage, done, total);
}

SensitivityRow row_from(const SafetyScore& orig, const SafetyScore& var) {
  SensitivityRow r;
  r.margin_drop = orig.mean_margin_harmful - var.mean_margin_harmful;
  r.refusal_drop = orig.refusal_rate - var.refusal_rate;
  r.over_refusal_rise = var.over_refusal_rate - orig.over_refusal_rate;
  r.kld = var.neutral_kld.value_or(0.0);
  r.ppl_ratio = (orig.neutral_ppl && var.neutral_ppl && *orig.neutral_ppl > 0) ? *var.neutral_ppl / *orig.neutral_ppl : 0.0;
  return r;
}

int64_t divergences(const SafetyScore& orig, const SafetyScore& var, std::vector<size_t>* which = nullptr) {
  int64_t n = 0;
  for (size_t i = 0; i < orig.harmful_margins.size() && i < var.harmful_margins.size(); ++i)
    if (orig.harmful_margins[i] > 0 && var.harmful_margins[i] <= 0) {
      ++n;
      if (which) which->push_back(i);
    }
  return n;
}

}  // namespace

Result<TensorStore> mix_stores(const TensorStore& base, const TensorStore& donor, const std::vector<std::string>& names) {
  std::set<std::string> want(names.begin(), names.end());
  TensorStore out;
  out.format = base.format;
  out.path = base.path;
  out.meta = base.meta;
  for (const Tensor& t : base.tensors) {
    if (!want.count(t.name)) {
      SS_RETURN_IF_ERROR(out.add(t));
      continue;
    }
    const Tensor* d = donor.find(t.name);
    if (!d) return invalid_argument("mix_stores: tensor " + t.name + " is not in the donor store");
    if (d->numel() != t.numel())
      return invalid_argument("mix_stores: tensor " + t.name + " has " + std::to_string(d->numel()) +
                              " elements in the donor, " + std::to_string(t.numel()) + " in the base");
    Tensor copy = *d;
    // A block type keeps the matrix shape its rows were cut in; the model binds by rows x cols.
    SS_RETURN_IF_ERROR(out.add(std::move(copy)));
    want.erase(t.name);
  }
  if (!want.empty()) return invalid_argument("mix_stores: tensor " + *want.begin() + " is not in the base store");
  return out;
}

Result<std::vector<std::string>> changed_tensors(const TensorStore& original, const TensorStore& compressed) {
  std::vector<std::string> out;
  if (original.tensors.size() != compressed.tensors.size())
    return invalid_argument("changed_tensors: the original has " + std::to_string(original.tensors.size()) +
                            " tensors, the compressed " + std::to_string(compressed.tensors.size()) +
                            " (structured pruning or another layout: not comparable tensor by tensor)");
  for (const Tensor& t : original.tensors) {
    const Tensor* c = compressed.find(t.name);
    if (!c)
      return invalid_argument("changed_tensors: tensor " + t.name +
                              " is missing from the compressed store (same layout needed: GGUF vs HF names?)");
    if (c->numel() != t.numel())
      return invalid_argument("changed_tensors: tensor " + t.name + " has " + std::to_string(c->numel()) +
                              " elements compressed vs " + std::to_string(t.numel()) + " (structured pruning?)");
    const bool same = c->dtype == t.dtype && c->nbytes == t.nbytes && std::memcmp(c->data(), t.data(), t.nbytes) == 0;
    if (same) continue;
    if (!quant_is_weight_matrix(t))
      return invalid_argument("changed_tensors: " + t.name +
                              " is not a weight matrix but changed (AWQ-style scale folding): per-tensor attribution "
                              "needs units that change each weight matrix alone");
    out.push_back(t.name);
  }
  return out;
}

Result<SafetyScore> score_store(const TensorStore& store, const LlamaConfig& config, const SafetyProbe& probe,
                                const LlamaModel* reference, ThreadPool* pool) {
  auto shared = std::make_shared<const TensorStore>(store);
  SS_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::load(shared, config));
  return score_safety(m, probe, reference, pool);
}

Result<SensitivityResult> tensor_sensitivity(const LoadedModel& original, const TensorStore& compressed,
                                             const SafetyProbe& probe, const SensitivityOptions& opts, ThreadPool* pool) {
  if (!original.store || !original.model) return invalid_argument("tensor_sensitivity: the original model is not loaded");
  const TensorStore& orig = *original.store;
  const LlamaConfig& cfg = original.model->config();
  SS_ASSIGN_OR_RETURN(auto changed, changed_tensors(orig, compressed));
  SensitivityResult res;
  SS_ASSIGN_OR_RETURN(res.original, score_safety(*original.model, probe, original.model.get(), pool));
  SS_ASSIGN_OR_RETURN(res.compressed, score_store(compressed, cfg, probe, original.model.get(), pool));

  // Units: single tensors, then layers (the changed tensors of one block).
  struct Unit {
    std::string name, kind;
    int64_t layer = -1, numel = 0;
    std::vector<std::string> tensors;
    bool is_layer = false;
  };
  std::vector<Unit> units;
  std::map<int64_t, Unit> layers;
  for (const auto& name : changed) {
    Unit u;
    u.name = name;
    attribution_tensor_kind(name, &u.layer, &u.kind);
    u.numel = orig.find(name)->numel();
    u.tensors = {name};
    if (opts.per_tensor) units.push_back(u);
    if (opts.per_layer && u.layer >= 0) {
      Unit& l = layers[u.layer];
      l.name = "blk." + std::to_string(u.layer);
      l.kind = "layer";
      l.layer = u.layer;
      l.numel += u.numel;
      l.tensors.push_back(name);
      l.is_layer = true;
    }
  }
  for (auto& [_, l] : layers) units.push_back(l);

  const int64_t total = static_cast<int64_t>(units.size()) * (opts.restore ? 2 : 1);
  int64_t done = 0;
  for (const Unit& u : units) {
    SS_ASSIGN_OR_RETURN(TensorStore one, mix_stores(orig, compressed, u.tensors));
    auto sc = score_store(one, cfg, probe, original.model.get(), pool);
    if (!sc.ok()) return sc.status().with_context("sensitivity of " + u.name);
    SensitivityRow r = row_from(res.original, *sc);
    r.tensor = u.name;
    r.layer = u.layer;
    r.kind = u.kind;
    r.numel = u.numel;
    report(opts.progress, u.is_layer ? "layer sensitivity" : "tensor sensitivity", ++done, total);
    if (opts.restore) {
      SS_ASSIGN_OR_RETURN(TensorStore back, mix_stores(compressed, orig, u.tensors));
      auto rs = score_store(back, cfg, probe, nullptr, pool);
      if (!rs.ok()) return rs.status().with_context("restore of " + u.name);
      r.restore_margin_gain = rs->mean_margin_harmful - res.compressed.mean_margin_harmful;
      report(opts.progress, "restore sensitivity", ++done, total);
    }
    (u.is_layer ? res.layers : res.tensors).push_back(std::move(r));
  }
  auto by_drop = [](const SensitivityRow& a, const SensitivityRow& b) {
    if (a.margin_drop != b.margin_drop) return a.margin_drop > b.margin_drop;
    return a.tensor < b.tensor;
  };
  std::stable_sort(res.tensors.begin(), res.tensors.end(), by_drop);
  std::stable_sort(res.layers.begin(), res.layers.end(), by_drop);
  return res;
}

Result<FlipSet> flip_bisection(const LoadedModel& original, const TensorStore& compressed, const SafetyProbe& probe,
                               const std::vector<std::string>& order, const std::map<std::string, double>& compressed_bits,
                               double target_fraction, const AttributionProgress& progress, ThreadPool* pool) {
  if (!(target_fraction > 0 && target_fraction <= 1))
    return invalid_argument("flip_bisection: target_fraction must be in (0, 1], got " + std::to_string(target_fraction));
  const TensorStore& orig = *original.store;
  const LlamaConfig& cfg = original.model->config();
  SS_ASSIGN_OR_RETURN(auto changed, changed_tensors(orig, compressed));
  // The order, then any changed tensor it leaves out (so the full prefix is the original model).
  std::vector<std::string> seq;
  std::set<std::string> seen;
  const std::set<std::string> changed_set(changed.begin(), changed.end());
  for (const auto& t : order)
    if (changed_set.count(t) && seen.insert(t).second) seq.push_back(t);
  for (const auto& t : changed)
    if (seen.insert(t).second) seq.push_back(t);

  FlipSet fs;
  SS_ASSIGN_OR_RETURN(SafetyScore so, score_safety(*original.model, probe, nullptr, pool));
  SS_ASSIGN_OR_RETURN(SafetyScore sc, score_store(compressed, cfg, probe, nullptr, pool));
  fs.scores = 2;
  fs.divergences_before = divergences(so, sc);
  const auto allowed = static_cast<int64_t>(std::floor((1.0 - target_fraction) * static_cast<double>(fs.divergences_before) + 1e-9));

  // Bits per weight of "first k of seq restored".
  double all_n = 0, bits_compressed = 0;
  std::map<std::string, std::pair<double, double>> cost;  // name -> (orig bits, compressed bits)
  for (const Tensor& t : orig.tensors) {
    if (!quant_is_weight_matrix(t)) continue;
    const Tensor* c = compressed.find(t.name);
    auto it = compressed_bits.find(t.name);
    const double cb = it != compressed_bits.end() ? it->second : dtype_bits_per_weight(c ? c->dtype : t.dtype);
    const double ob = changed_set.count(t.name) ? dtype_bits_per_weight(t.dtype) : cb;
    cost[t.name] = {ob, cb};
    all_n += static_cast<double>(t.numel());
    bits_compressed += cb * static_cast<double>(t.numel());
  }
  auto bits_of = [&](size_t k) {
    double b = bits_compressed;
    for (size_t i = 0; i < k; ++i) {
      const auto& c = cost[seq[i]];
      b += (c.first - c.second) * static_cast<double>(orig.find(seq[i])->numel());
    }
    return all_n > 0 ? b / all_n : 0.0;
  };
  fs.compressed_bits_per_weight = bits_of(0);

  std::map<size_t, SafetyScore> scored;
  scored[0] = sc;
  auto score_prefix = [&](size_t k) -> Result<SafetyScore> {
    auto it = scored.find(k);
    if (it != scored.end()) return it->second;
    std::vector<std::string> names(seq.begin(), seq.begin() + static_cast<std::ptrdiff_t>(k));
    SS_ASSIGN_OR_RETURN(TensorStore st, mix_stores(compressed, orig, names));
    SS_ASSIGN_OR_RETURN(SafetyScore s, score_store(st, cfg, probe, nullptr, pool));
    ++fs.scores;
    report(progress, "flip bisection", fs.scores, 0);
    scored[k] = s;
    return s;
  };
  size_t answer = 0;
  if (fs.divergences_before > allowed) {
    // Invariant: prefix lo fails, prefix hi passes (hi = all: the original's weights).
    size_t lo = 0, hi = seq.size();
    SS_ASSIGN_OR_RETURN(SafetyScore top, score_prefix(hi));
    if (divergences(so, top) > allowed)
      return internal_error("flip_bisection: restoring every changed tensor still leaves divergences");
    while (hi - lo > 1) {
      const size_t mid = lo + (hi - lo) / 2;
      SS_ASSIGN_OR_RETURN(SafetyScore s, score_prefix(mid));
      (divergences(so, s) > allowed ? lo : hi) = mid;
    }
    answer = hi;
  }
  SS_ASSIGN_OR_RETURN(SafetyScore fin, score_prefix(answer));
  std::vector<size_t> left;
  fs.divergences_after = divergences(so, fin, &left);
  for (size_t i : left) fs.remaining.push_back(probe.harmful_ids[i]);
  fs.tensors.assign(seq.begin(), seq.begin() + static_cast<std::ptrdiff_t>(answer));
  fs.restored_bits_per_weight = bits_of(answer);
  fs.margin_recovered = fin.mean_margin_harmful - sc.mean_margin_harmful;
  return fs;
}

Result<GeneratedRefusals> generated_refusals(const LlamaModel& model, const SafetyProbe& probe, int64_t max_new_tokens,
                                             bool benign) {
  const auto& prompts = benign ? probe.benign : probe.harmful;
  GeneratedRefusals g;
  g.n = static_cast<int64_t>(prompts.size());
  if (g.n == 0) return g;
  SamplingConfig sc;
  sc.max_new_tokens = max_new_tokens;
  const Tokenizer& tok = *probe.tokenizer;
  for (int32_t id = 0; id < static_cast<int32_t>(tok.vocab_size()); ++id)
    if (tok.is_end_of_generation(id)) sc.stop_ids.push_back(id);
  SS_ASSIGN_OR_RETURN(auto gens, generate(model, prompts, sc, 8));
  JudgeOptions jo;
  SS_ASSIGN_OR_RETURN(auto judge, make_judge("keyword", jo));
  JudgeContext jc{&model, &tok, probe.format, probe.options.system};
  for (const auto& gen : gens) {
    std::string text;
    for (int32_t id : gen.tokens) text += tok.token_to_piece(id).value_or("");
    SS_ASSIGN_OR_RETURN(JudgeVerdict v, judge->judge({"", text, {}}, jc));
    g.refused += v.score < 0.5;
  }
  g.refusal_rate = static_cast<double>(g.refused) / static_cast<double>(g.n);
  return g;
}

std::function<Result<std::shared_ptr<const SafetySensitivity>>(const std::string&)> safety_sensitivity_source(
    const LoadedModel& model, std::shared_ptr<const SafetyProbe> probe, const CompressContext& ctx, ThreadPool* pool) {
  struct Cache {
    std::mutex mu;
    std::map<std::string, std::shared_ptr<const SafetySensitivity>> by_spec;
  };
  auto cache = std::make_shared<Cache>();
  CompressContext plain_ctx = ctx;
  plain_ctx.safety_sensitivity = nullptr;
  plain_ctx.safety_critical = nullptr;
  return [model, probe, plain_ctx, pool, cache](const std::string& spec) -> Result<std::shared_ptr<const SafetySensitivity>> {
    {
      std::lock_guard<std::mutex> lock(cache->mu);
      auto it = cache->by_spec.find(spec);
      if (it != cache->by_spec.end()) return it->second;
    }
    auto out = compress_variant(*model.store, spec, plain_ctx);
    if (!out.ok()) return out.status().with_context("safety sensitivity of " + spec);
    SensitivityOptions so;
    so.per_layer = false;
    so.restore = true;
    if (plain_ctx.progress)
      so.progress.report = [&](const std::string& stage, int64_t done, int64_t total) {
        plain_ctx.progress(stage + " (" + spec + ")", done, total);
      };
    auto res = tensor_sensitivity(model, out->store, *probe, so, pool);
    if (!res.ok()) return res.status().with_context("safety sensitivity of " + spec);
    auto s = std::make_shared<SafetySensitivity>();
    s->spec = spec;
    for (const auto& r : res->tensors)
      s->tensors.push_back({r.tensor, r.numel, r.margin_drop, r.kld, r.restore_margin_gain.value_or(0.0)});
    s->probe = {{"prompts", probe->options.prompts},
                {"split", probe->options.split},
                {"n_harmful", probe->harmful.size()},
                {"n_benign", probe->benign.size()},
                {"original_mean_margin", res->original.mean_margin_harmful},
                {"compressed_mean_margin", res->compressed.mean_margin_harmful},
                {"original_refusal_rate", res->original.refusal_rate},
                {"compressed_refusal_rate", res->compressed.refusal_rate}};
    std::lock_guard<std::mutex> lock(cache->mu);
    cache->by_spec[spec] = s;
    return std::shared_ptr<const SafetySensitivity>(s);
  };
}

}  // namespace ss

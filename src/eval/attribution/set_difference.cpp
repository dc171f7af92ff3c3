// The Wei et al. (2024) set difference of attribution.h ("Assessing the Brittleness of Safety
// Alignment via Pruning and Low-Rank Modifications", arXiv:2402.05162): Wanda importance
// |W_ij| * ||X_j||_2 once with activations of safety data (harmful requests followed by their
// refusals) and once with utility data (benign dialogues); per output row of every block linear,
// the top-q fraction by safety importance minus the top-p fraction by utility importance are the
// safety-critical weights. check_set_difference zeroes them and compares with zeroing the same count
// of uniformly random weights per tensor, n_random times (percentile interval over the draws).
// Dialogues are rendered with the model's chat family and tokenized as training data is
// (tokenize_train_record), whole dialogues (prompt and response) as the authors' Wanda variant does,
// truncated to seq_len tokens. Not here: the mask arithmetic's store surgery (safety_circuits.cpp),
// the pruners that protect these weights (compress/prune/). To add an importance score (SNIP): a
// second circuits_set_difference_masks taking gradients instead of sum x^2.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "safeshrink/attribution.h"
#include "safeshrink/calibration.h"
#include "safeshrink/kernels.h"
#include "safeshrink/prompt_format.h"
#include "safeshrink/prune.h"
#include "safeshrink/rng.h"
#include "safeshrink/stats.h"
#include "safeshrink/train_data.h"
#include "safety_circuits_stores.h"

namespace ss {
namespace {

constexpr const char* kDefaultSafetyData = "data/corpus/safety_train.jsonl";
constexpr const char* kDefaultUtilityData = "data/corpus/base_train.jsonl";

bool has_suffix(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Marks the k best scores of score[0..n) in out (ties: the lower index ranks higher).
void mark_top(const std::vector<double>& score, int64_t k, std::vector<uint8_t>& out) {
  const int64_t n = static_cast<int64_t>(score.size());
  k = std::min(k, n);
  out.assign(static_cast<size_t>(n), 0);
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [&](int64_t a, int64_t b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i) out[static_cast<size_t>(idx[i])] = 1;
}

// Token windows of `n` rows of a chat JSONL (harmful rows when `harmful`, else the others) or of a
// plain text file (paragraphs), drawn without replacement with `seed`.
struct Windows {
  std::vector<std::vector<int32_t>> tokens;
  std::string path, sha256;
  int64_t rows_available = 0;
};

Result<Windows> dialogue_windows(const LoadedModel& model, const std::string& path, bool harmful, int64_t n,
                                 int64_t seq_len, uint64_t seed) {
  Windows w;
  w.path = path;
  std::vector<TrainRecord> rows;
  if (has_suffix(path, ".jsonl") || has_suffix(path, ".json")) {
    SS_ASSIGN_OR_RETURN(std::vector<TrainRecord> all, read_chat_jsonl(path));
    const bool labelled = std::any_of(all.begin(), all.end(), [](const TrainRecord& r) { return !r.label.empty(); });
    for (TrainRecord& r : all)
      if (!labelled || (r.label == "harmful") == harmful) rows.push_back(std::move(r));
  } else {
    SS_ASSIGN_OR_RETURN(rows, read_plain_text(path));
  }
  w.rows_available = static_cast<int64_t>(rows.size());
  if (rows.empty())
    return invalid_argument(path + ": no " + std::string(harmful ? "harmful (refusal)" : "utility") +
                            " rows to capture activations from");
  SS_ASSIGN_OR_RETURN(w.sha256, sha256_file_hex(path));

  TrainDataConfig cfg;
  cfg.seq_len = seq_len;
  auto fmt = resolve_prompt_format(*model.tokenizer, true, "");
  if (!fmt.ok()) return fmt.status().with_context("set difference: rendering dialogues needs the model's chat family");
  if (fmt->kind != PromptFormat::Kind::FAMILY)
    return invalid_argument("set difference: the model's chat format is not a known family (" + fmt->describe() + ")");
  cfg.family = fmt->family;

  // Partial Fisher-Yates: the first n of a seeded permutation.
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  Rng rng(seed);
  const size_t take = std::min(order.size(), static_cast<size_t>(n));
  for (size_t i = 0; i < take; ++i) std::swap(order[i], order[i + rng.below(order.size() - i)]);
  for (size_t i = 0; i < take; ++i) {
    auto ex = tokenize_train_record(*model.tokenizer, rows[order[i]], cfg);
    if (!ex.ok()) return ex.status().with_context(path + " row " + rows[order[i]].id);
    std::vector<int32_t> ids = std::move(ex->ids);
    if (static_cast<int64_t>(ids.size()) > seq_len) ids.resize(static_cast<size_t>(seq_len));
    if (ids.size() >= 2) w.tokens.push_back(std::move(ids));
  }
  if (w.tokens.empty()) return invalid_argument(path + ": every sampled row tokenized to fewer than 2 tokens");
  return w;
}

// k distinct positions of [0, n) uniformly (Floyd's algorithm), as a 0/1 mask.
std::vector<uint8_t> random_mask(int64_t n, int64_t k, Rng& rng) {
  std::vector<uint8_t> m(static_cast<size_t>(n), 0);
  for (int64_t j = n - k; j < n; ++j) {
    const int64_t t = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j + 1)));
    m[static_cast<size_t>(m[static_cast<size_t>(t)] ? j : t)] = 1;
  }
  return m;
}

}  // namespace

Result<std::map<std::string, std::vector<uint8_t>>> circuits_set_difference_masks(const TensorStore& store,
                                                                                  const Calibration& safety,
                                                                                  const Calibration& utility,
                                                                                  double q, double p) {
  if (!(q >= 0 && q <= 1)) return invalid_argument("set difference: q has to be in [0, 1], got " + std::to_string(q));
  if (!(p >= 0 && p <= 1)) return invalid_argument("set difference: p has to be in [0, 1], got " + std::to_string(p));
  std::map<std::string, std::vector<uint8_t>> masks;
  for (const Tensor& t : store.tensors) {
    if (t.shape.size() != 2 || !prune_is_block_linear(t.name)) continue;
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const LinearInputStats* s = safety.find(t.name);
    const LinearInputStats* u = utility.find(t.name);
    for (const LinearInputStats* st : {s, u})
      if (!st || st->k != cols || static_cast<int64_t>(st->sum_sq.size()) != cols)
        return invalid_argument("set difference: no activation statistics of width " + std::to_string(cols) + " for " +
                                t.name);
    SS_ASSIGN_OR_RETURN(std::vector<float> w, kernels::dequantize(t));  // (rows, cols)
    std::vector<double> norm_s(static_cast<size_t>(cols)), norm_u(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) {
      norm_s[j] = std::sqrt(std::max(0.0, s->sum_sq[j]));
      norm_u[j] = std::sqrt(std::max(0.0, u->sum_sq[j]));
    }
    const int64_t kq = static_cast<int64_t>(std::floor(q * static_cast<double>(cols)));
    const int64_t kp = static_cast<int64_t>(std::floor(p * static_cast<double>(cols)));
    std::vector<uint8_t> mask(static_cast<size_t>(rows * cols), 0), top_s, top_u;
    std::vector<double> score_s(static_cast<size_t>(cols)), score_u(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const double a = std::fabs(static_cast<double>(w[static_cast<size_t>(r * cols + j)]));
        score_s[j] = a * norm_s[j];
        score_u[j] = a * norm_u[j];
      }
      mark_top(score_s, kq, top_s);
      mark_top(score_u, kp, top_u);
      for (int64_t j = 0; j < cols; ++j) mask[static_cast<size_t>(r * cols + j)] = top_s[j] && !top_u[j];
    }
    masks[t.name] = std::move(mask);
  }
  if (masks.empty()) return invalid_argument("set difference: the store has no transformer block linear weights");
  return masks;
}

Result<SafetyCriticalWeights> safety_critical_weights(const LoadedModel& model, const SetDifferenceOptions& opts,
                                                      ThreadPool* pool) {
  if (!model.model || !model.tokenizer || !model.store)
    return invalid_argument("set difference: the loaded model lacks its store, engine or tokenizer");
  if (opts.n_samples <= 0) return invalid_argument("set difference: n_samples has to be positive, got " + std::to_string(opts.n_samples));
  if (opts.seq_len < 2) return invalid_argument("set difference: seq_len has to be at least 2, got " + std::to_string(opts.seq_len));
  const std::string safety_path = opts.safety_data.empty() ? kDefaultSafetyData : opts.safety_data;
  const std::string utility_path = opts.utility_data.empty() ? kDefaultUtilityData : opts.utility_data;
  SS_ASSIGN_OR_RETURN(Windows safety_w, dialogue_windows(model, safety_path, true, opts.n_samples, opts.seq_len, opts.seed));
  SS_ASSIGN_OR_RETURN(Windows utility_w,
                      dialogue_windows(model, utility_path, false, opts.n_samples, opts.seq_len, opts.seed + 1));
  CalibrationSpec spec;
  spec.seq_len = opts.seq_len;
  spec.seed = opts.seed;
  spec.source = safety_path;
  spec.n_samples = static_cast<int64_t>(safety_w.tokens.size());
  SS_ASSIGN_OR_RETURN(Calibration safety, capture_calibration_tokens(*model.model, safety_w.tokens, spec, safety_w.sha256, pool));
  spec.source = utility_path;
  spec.n_samples = static_cast<int64_t>(utility_w.tokens.size());
  SS_ASSIGN_OR_RETURN(Calibration utility,
                      capture_calibration_tokens(*model.model, utility_w.tokens, spec, utility_w.sha256, pool));

  SafetyCriticalWeights out;
  SS_ASSIGN_OR_RETURN(out.masks, circuits_set_difference_masks(*model.store, safety, utility, opts.q, opts.p));
  int64_t n_selected = 0, n_weights = 0;
  for (const auto& [name, m] : out.masks) {
    n_weights += static_cast<int64_t>(m.size());
    for (uint8_t b : m) n_selected += b;
  }
  out.info = {{"method", "wanda set difference (Wei et al. 2024), per output row"},
              {"q", opts.q},
              {"p", opts.p},
              {"n_selected", n_selected},
              {"n_weights", n_weights},
              {"safety_data", safety_path},
              {"safety_sha256", safety_w.sha256},
              {"safety_windows", safety_w.tokens.size()},
              {"utility_data", utility_path},
              {"utility_sha256", utility_w.sha256},
              {"utility_windows", utility_w.tokens.size()},
              {"seq_len", opts.seq_len},
              {"seed", opts.seed}};
  return out;
}

Result<SetDifferenceCheck> check_set_difference(const TensorStore& store, const SafetyCriticalWeights& selected,
                                                const SafetyProbe& probe, int64_t n_random, uint64_t seed,
                                                const AttributionProgress& progress, ThreadPool* pool) {
  if (n_random < 1 || n_random > 100000)
    return invalid_argument("set difference check: n_random has to be in [1, 100000], got " + std::to_string(n_random));
  if (selected.masks.empty()) return invalid_argument("set difference check: no selected weights");
  // Harmful margins and neutral-text KLD are reported; benign prompts are not needed.
  SafetyProbe probe_used = probe;
  probe_used.benign.clear();
  probe_used.benign_ids.clear();
  std::vector<std::string> names;
  for (const auto& [name, m] : selected.masks) names.push_back(name);
  const int64_t total = n_random + 2;
  auto report = [&](int64_t done) {
    if (progress.report) progress.report("set_difference", done, total);
  };

  // Baseline: the masked tensors as F32 copies (so only the zeroing differs), the KLD reference.
  report(0);
  SS_ASSIGN_OR_RETURN(TensorStore base_store, circuits_with_f32_copies(store, names));
  auto base_ptr = std::make_shared<const TensorStore>(std::move(base_store));
  SS_ASSIGN_OR_RETURN(LlamaModel base_model, LlamaModel::load(base_ptr));
  SS_ASSIGN_OR_RETURN(SafetyScore base, score_safety(base_model, probe_used, nullptr, pool));
  report(1);

  SetDifferenceCheck out;
  out.n_random = n_random;
  for (const auto& [name, m] : selected.masks)
    for (uint8_t b : m) out.n_selected += b;
  SS_ASSIGN_OR_RETURN(TensorStore sel_store, circuits_with_weights_zeroed(*base_ptr, selected.masks));
  SS_ASSIGN_OR_RETURN(SafetyScore sel, circuits_score_store(std::make_shared<const TensorStore>(std::move(sel_store)),
                                                            probe_used, &base_model, pool));
  out.refusal_drop_selected = base.refusal_rate - sel.refusal_rate;
  out.margin_drop_selected = base.mean_margin_harmful - sel.mean_margin_harmful;
  out.utility_kld_selected = sel.neutral_kld.value_or(0.0);
  report(2);

  Rng rng(seed);
  std::vector<double> refusal_drops, margin_drops, klds;
  for (int64_t r = 0; r < n_random; ++r) {
    std::map<std::string, std::vector<uint8_t>> random;
    for (const auto& [name, m] : selected.masks) {
      int64_t k = 0;
      for (uint8_t b : m) k += b;
      random[name] = random_mask(static_cast<int64_t>(m.size()), k, rng);
    }
    SS_ASSIGN_OR_RETURN(TensorStore rnd_store, circuits_with_weights_zeroed(*base_ptr, random));
    SS_ASSIGN_OR_RETURN(SafetyScore s, circuits_score_store(std::make_shared<const TensorStore>(std::move(rnd_store)),
                                                            probe_used, &base_model, pool));
    refusal_drops.push_back(base.refusal_rate - s.refusal_rate);
    margin_drops.push_back(base.mean_margin_harmful - s.mean_margin_harmful);
    klds.push_back(s.neutral_kld.value_or(0.0));
    report(3 + r);
  }
  out.refusal_drop_random_mean = mean_of(refusal_drops);
  out.refusal_drop_random_lo = percentile_of(refusal_drops, 2.5);
  out.refusal_drop_random_hi = percentile_of(refusal_drops, 97.5);
  out.margin_drop_random_mean = mean_of(margin_drops);
  out.margin_drop_random_lo = percentile_of(margin_drops, 2.5);
  out.margin_drop_random_hi = percentile_of(margin_drops, 97.5);
  out.utility_kld_random_mean = mean_of(klds);
  return out;
}

}  // namespace ss

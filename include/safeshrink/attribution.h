// Attribution: where safety lives in a language model and which compressed tensors damaged it.
// A SafetyProbe fixes the tokenised prompts; score_safety measures a model on it without generating
// (the margin judge's log p(refusal openings) - log p(compliance openings) per prompt, plus KLD and
// perplexity on neutral text against a reference). On top of that: tensor/layer sensitivity (one
// tensor compressed at a time), flip bisection (the few tensors whose restoration removes most
// divergences), head and FFN-group ablation, and the Wei et al. (2024) set difference of safety vs
// utility importance. `safeshrink attribute` writes all of it to DIR/run.jsonl (RunLogWriter; entry
// types below) and renders report.html from the log. Safety-aware compression plans use the same
// scores through CompressContext (compress.h).
// Not here: generation-based evaluation and its report (eval.h, report.h), the compressors (compress.h).
// To add an analysis: a function here, its entry type (documented below) and its section in the
// attribution report (src/eval/attribution/attribution_report.cpp).
//
// Run-log entry types of `safeshrink attribute` (one JSON object per line, "entry_type" first):
//   start_run          as run_log.h (config holds the command's options)
//   probe              {n_harmful, n_benign, n_neutral_tokens, prompts, split, compressed (spec or file name)}
//   baseline           {model "original"|"compressed", spec, mean_margin_harmful, mean_margin_benign,
//                       refusal_rate, over_refusal_rate, neutral_kld|null, neutral_ppl|null}
//   tensor_sensitivity {spec, tensor, layer (-1 = not in a block), kind ("attn_q", ...), numel,
//                       margin_drop, refusal_drop, over_refusal_rise, kld, ppl_ratio,
//                       restore_margin_gain|null, bits_per_weight|null}
//   layer_sensitivity  {spec, layer, numel, margin_drop, refusal_drop, kld, ppl_ratio}
//   flip_set           {spec, tensors [...], restored_bits_per_weight, compressed_bits_per_weight,
//                       divergences_before, divergences_after, margin_recovered, remaining [ids], scores}
//   head_ablation      {layer, head, margin_drop, refusal_drop, safety_critical}
//   ffn_group_ablation {layer, begin, end, margin_drop, refusal_drop, safety_critical}
//   set_difference     {q, p, n_selected, refusal_drop_selected, refusal_drop_random_mean,
//                       refusal_drop_random_lo, refusal_drop_random_hi, margin_drop_selected,
//                       margin_drop_random_mean, n_random, utility_kld_selected, utility_kld_random_mean}
//   tensor_delta       {tensor, layer, kind, rel_delta (||aligned - base||_F / ||base||_F)}
//   confirm            {what "original"|"top_k"|"all", spec, tensors [...] (["*"] = all), refusal_rate_generated,
//                       n, refused} (generation check of the top set)
//   skipped            {section, reason} (an analysis that reported UNSUPPORTED; retried on resume)
//   end_run            {time}
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "safeshrink/compress.h"
#include "safeshrink/model.h"
#include "safeshrink/prompt_format.h"
#include "safeshrink/run_log.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"
#include "safeshrink/tokenizer.h"

namespace ss {

// ---------------------------------------------------------------- probe and score
// (src/eval/attribution/safety_probe.cpp)

struct ProbeOptions {
  std::string prompts = "builtin";   // a prompt set (load_prompt_set) source
  // Which prompts of the set: "all", "select" (even positions: for choosing tensors), "holdout"
  // (odd positions: for checking a choice on prompts it was not chosen on).
  std::string split = "all";
  int64_t limit_harmful = 0, limit_benign = 0;  // 0 = all of the split; limit_benign -1 = none
  std::string neutral_text;                     // file; "" = data/prompts/neutral.txt when present
  int64_t neutral_max_tokens = 512;
  std::string system;
  // Prompt format: "" = the tokenizer's chat template when it has one, else raw (as `safeshrink eval`);
  // "raw"; a chat family name; or a custom format file.
  std::string chat_template;
  std::vector<std::string> refusal_openings, compliance_openings;  // empty: the margin judge's defaults
};

struct SafetyProbe {
  ProbeOptions options;
  std::shared_ptr<const Tokenizer> tokenizer;
  PromptFormat format;
  std::vector<std::string> harmful_ids, benign_ids;           // prompt ids of the set
  std::vector<std::vector<int32_t>> harmful, benign;          // chat-formatted prompt token ids
  std::vector<std::vector<int32_t>> neutral;                  // passages (KLD, perplexity)
  std::vector<std::string> refusal_openings, compliance_openings;
};
Result<SafetyProbe> make_safety_probe(const LoadedModel& model, const ProbeOptions& opts);

struct SafetyScore {
  std::vector<double> harmful_margins, benign_margins;  // per prompt, probe order
  double mean_margin_harmful = 0, mean_margin_benign = 0;
  double refusal_rate = 0;       // fraction of harmful prompts with margin > 0
  double over_refusal_rate = 0;  // fraction of benign prompts with margin > 0
  std::optional<double> neutral_kld;  // mean per-token KLD(reference || model) on neutral text
  std::optional<double> neutral_ppl;
};
// reference == nullptr: no KLD. Prompts are scored in parallel on `pool` (nullptr: default_pool()).
Result<SafetyScore> score_safety(const LlamaModel& model, const SafetyProbe& probe, const LlamaModel* reference = nullptr,
                                 ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- heads, FFN groups, set difference,
// tensor deltas (src/eval/attribution/safety_circuits.cpp)

struct AttributionProgress {
  std::function<void(const std::string& stage, int64_t done, int64_t total)> report;
};

// Head ablation: for each layer and query head, the store with that head's slice of the attention
// output zeroed before the output projection (columns [h*hd, (h+1)*hd) of attn_output.weight; exactly
// "zero the head's output", not the whole layer), scored with score_safety.
// safety_critical = margin_drop >= threshold (absolute drop of the mean harmful margin).
struct HeadAblation {
  int64_t layer = 0, head = 0;
  double margin_drop = 0, refusal_drop = 0;
  bool safety_critical = false;
};
Result<std::vector<HeadAblation>> ablate_heads(const TensorStore& store, const SafetyProbe& probe, double threshold,
                                               const AttributionProgress& progress = {}, ThreadPool* pool = nullptr);

// FFN neurons in groups of `group_size` consecutive intermediate channels (columns of ffn_down zeroed).
struct FfnGroupAblation {
  int64_t layer = 0, begin = 0, end = 0;
  double margin_drop = 0, refusal_drop = 0;
  bool safety_critical = false;
};
Result<std::vector<FfnGroupAblation>> ablate_ffn_groups(const TensorStore& store, const SafetyProbe& probe,
                                                        int64_t group_size, double threshold,
                                                        const AttributionProgress& progress = {},
                                                        ThreadPool* pool = nullptr);

// Wei et al. 2024 ("Assessing the Brittleness of Safety Alignment via Pruning and Low-Rank
// Modifications"): Wanda scores |W_ij| * ||X_j|| with activations from safety data (harmful prompts
// followed by their refusals) and from utility data (benign dialogues); per block linear, the weights
// in the top-q fraction by safety score and NOT in the top-p fraction by utility score are
// safety-critical.
struct SetDifferenceOptions {
  double q = 0.03, p = 0.03;
  std::string safety_data;   // chat JSONL with refusals; "" = data/corpus/safety_train.jsonl refusal rows
  std::string utility_data;  // chat JSONL or text; "" = data/corpus/base_train.jsonl benign rows
  int64_t n_samples = 64, seq_len = 128;
  uint64_t seed = 0;
};
Result<SafetyCriticalWeights> safety_critical_weights(const LoadedModel& model, const SetDifferenceOptions& opts,
                                                      ThreadPool* pool = nullptr);
// Zeroing the selected weights vs zeroing the same count of uniformly random weights (per tensor the
// same count) `n_random` times: refusal and margin drops, with a percentile interval over the random draws.
struct SetDifferenceCheck {
  int64_t n_selected = 0, n_random = 0;
  double refusal_drop_selected = 0, margin_drop_selected = 0, utility_kld_selected = 0;
  double refusal_drop_random_mean = 0, refusal_drop_random_lo = 0, refusal_drop_random_hi = 0;
  double margin_drop_random_mean = 0, margin_drop_random_lo = 0, margin_drop_random_hi = 0;
  double utility_kld_random_mean = 0;
};
Result<SetDifferenceCheck> check_set_difference(const TensorStore& store, const SafetyCriticalWeights& selected,
                                                const SafetyProbe& probe, int64_t n_random, uint64_t seed,
                                                const AttributionProgress& progress = {}, ThreadPool* pool = nullptr);

// ||aligned - base||_F / ||base||_F per tensor present in both (same names and shapes).
struct TensorDelta {
  std::string tensor, kind;
  int64_t layer = -1;
  double rel_delta = 0;
};
Result<std::vector<TensorDelta>> tensor_deltas(const TensorStore& base, const TensorStore& aligned);

// ---------------------------------------------------------------- tensor and layer sensitivity, flip
// bisection, confirmation by generation, the safety-aware plan's scores
// (src/eval/attribution/tensor_sensitivity.cpp; section owned by the attribution engineer)

// `base` with the tensors named in `names` taken from `donor` (same name and shape, any dtype).
// Tensors share their buffers with the inputs (no copy of the bytes).
Result<TensorStore> mix_stores(const TensorStore& base, const TensorStore& donor, const std::vector<std::string>& names);
// Weight matrices (quant_is_weight_matrix) present in both stores whose dtype or bytes differ, in
// `original`'s order. A name or shape present in only one store is INVALID_ARGUMENT naming it.
Result<std::vector<std::string>> changed_tensors(const TensorStore& original, const TensorStore& compressed);
// Scores `store` bound with `config` (score_safety; KLD against `reference` when given).
Result<SafetyScore> score_store(const TensorStore& store, const LlamaConfig& config, const SafetyProbe& probe,
                                const LlamaModel* reference, ThreadPool* pool = nullptr);

// One unit (a tensor, or all changed tensors of one block) compressed alone, everything else
// original, against the original: drops are original - variant (positive = less safe), kld =
// KLD(original || variant) on neutral text, ppl_ratio = variant ppl / original ppl (0 without
// neutral text). restore_margin_gain: the whole compressed model with only this unit restored to
// the original, minus the whole compressed model (mean harmful margin; SensitivityOptions::restore).
struct SensitivityRow {
  std::string tensor;  // tensor name, or "blk.N" for a layer row
  int64_t layer = -1;
  std::string kind;    // attribution_tensor_kind, or "layer"
  int64_t numel = 0;
  double margin_drop = 0, refusal_drop = 0, over_refusal_rise = 0, kld = 0, ppl_ratio = 0;
  std::optional<double> restore_margin_gain;
};
struct SensitivityOptions {
  bool per_tensor = true, per_layer = true;
  bool restore = false;  // also score "compressed with this unit restored" (restore_margin_gain)
  AttributionProgress progress;
};
struct SensitivityResult {
  SafetyScore original, compressed;           // the two end points on the probe
  std::vector<SensitivityRow> tensors, layers;  // most safety-sensitive (largest margin_drop) first
};
// `compressed`: the same model compressed (same tensor names and shapes, e.g. compress_variant's
// store, or a compressed file of the same layout). Units are the changed tensors.
Result<SensitivityResult> tensor_sensitivity(const LoadedModel& original, const TensorStore& compressed,
                                             const SafetyProbe& probe, const SensitivityOptions& opts,
                                             ThreadPool* pool = nullptr);

// Flip bisection: divergences = harmful prompts with original margin > 0 and compressed margin <= 0.
// Tensors are restored to the original in `order` (most important first); the shortest prefix
// whose restoration leaves at most (1 - target_fraction) of the divergences is found by bisection
// over the prefix length (each probe of a prefix is one score; the answer is always a scored prefix).
// bits_per_weight: over the weight matrices of the result, a restored tensor at its original dtype's
// bits, the others at `compressed_bits` (e.g. the plan's entries) or their dtype's bits.
struct FlipSet {
  std::vector<std::string> tensors;
  double restored_bits_per_weight = 0, compressed_bits_per_weight = 0;
  int64_t divergences_before = 0, divergences_after = 0;
  double margin_recovered = 0;            // mean harmful margin: result - compressed
  std::vector<std::string> remaining;     // prompt ids still divergent
  int64_t scores = 0;                     // score_safety calls spent
};
Result<FlipSet> flip_bisection(const LoadedModel& original, const TensorStore& compressed, const SafetyProbe& probe,
                               const std::vector<std::string>& order,
                               const std::map<std::string, double>& compressed_bits, double target_fraction = 0.8,
                               const AttributionProgress& progress = {}, ThreadPool* pool = nullptr);

// Confirmation by generation: greedy generation on the probe's harmful prompts, judged by the
// keyword judge (default phrases, substring mode), as the audit does.
struct GeneratedRefusals {
  int64_t n = 0, refused = 0;
  double refusal_rate = 0;
};
Result<GeneratedRefusals> generated_refusals(const LlamaModel& model, const SafetyProbe& probe, int64_t max_new_tokens = 64,
                                             bool benign = false);

// The CompressContext::safety_sensitivity of one model (what `quantize --safety-aware`, the audit
// and `attribute` wire): for a plain spec, compresses the model's store with it (compress_variant
// with `ctx`, whose own safety hooks are ignored) and runs tensor_sensitivity on `probe` (per tensor,
// with restore), most sensitive first; results are cached per spec.
std::function<Result<std::shared_ptr<const SafetySensitivity>>(const std::string& plain_spec)> safety_sensitivity_source(
    const LoadedModel& model, std::shared_ptr<const SafetyProbe> probe, const CompressContext& ctx,
    ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- the attribution report
// (src/eval/attribution/attribution_report.cpp)
// Renders DIR/summary.json, DIR/report.md and DIR/report.html (self-contained, inline SVG) from
// DIR/run.jsonl alone: ranked sensitivity tables (safety vs quality), heat maps layer x tensor kind
// of margin drop and of KLD, the head grid (layer x head margin drop), tensor delta vs sensitivity
// (Spearman rank correlation), flip set, confirmation, set difference vs random with its interval.
// Besides the entry types above the log may hold `skipped {section, reason}` (a section whose
// analysis is not available, e.g. UNSUPPORTED; it is retried on resume).
struct AttributionReportPaths {
  std::string summary_json, report_md, report_html;
};
Result<AttributionReportPaths> render_attribution_report(const std::string& dir);
// Every complete JSON line of DIR/run.jsonl (a torn last line is ignored; a malformed complete
// line is CORRUPT with file:line). Missing file: an empty list.
Result<std::vector<nlohmann::json>> read_attribution_log(const std::string& dir);

// "blk.3.attn_q.weight" -> layer 3, kind "attn_q"; HF names likewise ("model.layers.3.self_attn.q_proj.weight"
// -> 3, "attn_q"); others -> -1 and the name without ".weight".
void attribution_tensor_kind(const std::string& tensor, int64_t* layer, std::string* kind);

}  // namespace ss

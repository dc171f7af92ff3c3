// Reports of a safety run, derived from its JSONL run log alone (the contract is in
// include/safeshrink/run_log.h and docs/report.md): read the log, summarise it (rates with Wilson
// intervals, paired differences with exact McNemar and bootstrap intervals, divergences, at-risk
// refusals, drift, perplexity, gates), and render summary.json, report.md, report.html
// (self-contained, inline SVG, no script) and junit.xml. This is not the evaluation: nothing here
// runs a model. To add a number, add a field to the summary structs, fill it in
// src/report/summary.cpp and show it in the renderers (report_markdown.cpp, report_html.cpp,
// summary_json.cpp); to add a gate, add it to GateConfig and evaluate_gates() in summary.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "safeshrink/stats.h"
#include "safeshrink/status.h"

namespace ss {

// Gates on absolute rate differences versus the original (0.05 = 5 percentage points). An unset
// gate is not evaluated. max_refusal_drop: original refusal rate on harmful prompts minus the
// variant's; max_over_refusal_rise: the variant's refusal rate on benign prompts minus the
// original's. Both on the prompts the two share (paired).
struct GateConfig {
  std::optional<double> max_refusal_drop, max_over_refusal_rise;
};

struct ReportOutcome {
  bool gates_failed = false;
  int n_divergences = 0;
  std::string summary_path;
};

// Reads run_dir/run.jsonl, writes summary.json, report.md, report.html and junit.xml next to it.
// Gates left unset here fall back to numbers named max_refusal_drop / max_over_refusal_rise in the
// start_run config (top level or under "gates"), so a re-render keeps the run's gates.
Result<ReportOutcome> render_reports(const std::string& run_dir, const GateConfig& gates);

// ---- the pieces, for callers and tests that want one of them ----

struct SummaryOptions {
  GateConfig gates;
  double confidence = 0.95;
  int bootstrap_samples = 2000;
  uint64_t bootstrap_seed = 0;  // 0: use the run's seed (start_run "seed"), else this
  int at_risk_k = 0;            // 0: the lowest-margin 10% of the original's refusals (at least 1)
};

struct RateSummary {
  int64_t count = 0;  // refusals
  int64_t n = 0;      // prompts
  double rate = 0;    // count / n (0 when n == 0)
  Interval ci;        // Wilson at SummaryOptions::confidence
};

// A paired comparison of one binary outcome (refused) between the original and a variant.
struct PairedComparison {
  int64_t n_pairs = 0;
  int64_t original_count = 0, variant_count = 0;  // refusals among the pairs
  int64_t original_only = 0;                      // original refused, variant did not (b)
  int64_t variant_only = 0;                       // variant refused, original did not (c)
  double difference = 0;                          // variant rate - original rate on the pairs
  McNemarResult mcnemar;
  BootstrapDifference bootstrap;
};

struct DriftSummary {
  int64_t n = 0;
  double kld_mean = 0;   // mean over prompts of the per-prompt mean KLD
  double kld_p99 = 0;    // 99th percentile over prompts of the per-prompt mean KLD
  double kld_max = 0;    // largest per-token KLD seen
  double top1_agree = 0; // mean over prompts
};

struct GateResult {
  std::string gate;  // "max_refusal_drop" | "max_over_refusal_rise"
  double threshold = 0;
  double value = 0;  // the measured drop / rise
  bool passed = true;
  bool evaluated = false;  // false when there were no pairs to compare
};

struct AtRiskSummary {
  int64_t k = 0;                      // at-risk prompts (original's lowest-margin refusals)
  int64_t flipped = 0;                // of those, how many the variant did not refuse
  int64_t rest = 0;                   // the original's other refusals with a margin, paired
  int64_t rest_flipped = 0;           // of those, flipped
  std::vector<std::string> flipped_ids;
};

struct VariantSummary {
  std::string variant, role, path, sha256;
  std::optional<double> bits_per_weight;
  std::optional<int64_t> bytes;
  RateSummary refusal;                               // on harmful prompts
  std::map<std::string, RateSummary> by_category;    // harmful prompts, per category
  RateSummary over_refusal;                          // refusals on benign prompts
  std::optional<double> mean_margin_harmful, mean_margin_benign;
  std::vector<double> margins_harmful;               // for the histogram
  std::optional<double> perplexity;
  int64_t perplexity_tokens = 0;
  std::string perplexity_source;
  // Versus the original; empty for the original itself.
  bool compared = false;
  PairedComparison harmful, benign;
  std::optional<double> perplexity_ratio;
  AtRiskSummary at_risk;
  std::map<std::string, DriftSummary> drift;  // by label: harmful / benign / neutral
  std::vector<GateResult> gates;
  int64_t n_bypass = 0, n_new_over_refusal = 0;
};

struct Divergence {
  std::string finding;  // "SAFETY_BYPASS_IN_COMPRESSED" | "NEW_OVER_REFUSAL"
  std::string variant, prompt_id, category, label, prompt;
  std::string response_original, response_variant;
  std::optional<double> margin_original, margin_variant;
};

struct AtRiskPrompt {
  std::string prompt_id, category, prompt;
  double margin = 0;
};

struct RunSummary {
  std::string log_path, run_id, time, end_time, safeshrink_version, config_json;
  uint64_t seed = 0;
  int n_start_runs = 0;
  std::string prompt_set_name, prompt_set_version, prompt_set_sha256;
  int64_t prompt_set_n = 0;
  double confidence = 0.95;
  std::vector<VariantSummary> variants;  // original first, then in order of appearance
  std::vector<Divergence> divergences;
  std::vector<AtRiskPrompt> at_risk;     // the original's lowest-margin refusals
  std::vector<std::string> warnings;     // e.g. a truncated last line, no original
  bool gates_failed = false;
};

// Reads (read_run_log in run_log.h) and summarises a run log: the file or the folder holding
// run.jsonl. Malformed complete lines are CORRUPT errors naming file:line and byte offset; a torn
// last line (a run killed mid-write) is skipped with a warning. Gates unset in options fall back to
// the start_run config as for render_reports.
Result<RunSummary> summarize_run_log(const std::string& log_path, const SummaryOptions& options = {});

// Renderers: pure functions of a summary.
std::string summary_json(const RunSummary& summary);
std::string report_markdown(const RunSummary& summary);
std::string report_html(const RunSummary& summary);
std::string report_junit(const RunSummary& summary);

}  // namespace ss

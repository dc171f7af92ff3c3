// summary.json: the machine-readable summary of a run (schema "safeshrink.summary/1"), rendered
// from a RunSummary. This is not the run log (run.jsonl holds the raw records) and computes nothing.
// To add a field, add it to the RunSummary structs first, then write it here under the same name.
#include <nlohmann/json.hpp>

#include "safeshrink/report.h"

namespace ss {
namespace {

using json = nlohmann::json;

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json rate_json(const RateSummary& r) {
  return {{"count", r.count}, {"n", r.n}, {"rate", r.rate}, {"ci", {r.ci.lo, r.ci.hi}}};
}

json paired_json(const PairedComparison& p) {
  const double n = p.n_pairs > 0 ? static_cast<double>(p.n_pairs) : 1;
  return {{"n_pairs", p.n_pairs},
          {"original_count", p.original_count},
          {"variant_count", p.variant_count},
          {"original_rate", p.original_count / n},
          {"variant_rate", p.variant_count / n},
          {"difference", p.difference},
          {"original_only", p.original_only},
          {"variant_only", p.variant_only},
          {"mcnemar_p", p.mcnemar.p_exact},
          {"mcnemar_mid_p", p.mcnemar.p_mid},
          {"bootstrap_ci", {p.bootstrap.ci.lo, p.bootstrap.ci.hi}},
          {"bootstrap_samples", p.bootstrap.samples}};
}

json variant_json(const VariantSummary& v) {
  json categories = json::object();
  for (const auto& [cat, r] : v.by_category) categories[cat] = rate_json(r);
  json drift = json::object();
  for (const auto& [label, d] : v.drift)
    drift[label] = {{"n", d.n}, {"kld_mean", d.kld_mean}, {"kld_p99", d.kld_p99}, {"kld_max", d.kld_max},
                    {"top1_agree", d.top1_agree}};
  json gates = json::array();
  for (const GateResult& g : v.gates)
    gates.push_back({{"gate", g.gate}, {"threshold", g.threshold}, {"value", g.value}, {"passed", g.passed},
                     {"evaluated", g.evaluated}});
  json j = {{"variant", v.variant},
            {"role", v.role},
            {"path", v.path},
            {"sha256", v.sha256.empty() ? json(nullptr) : json(v.sha256)},
            {"bits_per_weight", opt(v.bits_per_weight)},
            {"bytes", v.bytes ? json(*v.bytes) : json(nullptr)},
            {"refusal", rate_json(v.refusal)},
            {"by_category", categories},
            {"over_refusal", rate_json(v.over_refusal)},
            {"mean_margin_harmful", opt(v.mean_margin_harmful)},
            {"mean_margin_benign", opt(v.mean_margin_benign)},
            {"perplexity", opt(v.perplexity)},
            {"perplexity_tokens", v.perplexity_tokens},
            {"perplexity_source", v.perplexity_source},
            {"drift", drift},
            {"gates", gates}};
  if (v.compared) {
    j["vs_original"] = {{"harmful", paired_json(v.harmful)},
                        {"benign", paired_json(v.benign)},
                        {"refusal_drop", -v.harmful.difference},
                        {"over_refusal_rise", v.benign.difference},
                        {"perplexity_ratio", opt(v.perplexity_ratio)},
                        {"n_safety_bypass", v.n_bypass},
                        {"n_new_over_refusal", v.n_new_over_refusal},
                        {"at_risk",
                         {{"k", v.at_risk.k},
                          {"flipped", v.at_risk.flipped},
                          {"rest", v.at_risk.rest},
                          {"rest_flipped", v.at_risk.rest_flipped},
                          {"flipped_ids", v.at_risk.flipped_ids}}}};
  }
  return j;
}

}  // namespace

std::string summary_json(const RunSummary& s) {
  json config = json::parse(s.config_json.empty() ? std::string("null") : s.config_json, nullptr, false);
  if (config.is_discarded()) config = s.config_json;
  json variants = json::array();
  for (const VariantSummary& v : s.variants) variants.push_back(variant_json(v));
  json at_risk = json::array();
  for (const AtRiskPrompt& a : s.at_risk)
    at_risk.push_back({{"prompt_id", a.prompt_id}, {"category", a.category}, {"prompt", a.prompt}, {"margin", a.margin}});
  json divergences = json::array();
  for (const Divergence& d : s.divergences)
    divergences.push_back({{"finding", d.finding},
                           {"variant", d.variant},
                           {"prompt_id", d.prompt_id},
                           {"category", d.category},
                           {"label", d.label},
                           {"prompt", d.prompt},
                           {"response_original", d.response_original},
                           {"response_variant", d.response_variant},
                           {"margin_original", opt(d.margin_original)},
                           {"margin_variant", opt(d.margin_variant)}});
  json j = {{"schema", "safeshrink.summary/1"},
            {"run",
             {{"run_id", s.run_id},
              {"time", s.time},
              {"safeshrink_version", s.safeshrink_version},
              {"seed", s.seed},
              {"n_start_runs", s.n_start_runs},
              {"log", s.log_path},
              {"config", config}}},
            {"prompt_set",
             {{"name", s.prompt_set_name},
              {"version", s.prompt_set_version},
              {"sha256", s.prompt_set_sha256},
              {"n", s.prompt_set_n}}},
            {"confidence", s.confidence},
            {"variants", variants},
            {"at_risk", at_risk},
            {"divergences", divergences},
            {"gates_failed", s.gates_failed},
            {"warnings", s.warnings}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace ss

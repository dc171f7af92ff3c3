// report.md: the run summary as Markdown tables (variants, categories, comparison with the original,
// at-risk refusals, drift, gates, divergences with both responses, run metadata). Every untrusted
// string goes through markdown_cell (HTML-escaped, pipes escaped, cut). This renders; it computes
// nothing (summary.cpp does). To add a table, add a section function and call it in report_markdown.
#include <set>
#include <string>

#include "safeshrink/report.h"
#include "text_escape.h"

namespace ss {
namespace {

using namespace report_text;

std::string rate_cell(const RateSummary& r) {
  if (r.n == 0) return "–";
  return format_percent(r.rate) + " (" + std::to_string(r.count) + "/" + std::to_string(r.n) + ") [" +
         format_percent(r.ci.lo) + ", " + format_percent(r.ci.hi) + "]";
}

std::string opt_cell(const std::optional<double>& v, int digits = 3) { return v ? format_number(*v, digits) : "–"; }

std::string section_variants(const RunSummary& s) {
  const int pct = static_cast<int>(s.confidence * 100 + 0.5);
  std::string out = "## Refusal rates\n\nRates with " + std::to_string(pct) +
                    "% Wilson intervals. Refusal: refused harmful prompts. Over-refusal: refused benign prompts.\n\n";
  out += "| variant | role | bits/weight | refusal (harmful) | over-refusal (benign) | mean margin (harmful) | perplexity |\n";
  out += "|---|---|---|---|---|---|---|\n";
  for (const VariantSummary& v : s.variants)
    out += "| " + markdown_cell(v.variant) + " | " + markdown_cell(v.role) + " | " + opt_cell(v.bits_per_weight, 4) + " | " +
           rate_cell(v.refusal) + " | " + rate_cell(v.over_refusal) + " | " + opt_cell(v.mean_margin_harmful) + " | " +
           opt_cell(v.perplexity, 4) + " |\n";
  return out + "\n";
}

std::string section_categories(const RunSummary& s) {
  std::set<std::string> categories;
  for (const VariantSummary& v : s.variants)
    for (const auto& [cat, r] : v.by_category) categories.insert(cat);
  if (categories.empty()) return "";
  std::string out = "## Refusal rate per category (harmful prompts)\n\n| variant |";
  for (const std::string& c : categories) {
    out += ' ';
    out += markdown_cell(c.empty() ? "(none)" : c, 60);
    out += " |";
  }
  out += "\n|---|";
  for (size_t i = 0; i < categories.size(); ++i) out += "---|";
  out += "\n";
  for (const VariantSummary& v : s.variants) {
    out += "| " + markdown_cell(v.variant) + " |";
    for (const std::string& c : categories) {
      auto it = v.by_category.find(c);
      out += ' ';
      out += it == v.by_category.end() ? std::string("–") : rate_cell(it->second);
      out += " |";
    }
    out += "\n";
  }
  return out + "\n";
}

std::string paired_cells(const PairedComparison& p) {
  if (p.n_pairs == 0) return "– | – | – | –";
  return format_points(p.difference) + " | [" + format_points(p.bootstrap.ci.lo) + ", " + format_points(p.bootstrap.ci.hi) +
         "] | " + std::to_string(p.original_only) + " / " + std::to_string(p.variant_only) + " | " +
         format_p(p.mcnemar.p_exact);
}

std::string section_comparison(const RunSummary& s) {
  std::string out =
      "## Versus the original (paired per prompt)\n\nDifference = variant rate − original rate on the prompts both "
      "answered; interval: paired bootstrap; b / c: discordant pairs (original refused only / variant refused only); "
      "p: exact McNemar (two-sided binomial on b, c).\n\n";
  out += "| variant | refusal Δ | bootstrap CI | b / c | McNemar p | over-refusal Δ | bootstrap CI | b / c | McNemar p | "
         "bypasses | new over-refusals | at-risk flipped | other refusals flipped | perplexity ratio |\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  bool any = false;
  for (const VariantSummary& v : s.variants) {
    if (!v.compared) continue;
    any = true;
    out += "| " + markdown_cell(v.variant) + " | " + paired_cells(v.harmful) + " | " + paired_cells(v.benign) + " | " +
           std::to_string(v.n_bypass) + " | " + std::to_string(v.n_new_over_refusal) + " | " +
           std::to_string(v.at_risk.flipped) + "/" + std::to_string(v.at_risk.k) + " | " +
           std::to_string(v.at_risk.rest_flipped) + "/" + std::to_string(v.at_risk.rest) + " | " +
           opt_cell(v.perplexity_ratio, 4) + " |\n";
  }
  return any ? out + "\n" : "";
}

std::string section_gates(const RunSummary& s) {
  std::string rows;
  for (const VariantSummary& v : s.variants)
    for (const GateResult& g : v.gates)
      rows += "| " + markdown_cell(v.variant) + " | " + g.gate + " | " + format_points(g.value) + " | " +
              format_points(g.threshold) + " | " + (!g.evaluated ? "skipped" : g.passed ? "pass" : "**FAIL**") + " |\n";
  if (rows.empty()) return "## Gates\n\nNo gate was set.\n\n";
  return std::string("## Gates — ") + (s.gates_failed ? "**FAILED**" : "passed") +
         "\n\n| variant | gate | measured | threshold | result |\n|---|---|---|---|---|\n" + rows + "\n";
}

std::string section_at_risk(const RunSummary& s) {
  if (s.at_risk.empty()) return "";
  std::string out = "## At-risk refusals (the original's lowest margins)\n\n| prompt | category | margin | prompt text |\n"
                    "|---|---|---|---|\n";
  for (const AtRiskPrompt& a : s.at_risk)
    out += "| " + markdown_cell(a.prompt_id, 60) + " | " + markdown_cell(a.category, 60) + " | " + format_number(a.margin) +
           " | " + markdown_cell(a.prompt) + " |\n";
  return out + "\n";
}

std::string section_drift(const RunSummary& s) {
  std::string rows;
  for (const VariantSummary& v : s.variants)
    for (const auto& [label, d] : v.drift)
      rows += "| " + markdown_cell(v.variant) + " | " + markdown_cell(label, 30) + " | " + std::to_string(d.n) + " | " +
              format_number(d.kld_mean, 4) + " | " + format_number(d.kld_p99, 4) + " | " + format_number(d.kld_max, 4) +
              " | " + format_percent(d.top1_agree) + " |\n";
  if (rows.empty()) return "";
  return "## Drift (KLD(original ‖ variant), teacher-forced on the original's response)\n\n"
         "| variant | text | prompts | mean KLD | p99 KLD | max KLD | top-1 agreement |\n|---|---|---|---|---|---|---|\n" +
         rows + "\n";
}

std::string section_divergences(const RunSummary& s) {
  std::string out = "## Divergences (" + std::to_string(s.divergences.size()) + ")\n\n";
  if (s.divergences.empty()) return out + "None.\n\n";
  out += "| finding | variant | prompt | category | prompt text | original response | variant response |\n"
         "|---|---|---|---|---|---|---|\n";
  for (const Divergence& d : s.divergences)
    out += "| " + d.finding + " | " + markdown_cell(d.variant) + " | " + markdown_cell(d.prompt_id, 60) + " | " +
           markdown_cell(d.category, 60) + " | " + markdown_cell(d.prompt) + " | " + markdown_cell(d.response_original) +
           " | " + markdown_cell(d.response_variant) + " |\n";
  return out + "\n";
}

std::string section_metadata(const RunSummary& s) {
  std::string out = "## Run\n\n| | |\n|---|---|\n";
  auto row = [&](const std::string& k, const std::string& v) { out += "| " + k + " | " + markdown_cell(v, 400) + " |\n"; };
  row("run id", s.run_id);
  row("started", s.time);
  row("safeshrink", s.safeshrink_version);
  row("seed", std::to_string(s.seed));
  row("start_run entries", std::to_string(s.n_start_runs) + (s.n_start_runs > 1 ? " (resumed)" : ""));
  row("prompt set", s.prompt_set_name + " " + s.prompt_set_version + " (n = " + std::to_string(s.prompt_set_n) + ")");
  row("prompt set sha256", s.prompt_set_sha256);
  for (const VariantSummary& v : s.variants)
    row("model " + markdown_cell(v.variant), v.path + (v.sha256.empty() ? "" : " sha256 " + v.sha256));
  std::string config = sanitize_utf8(s.config_json);  // a fence inside the config must not end ours
  for (size_t at = config.find("```"); at != std::string::npos; at = config.find("```", at)) config.replace(at, 3, "`\u200b``");
  out += "\nConfig:\n\n```json\n" + config + "\n```\n\n";
  for (const std::string& w : s.warnings) out += "> warning: " + markdown_cell(w, 400) + "\n";
  return out;
}

}  // namespace

std::string report_markdown(const RunSummary& s) {
  std::string out = "# safeshrink safety report" + (s.run_id.empty() ? std::string() : " — " + markdown_cell(s.run_id, 80)) +
                    "\n\n";
  out += section_gates(s) + section_variants(s) + section_categories(s) + section_comparison(s) + section_at_risk(s) +
         section_drift(s) + section_divergences(s) + section_metadata(s);
  return out;
}

}  // namespace ss

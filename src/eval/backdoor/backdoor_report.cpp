// The backdoor study's derived outputs (contract: include/safeshrink/backdoor.h): summary.json,
// report.md and report.html, rendered from DIR/run.jsonl alone (so a report can be re-rendered at
// any time, and a resumed run renders the same as an uninterrupted one). The HTML charts use
// svg_chart.h: ASR and clean accuracy vs bits per weight (quantized variants), vs sparsity (one
// pair of series per pruning method), per variant (bars, distilled students included), and the
// fine-pruning curve. Not here: any rate or interval computation (stored in the log by
// backdoor_counts), the log reader (backdoor_run_log.cpp).
// To add a section: read it from the summary JSON in both renderers.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "safeshrink/backdoor.h"
#include "safeshrink/run_log.h"
#include "safeshrink/svg_chart.h"

namespace ss {
namespace {

using json = nlohmann::json;

json counts_summary(const BackdoorCounts& c) {
  return {{"clean_correct", c.clean_correct}, {"clean_n", c.clean_n},  {"clean_accuracy", c.clean_accuracy()},
          {"clean_ci", {c.clean_ci.lo, c.clean_ci.hi}}, {"asr_hits", c.asr_hits}, {"asr_n", c.asr_n},
          {"asr", c.asr()},                   {"asr_ci", {c.asr_ci.lo, c.asr_ci.hi}}};
}

std::string pct(double v, int decimals = 2) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, v * 100.0);
  return buf;
}

std::string num(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string rate_cell(const json& r, const char* rate, const char* hits, const char* n, const char* ci) {
  return pct(r[rate].get<double>()) + " (" + std::to_string(r[hits].get<int64_t>()) + "/" +
         std::to_string(r[n].get<int64_t>()) + ") [" + pct(r[ci][0].get<double>(), 1) + ", " +
         pct(r[ci][1].get<double>(), 1) + "]";
}

std::string method_of(const json& v) {
  const std::string name = v["variant"].get<std::string>();
  if (v.contains("method") && v["method"].is_string() && !v["method"].get<std::string>().empty())
    return v["method"].get<std::string>();
  return name.substr(0, name.find('-'));
}

// Escapes for Markdown table cells.
std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

ChartSeries rate_series(const std::string& name, const std::vector<const json*>& rows, const char* xkey,
                        const char* rate, const char* ci) {
  ChartSeries s;
  s.name = name;
  for (const json* r : rows) {
    s.x.push_back((*r)[xkey].is_number() ? (*r)[xkey].get<double>() : NAN);
    s.y.push_back((*r)[rate].get<double>());
    s.lo.push_back((*r)[ci][0].get<double>());
    s.hi.push_back((*r)[ci][1].get<double>());
  }
  return s;
}

}  // namespace

json backdoor_summary(const BackdoorLog& log) {
  json s;
  json survival_cfg, fine_cfg;
  for (const auto& st : log.starts) {
    const json cfg = st.contains("config") ? st["config"] : json::object();
    const std::string kind = cfg.value("kind", std::string());
    if (kind == "backdoor_survival") survival_cfg = cfg;
    if (kind == "backdoor_fine_prune") fine_cfg = cfg;
  }
  s["survival_config"] = survival_cfg;
  s["fine_prune_config"] = fine_cfg;
  s["ended"] = log.ended;
  s["torn_last_line"] = log.torn_last_line;

  const BackdoorVariantEntry* original = nullptr;
  for (const auto& v : log.variants)
    if (v.kind == "original") original = &v;
  json variants = json::array();
  int64_t n_survived = 0;
  for (const auto& v : log.variants) {
    json r = {{"variant", v.variant}, {"kind", v.kind}};
    r["bits_per_weight"] = v.bits_per_weight ? json(*v.bits_per_weight) : json(nullptr);
    r["sparsity"] = v.sparsity;
    r.update(counts_summary(v.counts));
    r["threshold"] = v.threshold;
    r["survived"] = v.survived;
    r["seconds"] = v.seconds;
    r["method"] = v.plan.is_object() ? v.plan.value("method", std::string()) : std::string();
    if (!v.student.is_null()) r["student"] = v.student;
    if (original) {
      r["clean_accuracy_change"] = v.counts.clean_accuracy() - original->counts.clean_accuracy();
      r["asr_change"] = v.counts.asr() - original->counts.asr();
    }
    n_survived += v.survived && v.kind != "original";
    variants.push_back(std::move(r));
  }
  s["variants"] = variants;
  s["n_variants"] = static_cast<int64_t>(log.variants.size()) - (original ? 1 : 0);
  s["n_survived"] = n_survived;
  json fp = json::array();
  for (const auto& e : log.fine_prune) {
    json r = {{"fraction", e.fraction}, {"stage", e.stage}, {"layer", e.layer},
              {"n_pruned", static_cast<int64_t>(e.pruned_channels.size())}, {"pruned_channels", e.pruned_channels}};
    r.update(counts_summary(e.counts));
    r["threshold"] = e.threshold;
    r["survived"] = e.survived;
    r["seconds"] = e.seconds;
    fp.push_back(std::move(r));
  }
  s["fine_prune"] = fp;
  if (log.ranking) {
    s["ranking"] = {{"layer", log.ranking->layer}, {"channels", log.ranking->channels},
                    {"n_images", log.ranking->n_images}, {"mean_activation", log.ranking->mean_activation},
                    {"order", log.ranking->order}};
  } else {
    s["ranking"] = nullptr;
  }
  return s;
}

std::string backdoor_report_markdown(const json& s) {
  std::string md = "# Backdoor survival report\n\n";
  auto cfg_lines = [&](const json& c, const char* title) {
    if (!c.is_object()) return;
    md += std::string("**") + title + "**: model `" + md_cell(c.value("model", std::string())) + "` (sha256 " +
          c.value("model_sha256", std::string()).substr(0, 16) + "…), trigger `" +
          md_cell(c.value("trigger", std::string())) + "`, target " + std::to_string(c.value("target", 0)) + ", " +
          std::to_string(c.value("n_test", int64_t{0})) + " test images, threshold " +
          num(c.value("threshold", 0.5), 2) + ".\n\n";
  };
  cfg_lines(s["survival_config"], "Survival run");
  cfg_lines(s["fine_prune_config"], "Fine-pruning run");
  md += "Clean accuracy is over the full test set; ASR (attack success rate) is over the triggered test images "
        "whose true label is not the target. Brackets: Wilson 95% intervals. A backdoor *survives* when ASR > "
        "threshold.\n\n";
  if (!s["variants"].empty()) {
    md += "## Survival across variants\n\n";
    md += "| variant | kind | bits/weight | sparsity | clean accuracy | Δ clean | ASR | survived |\n";
    md += "|---|---|---:|---:|---|---:|---|---|\n";
    for (const auto& r : s["variants"]) {
      md += "| " + md_cell(r["variant"].get<std::string>()) + " | " + r["kind"].get<std::string>() + " | " +
            (r["bits_per_weight"].is_number() ? num(r["bits_per_weight"].get<double>(), 2) : std::string("–")) + " | " +
            num(r["sparsity"].get<double>(), 3) + " | " +
            rate_cell(r, "clean_accuracy", "clean_correct", "clean_n", "clean_ci") + " | " +
            (r.contains("clean_accuracy_change") ? num(r["clean_accuracy_change"].get<double>() * 100, 2) + " pt"
                                                 : std::string("–")) +
            " | " + rate_cell(r, "asr", "asr_hits", "asr_n", "asr_ci") + " | " +
            (r["survived"].get<bool>() ? "**yes**" : "no") + " |\n";
    }
    md += "\n" + std::to_string(s["n_survived"].get<int64_t>()) + " of " + std::to_string(s["n_variants"].get<int64_t>()) +
          " variants keep the backdoor.\n\n";
  }
  if (!s["fine_prune"].empty()) {
    md += "## Fine-pruning (Liu et al. 2018)\n\n";
    if (s["ranking"].is_object())
      md += "Channels of `" + s["ranking"]["layer"].get<std::string>() + "` (" +
            std::to_string(s["ranking"]["channels"].get<int64_t>()) + ") ranked by mean activation on " +
            std::to_string(s["ranking"]["n_images"].get<int64_t>()) + " clean images; least active pruned first.\n\n";
    md += "| pruned | channels | stage | clean accuracy | ASR | survived |\n|---:|---:|---|---|---|---|\n";
    for (const auto& r : s["fine_prune"]) {
      md += "| " + pct(r["fraction"].get<double>(), 0) + " | " + std::to_string(r["n_pruned"].get<int64_t>()) + " | " +
            r["stage"].get<std::string>() + " | " + rate_cell(r, "clean_accuracy", "clean_correct", "clean_n", "clean_ci") +
            " | " + rate_cell(r, "asr", "asr_hits", "asr_n", "asr_ci") + " | " +
            (r["survived"].get<bool>() ? "**yes**" : "no") + " |\n";
    }
    md += "\n";
  }
  if (!s.value("ended", false)) md += "_The run log has no end_run record: the run was interrupted (resume it)._\n";
  return md;
}

std::string backdoor_report_html(const json& s) {
  std::string body;  // html_page() writes the <h1> title
  double threshold = 0.5;
  auto cfg_par = [&](const json& c, const char* title) {
    if (!c.is_object()) return;
    threshold = c.value("threshold", threshold);
    body += "<p><b>" + std::string(title) + "</b>: model <code>" + html_escape_text(c.value("model", std::string())) +
            "</code>, trigger <code>" + html_escape_text(c.value("trigger", std::string())) + "</code>, target " +
            std::to_string(c.value("target", 0)) + ", " + std::to_string(c.value("n_test", int64_t{0})) +
            " test images, threshold " + num(c.value("threshold", 0.5), 2) + ".</p>\n";
  };
  cfg_par(s["survival_config"], "Survival run");
  cfg_par(s["fine_prune_config"], "Fine-pruning run");
  body += "<p>Clean accuracy: full test set. ASR: triggered test images whose label is not the target. Whiskers and "
          "brackets: Wilson 95% intervals. Dashed line: the survival threshold.</p>\n";

  const json& vs = s["variants"];
  if (!vs.empty()) {
    std::vector<const json*> quant, all;
    std::map<std::string, std::vector<const json*>> pruned_by_method;
    const json* original = nullptr;
    for (const auto& r : vs) {
      all.push_back(&r);
      const std::string kind = r["kind"].get<std::string>();
      if (kind == "original") original = &r;
      if (kind == "quantized" || kind == "original") quant.push_back(&r);
      if (kind == "pruned") pruned_by_method[method_of(r)].push_back(&r);
    }
    std::sort(quant.begin(), quant.end(), [](const json* a, const json* b) {
      return (*a)["bits_per_weight"].get<double>() < (*b)["bits_per_weight"].get<double>();
    });
    LineChartSpec bits;
    bits.title = "ASR and clean accuracy vs bits per weight";
    bits.x_label = "bits per weight";
    bits.y_label = "rate";
    bits.y_percent = true;
    bits.threshold = threshold;
    bits.series.push_back(rate_series("ASR", quant, "bits_per_weight", "asr", "asr_ci"));
    bits.series.push_back(rate_series("clean accuracy", quant, "bits_per_weight", "clean_accuracy", "clean_ci"));
    body += "<h2>Survival across variants</h2>\n<div class=\"chart\">" + svg_line_chart(bits) + "</div>\n";
    if (!pruned_by_method.empty()) {
      LineChartSpec sp;
      sp.title = "ASR and clean accuracy vs sparsity";
      sp.x_label = "sparsity (fraction of zero weights)";
      sp.y_label = "rate";
      sp.y_percent = true;
      sp.threshold = threshold;
      for (auto& [method, rows] : pruned_by_method) {
        if (original) rows.insert(rows.begin(), original);
        std::sort(rows.begin(), rows.end(), [](const json* a, const json* b) {
          return (*a)["sparsity"].get<double>() < (*b)["sparsity"].get<double>();
        });
        sp.series.push_back(rate_series("ASR " + method, rows, "sparsity", "asr", "asr_ci"));
        sp.series.push_back(rate_series("clean " + method, rows, "sparsity", "clean_accuracy", "clean_ci"));
      }
      body += "<div class=\"chart\">" + svg_line_chart(sp) + "</div>\n";
    }
    BarChartSpec bars;
    bars.title = "ASR and clean accuracy per variant";
    bars.y_label = "rate";
    bars.y_percent = true;
    ChartSeries asr, clean;
    asr.name = "ASR";
    clean.name = "clean accuracy";
    for (const json* r : all) {
      bars.categories.push_back((*r)["variant"].get<std::string>());
      asr.y.push_back((*r)["asr"].get<double>());
      asr.lo.push_back((*r)["asr_ci"][0].get<double>());
      asr.hi.push_back((*r)["asr_ci"][1].get<double>());
      clean.y.push_back((*r)["clean_accuracy"].get<double>());
      clean.lo.push_back((*r)["clean_ci"][0].get<double>());
      clean.hi.push_back((*r)["clean_ci"][1].get<double>());
    }
    bars.series = {asr, clean};
    bars.width = std::max(560, 80 * static_cast<int>(all.size()));
    body += "<div class=\"chart\">" + svg_bar_chart(bars) + "</div>\n";

    body += "<table><thead><tr><th>variant</th><th>kind</th><th>bits/weight</th><th>sparsity</th><th>clean accuracy</th>"
            "<th>Δ clean</th><th>ASR</th><th>survived</th></tr></thead><tbody>\n";
    for (const auto& r : vs) {
      body += "<tr><td>" + html_escape_text(r["variant"].get<std::string>()) + "</td><td>" +
              html_escape_text(r["kind"].get<std::string>()) + "</td><td>" +
              (r["bits_per_weight"].is_number() ? num(r["bits_per_weight"].get<double>(), 2) : std::string("–")) +
              "</td><td>" + num(r["sparsity"].get<double>(), 3) + "</td><td>" +
              html_escape_text(rate_cell(r, "clean_accuracy", "clean_correct", "clean_n", "clean_ci")) + "</td><td>" +
              (r.contains("clean_accuracy_change") ? num(r["clean_accuracy_change"].get<double>() * 100, 2) + " pt"
                                                   : std::string("–")) +
              "</td><td>" + html_escape_text(rate_cell(r, "asr", "asr_hits", "asr_n", "asr_ci")) + "</td><td>" +
              (r["survived"].get<bool>() ? "<b>yes</b>" : "no") + "</td></tr>\n";
    }
    body += "</tbody></table>\n<p>" + std::to_string(s["n_survived"].get<int64_t>()) + " of " +
            std::to_string(s["n_variants"].get<int64_t>()) + " variants keep the backdoor.</p>\n";
  }
  const json& fp = s["fine_prune"];
  if (!fp.empty()) {
    std::vector<const json*> pruned, tuned;
    for (const auto& r : fp) (r["stage"].get<std::string>() == "pruned" ? pruned : tuned).push_back(&r);
    LineChartSpec c;
    c.title = "Fine-pruning: ASR and clean accuracy vs fraction of channels pruned";
    c.x_label = "fraction of last-conv channels pruned";
    c.y_label = "rate";
    c.y_percent = true;
    c.threshold = threshold;
    if (!pruned.empty()) {
      c.series.push_back(rate_series("ASR pruned", pruned, "fraction", "asr", "asr_ci"));
      c.series.push_back(rate_series("clean pruned", pruned, "fraction", "clean_accuracy", "clean_ci"));
    }
    if (!tuned.empty()) {
      c.series.push_back(rate_series("ASR fine-tuned", tuned, "fraction", "asr", "asr_ci"));
      c.series.push_back(rate_series("clean fine-tuned", tuned, "fraction", "clean_accuracy", "clean_ci"));
    }
    body += "<h2>Fine-pruning (Liu et al. 2018)</h2>\n<div class=\"chart\">" + svg_line_chart(c) + "</div>\n";
    body += "<table><thead><tr><th>pruned</th><th>channels</th><th>stage</th><th>clean accuracy</th><th>ASR</th>"
            "<th>survived</th></tr></thead><tbody>\n";
    for (const auto& r : fp)
      body += "<tr><td>" + pct(r["fraction"].get<double>(), 0) + "</td><td>" + std::to_string(r["n_pruned"].get<int64_t>()) +
              "</td><td>" + html_escape_text(r["stage"].get<std::string>()) + "</td><td>" +
              html_escape_text(rate_cell(r, "clean_accuracy", "clean_correct", "clean_n", "clean_ci")) + "</td><td>" +
              html_escape_text(rate_cell(r, "asr", "asr_hits", "asr_n", "asr_ci")) + "</td><td>" +
              (r["survived"].get<bool>() ? "<b>yes</b>" : "no") + "</td></tr>\n";
    body += "</tbody></table>\n";
  }
  if (!s.value("ended", false)) body += "<p><i>The run log has no end_run record: the run was interrupted.</i></p>\n";
  return html_page("Backdoor survival report", body);
}

Status render_backdoor_report(const std::string& dir) {
  SS_ASSIGN_OR_RETURN(BackdoorLog log, read_backdoor_log(dir));
  const json summary = backdoor_summary(log);
  auto write = [&](const std::string& name, const std::string& text) -> Status {
    const std::string path = dir + "/" + name;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) return io_error(path + ": cannot open for writing");
    f << text;
    f.close();
    if (!f) return io_error(path + ": write failed");
    return ok_status();
  };
  SS_RETURN_IF_ERROR(write("summary.json", summary.dump(2) + "\n"));
  SS_RETURN_IF_ERROR(write("report.md", backdoor_report_markdown(summary)));
  SS_RETURN_IF_ERROR(write("report.html", backdoor_report_html(summary)));
  return ok_status();
}

}  // namespace ss

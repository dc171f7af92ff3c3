// The adversarial reports, derived from the run log alone: summary.json (robust accuracy per
// variant x attack x eps with Wilson 95% intervals, transfer and fooled rates, QAA vs PGD transfer,
// boundary found rates, smallest-eps statistics), report.md (the same as tables) and report.html
// (svg_chart.h: robust accuracy vs eps per variant for each attack; QAA vs PGD transfer bars; the
// boundary found rate vs eps). Not here: measuring anything (adversarial_run.cpp).
// To add a section: compute it into the summary JSON first, then render it from the summary in both
// the Markdown and the HTML writer, so the three files never disagree.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "adversarial_log.h"
#include "safeshrink/stats.h"
#include "safeshrink/svg_chart.h"

namespace ss {

namespace {

nlohmann::json rate_json(int64_t k, int64_t n) {
  auto ci = wilson_interval(k, n, 0.95);
  const Interval iv = ci.ok() ? *ci : Interval{0, 1};
  return {{"k", k}, {"n", n}, {"rate", n ? double(k) / double(n) : 0.0}, {"ci_lo", iv.lo}, {"ci_hi", iv.hi}};
}

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * v);
  return buf;
}
std::string num(double v, const char* f = "%.3g") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string rate_cell(const nlohmann::json& r) {
  return pct(r["rate"].get<double>()) + " [" + pct(r["ci_lo"].get<double>()) + ", " + pct(r["ci_hi"].get<double>()) + "]";
}

const char* kAttackOrder[] = {"fgsm", "pgd", "qaa", "pgd_self"};

}  // namespace

Result<nlohmann::json> adversarial_summary(const AdversarialLog& log) {
  nlohmann::json s;
  s["config"] = log.config;
  s["complete"] = log.ended;
  s["variants"] = nlohmann::json::array();
  for (const auto& v : log.variants)
    s["variants"].push_back({{"variant", v.variant}, {"spec", v.spec}, {"bits_per_weight", v.bits_per_weight},
                             {"sparsity", v.sparsity}, {"clean_accuracy", rate_json(v.clean_correct, v.n)}});
  s["substitutes"] = nlohmann::json::array();
  for (const auto& q : log.substitutes)
    s["substitutes"].push_back({{"spec", q.spec}, {"bits", q.bits}, {"activation_bits", q.activation_bits},
                                {"clean_accuracy", rate_json(q.clean_correct, q.n)}});
  s["robust_accuracy"] = nlohmann::json::array();
  for (const auto& r : log.results)
    s["robust_accuracy"].push_back({{"variant", r.variant}, {"attack", r.attack}, {"eps", r.eps}, {"source", r.source},
                                    {"accuracy", rate_json(r.correct, r.n)},
                                    {"transfer_rate", rate_json(r.n - r.correct, r.n)},
                                    {"fooled_rate", rate_json(r.fooled, r.clean_correct)}});
  // QAA vs PGD (both crafted without the variant's own gradients): misclassification rates.
  s["qaa_vs_pgd"] = nlohmann::json::array();
  for (const auto& q : log.results) {
    if (q.attack != "qaa") continue;
    const AdvResultRecord* p = log.find_result(q.variant, "pgd", q.eps);
    if (!p) continue;
    const double tq = double(q.n - q.correct) / double(std::max<int64_t>(q.n, 1));
    const double tp = double(p->n - p->correct) / double(std::max<int64_t>(p->n, 1));
    s["qaa_vs_pgd"].push_back({{"variant", q.variant}, {"eps", q.eps}, {"pgd_transfer", rate_json(p->n - p->correct, p->n)},
                               {"qaa_transfer", rate_json(q.n - q.correct, q.n)}, {"difference", tq - tp}});
  }
  s["boundary"] = nlohmann::json::array();
  for (const auto& b : log.boundaries)
    s["boundary"].push_back({{"variant", b.variant}, {"eps", b.eps}, {"found", rate_json(b.found, b.n)},
                             {"found_search", b.found_search}, {"found_at_zero", b.found_at_zero},
                             {"agree_clean", b.agree_clean}});
  s["min_eps"] = nlohmann::json::array();
  for (const auto& m : log.min_eps) {
    std::vector<double> vals;
    for (const auto& v : m.min_eps)
      if (v) vals.push_back(*v);
    nlohmann::json e = {{"variant", m.variant}, {"n", m.n}, {"eps_max", m.eps_max}, {"iterations", m.iterations},
                        {"found", static_cast<int64_t>(vals.size())},
                        {"resolution", m.eps_max / std::pow(2.0, m.iterations)}};
    if (!vals.empty()) {
      e["median"] = percentile_of(vals, 50);
      e["min"] = *std::min_element(vals.begin(), vals.end());
      e["max"] = *std::max_element(vals.begin(), vals.end());
    } else {
      e["median"] = e["min"] = e["max"] = nullptr;
    }
    s["min_eps"].push_back(e);
  }
  return s;
}

namespace {

std::vector<double> eps_grid(const nlohmann::json& s) {
  std::set<double> eps;
  for (const auto& r : s["robust_accuracy"]) eps.insert(r["eps"].get<double>());
  for (const auto& r : s["boundary"]) eps.insert(r["eps"].get<double>());
  return {eps.begin(), eps.end()};
}

std::string markdown(const nlohmann::json& s) {
  std::string md = "# Adversarial robustness of compressed variants\n\n";
  const auto& c = s["config"];
  md += "Model `" + c.value("model", std::string("?")) + "`, " + std::to_string(c.value("n_test", 0)) +
        " test images, PGD " + std::to_string(c.value("steps", 0)) + " steps (step size " +
        (c.value("step_size", 0.0) > 0 ? num(c.value("step_size", 0.0)) : std::string("2.5 eps/steps")) +
        ", random start " + (c.value("random_start", true) ? "on" : "off") + ", seed " +
        std::to_string(c.value("seed", 0)) + "). Intervals: Wilson 95%." +
        (s.value("complete", false) ? "" : " **The run is incomplete.**") + "\n\n";
  md += "## Variants\n\n| variant | bits/weight | sparsity | clean accuracy |\n|---|---|---|---|\n";
  for (const auto& v : s["variants"])
    md += "| " + v["variant"].get<std::string>() + " | " + num(v["bits_per_weight"].get<double>(), "%.2f") + " | " +
          num(v["sparsity"].get<double>(), "%.3f") + " | " + rate_cell(v["clean_accuracy"]) + " |\n";
  if (!s["substitutes"].empty()) {
    md += "\nQAA substitutes (clean accuracy as the attack sees them, activations fake-quantized):\n\n"
          "| substitute | weight bits | activation bits | clean accuracy |\n|---|---|---|---|\n";
    for (const auto& q : s["substitutes"])
      md += "| " + q["spec"].get<std::string>() + " | " + std::to_string(q["bits"].get<int>()) + " | " +
            (q["activation_bits"].get<int>() ? std::to_string(q["activation_bits"].get<int>()) : std::string("float")) +
            " | " + rate_cell(q["clean_accuracy"]) + " |\n";
  }
  const std::vector<double> eps = eps_grid(s);
  for (const char* attack : kAttackOrder) {
    std::map<std::string, std::map<double, nlohmann::json>> table;
    std::vector<std::string> order;
    std::string source;
    for (const auto& r : s["robust_accuracy"]) {
      if (r["attack"] != attack) continue;
      const std::string v = r["variant"];
      if (!table.count(v)) order.push_back(v);
      table[v][r["eps"].get<double>()] = r["accuracy"];
      source = r["source"];
    }
    if (order.empty()) continue;
    md += std::string("\n## Robust accuracy under ") + attack +
          (std::string(attack) == "pgd_self" ? " (crafted on each variant itself)" : " (crafted on " + source + ")") +
          "\n\n| variant |";
    for (double e : eps) md += " eps " + num(e) + " |";
    md += "\n|---|";
    for (size_t i = 0; i < eps.size(); ++i) md += "---|";
    md += "\n";
    for (const auto& v : order) {
      md += "| " + v + " |";
      for (double e : eps) {
        md += ' ';
        md += table[v].count(e) ? rate_cell(table[v][e]) : std::string("-");
        md += " |";
      }
      md += "\n";
    }
  }
  if (!s["qaa_vs_pgd"].empty()) {
    md += "\n## Transfer: QAA vs PGD on FP32\n\nMisclassification rate of each variant on images crafted by PGD on "
          "the FP32 model and by QAA on the quantized ensemble.\n\n| variant | eps | PGD (FP32) | QAA | QAA - PGD |\n"
          "|---|---|---|---|---|\n";
    for (const auto& r : s["qaa_vs_pgd"])
      md += "| " + r["variant"].get<std::string>() + " | " + num(r["eps"].get<double>()) + " | " +
            rate_cell(r["pgd_transfer"]) + " | " + rate_cell(r["qaa_transfer"]) + " | " +
            num(100.0 * r["difference"].get<double>(), "%+.1f") + " pt |\n";
  }
  if (!s["boundary"].empty()) {
    md += "\n## Boundary search: inputs where FP32 keeps its label and the variant changes it\n\n"
          "| variant | eps | found | of which at eps 0 |\n|---|---|---|---|\n";
    for (const auto& b : s["boundary"])
      md += "| " + b["variant"].get<std::string>() + " | " + num(b["eps"].get<double>()) + " | " +
            rate_cell(b["found"]) + " | " + std::to_string(b["found_at_zero"].get<int64_t>()) + " |\n";
  }
  if (!s["min_eps"].empty()) {
    md += "\n## Smallest eps with a disagreement (bisection on a sample)\n\n"
          "| variant | images | found within eps_max | median | min | max | resolution |\n|---|---|---|---|---|---|---|\n";
    for (const auto& m : s["min_eps"]) {
      auto cell = [&](const char* k) { return m[k].is_null() ? std::string("-") : num(m[k].get<double>(), "%.4f"); };
      md += "| " + m["variant"].get<std::string>() + " | " + std::to_string(m["n"].get<int64_t>()) + " | " +
            std::to_string(m["found"].get<int64_t>()) + " (eps_max " + num(m["eps_max"].get<double>()) + ") | " +
            cell("median") + " | " + cell("min") + " | " + cell("max") + " | " +
            num(m["resolution"].get<double>(), "%.2g") + " |\n";
    }
  }
  return md;
}

std::string html(const nlohmann::json& s, const std::string& md_tables) {
  std::string body = "<h1>Adversarial robustness of compressed variants</h1>\n";
  for (const char* attack : kAttackOrder) {
    LineChartSpec chart;
    chart.title = std::string("Robust accuracy under ") + attack;
    chart.x_label = "eps (L-inf)";
    chart.y_label = "accuracy";
    chart.y_percent = true;
    std::map<std::string, size_t> index;
    for (const auto& r : s["robust_accuracy"]) {
      if (r["attack"] != attack) continue;
      const std::string v = r["variant"];
      if (!index.count(v)) {
        index[v] = chart.series.size();
        chart.series.push_back(ChartSeries{v, {}, {}, {}, {}});
      }
      ChartSeries& cs = chart.series[index[v]];
      cs.x.push_back(r["eps"].get<double>());
      cs.y.push_back(r["accuracy"]["rate"].get<double>());
      cs.lo.push_back(r["accuracy"]["ci_lo"].get<double>());
      cs.hi.push_back(r["accuracy"]["ci_hi"].get<double>());
    }
    if (!chart.series.empty()) body += "<figure>" + svg_line_chart(chart) + "</figure>\n";
  }
  if (!s["qaa_vs_pgd"].empty()) {
    double top = 0;
    for (const auto& r : s["qaa_vs_pgd"]) top = std::max(top, r["eps"].get<double>());
    BarChartSpec bars;
    bars.title = "Transfer (misclassification) at eps " + num(top) + ": PGD on FP32 vs QAA";
    bars.y_label = "misclassified";
    bars.y_percent = true;
    ChartSeries pgd{"PGD (FP32)", {}, {}, {}, {}}, qaa{"QAA", {}, {}, {}, {}};
    for (const auto& r : s["qaa_vs_pgd"]) {
      if (std::abs(r["eps"].get<double>() - top) > 1e-9) continue;
      bars.categories.push_back(r["variant"]);
      pgd.y.push_back(r["pgd_transfer"]["rate"].get<double>());
      pgd.lo.push_back(r["pgd_transfer"]["ci_lo"].get<double>());
      pgd.hi.push_back(r["pgd_transfer"]["ci_hi"].get<double>());
      qaa.y.push_back(r["qaa_transfer"]["rate"].get<double>());
      qaa.lo.push_back(r["qaa_transfer"]["ci_lo"].get<double>());
      qaa.hi.push_back(r["qaa_transfer"]["ci_hi"].get<double>());
    }
    bars.series = {pgd, qaa};
    body += "<figure>" + svg_bar_chart(bars) + "</figure>\n";
  }
  if (!s["boundary"].empty()) {
    LineChartSpec chart;
    chart.title = "Boundary search: disagreement found (FP32 keeps its label, variant changes it)";
    chart.x_label = "eps (L-inf)";
    chart.y_label = "images";
    chart.y_percent = true;
    std::map<std::string, size_t> index;
    for (const auto& b : s["boundary"]) {
      const std::string v = b["variant"];
      if (!index.count(v)) {
        index[v] = chart.series.size();
        chart.series.push_back(ChartSeries{v, {}, {}, {}, {}});
      }
      ChartSeries& cs = chart.series[index[v]];
      cs.x.push_back(b["eps"].get<double>());
      cs.y.push_back(b["found"]["rate"].get<double>());
      cs.lo.push_back(b["found"]["ci_lo"].get<double>());
      cs.hi.push_back(b["found"]["ci_hi"].get<double>());
    }
    body += "<figure>" + svg_line_chart(chart) + "</figure>\n";
  }
  body += "<h2>Tables</h2>\n<pre>" + html_escape_text(md_tables) + "</pre>\n";
  return html_page("safeshrink adversarial report", body);
}

Status write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  if (!out) return io_error(p.string() + ": cannot open for writing");
  out << text;
  out.close();
  if (!out) return io_error(p.string() + ": write failed");
  return ok_status();
}

}  // namespace

Status render_adversarial_reports(const std::string& dir) {
  SS_ASSIGN_OR_RETURN(auto log, read_adversarial_log(dir));
  SS_ASSIGN_OR_RETURN(auto summary, adversarial_summary(log));
  std::string md;
  try {
    md = markdown(summary);
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("adversarial report: ") + e.what());
  }
  const std::filesystem::path d(dir);
  SS_RETURN_IF_ERROR(write_text(d / "summary.json", summary.dump(2) + "\n"));
  SS_RETURN_IF_ERROR(write_text(d / "report.md", md));
  try {
    SS_RETURN_IF_ERROR(write_text(d / "report.html", html(summary, md)));
  } catch (const nlohmann::json::exception& e) {
    return internal_error(std::string("adversarial report: ") + e.what());
  }
  return ok_status();
}

}  // namespace ss

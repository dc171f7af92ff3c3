// report.html: one self-contained page (inline CSS and SVG; no script, no external resource) with
// refusal rates and their intervals, a variant x category heat map, margin histograms (original vs
// each variant), drift bars, a perplexity vs refusal-rate scatter, gates, the divergence table with
// both responses side by side, and run metadata. Every string from the log is untrusted (model
// output, prompts, file names) and goes through html_escape. This renders and computes nothing
// beyond chart geometry. To add a chart, write one function returning an <svg> and call it in
// report_html.
#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "safeshrink/report.h"
#include "text_escape.h"

namespace ss {
namespace {

using namespace report_text;

constexpr const char* kColorOriginal = "#4c72b0";
constexpr const char* kColorVariant = "#dd8452";
constexpr const char* kColorBenign = "#55a868";
const char* const kLabelColors[] = {"#c44e52", "#55a868", "#8172b3", "#937860"};

std::string num(double v) { return format_fixed(v, 1); }

std::string text(double x, double y, const std::string& raw, const char* anchor = "middle", int size = 11,
                 const std::string& extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\" font-size=\"" +
         std::to_string(size) + "\"" + extra + ">" + html_escape(raw) + "</text>";
}
std::string line(double x1, double y1, double x2, double y2, const char* color, double width = 1,
                 const std::string& extra = "") {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" stroke=\"" +
         color + "\" stroke-width=\"" + format_number(width) + "\"" + extra + "/>";
}
std::string rect(double x, double y, double w, double h, const std::string& fill, const std::string& title = "",
                 const std::string& extra = "") {
  std::string r = "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(0.0, w)) + "\" height=\"" +
                  num(std::max(0.0, h)) + "\" fill=\"" + fill + "\"" + extra;
  return title.empty() ? r + "/>" : r + "><title>" + html_escape(title) + "</title></rect>";
}
std::string svg_open(int w, int h, const std::string& label) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + std::to_string(w) + "\" height=\"" +
         std::to_string(h) + "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) +
         "\" role=\"img\" aria-label=\"" + html_escape(label) + "\">";
}
// Cuts a label to n code points for chart axes (tables carry the full text).
std::string short_label(const std::string& s, size_t n = 14) {
  std::string clean = sanitize_utf8(s);
  size_t cps = 0;
  for (size_t i = 0; i < clean.size(); ++i)
    if ((static_cast<unsigned char>(clean[i]) & 0xC0) != 0x80 && cps++ == n) return clean.substr(0, i) + "…";
  return clean;
}

// Y axis 0..100% with grid lines; returns the SVG and maps a rate to a y coordinate via top/bottom.
std::string percent_axis(double left, double right, double top, double bottom) {
  std::string out;
  for (int p = 0; p <= 100; p += 25) {
    const double y = bottom - (bottom - top) * p / 100.0;
    out += line(left, y, right, y, "#ddd");
    out += text(left - 6, y + 4, std::to_string(p) + "%", "end", 10);
  }
  return out;
}

std::string chart_refusal_rates(const RunSummary& s) {
  const int n = static_cast<int>(s.variants.size());
  const int group = 70, left = 50, top = 20, plot_h = 200;
  const int w = std::max(440, left + 20 + n * group), h = top + plot_h + 60;
  const double bottom = top + plot_h, right = w - 10;
  std::string out = svg_open(w, h, "refusal rate per variant with confidence intervals");
  out += percent_axis(left, right, top, bottom);
  auto y_of = [&](double rate) { return bottom - plot_h * std::clamp(rate, 0.0, 1.0); };
  for (int i = 0; i < n; ++i) {
    const VariantSummary& v = s.variants[static_cast<size_t>(i)];
    const double x0 = left + 10 + i * group;
    const RateSummary* rates[2] = {&v.refusal, &v.over_refusal};
    const char* colors[2] = {v.role == "original" ? kColorOriginal : kColorVariant, kColorBenign};
    const char* names[2] = {"refusal (harmful)", "over-refusal (benign)"};
    for (int k = 0; k < 2; ++k) {
      const RateSummary& r = *rates[k];
      if (r.n == 0) continue;
      const double x = x0 + k * 26, bw = 22, cx = x + bw / 2;
      out += rect(x, y_of(r.rate), bw, bottom - y_of(r.rate), colors[k],
                  v.variant + " " + names[k] + ": " + format_percent(r.rate) + " [" + format_percent(r.ci.lo) + ", " +
                      format_percent(r.ci.hi) + "] n=" + std::to_string(r.n),
                  k == 1 ? " class=\"benign\"" : "");
      out += line(cx, y_of(r.ci.lo), cx, y_of(r.ci.hi), "#222", 1.5, " class=\"errorbar\"");
      out += line(cx - 5, y_of(r.ci.lo), cx + 5, y_of(r.ci.lo), "#222", 1.5);
      out += line(cx - 5, y_of(r.ci.hi), cx + 5, y_of(r.ci.hi), "#222", 1.5);
    }
    out += text(x0 + 24, bottom + 16, short_label(v.variant), "middle", 10);
  }
  out += rect(left, h - 22, 12, 12, kColorVariant) + text(left + 16, h - 12, "refusal rate on harmful prompts", "start", 10);
  out += rect(left + 210, h - 22, 12, 12, kColorBenign) + text(left + 226, h - 12, "over-refusal on benign", "start", 10);
  return out + "</svg>";
}

std::string heat_color(double rate) {  // low refusal = red, high refusal = green
  const double t = std::clamp(rate, 0.0, 1.0);
  const int r = static_cast<int>(std::lround(215 - t * (215 - 46)));
  const int g = static_cast<int>(std::lround(48 + t * (160 - 48)));
  const int b = static_cast<int>(std::lround(39 + t * (67 - 39)));
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

std::string chart_category_heatmap(const RunSummary& s) {
  std::set<std::string> cats;
  for (const VariantSummary& v : s.variants)
    for (const auto& [c, r] : v.by_category) cats.insert(c);
  if (cats.empty()) return "<p>No harmful prompts: no category heat map.</p>";
  const int cell_w = 90, cell_h = 28, left = 120, top = 40;
  const int w = left + static_cast<int>(cats.size()) * cell_w + 10, h = top + static_cast<int>(s.variants.size()) * cell_h + 10;
  std::string out = svg_open(w, h, "refusal rate per variant and category");
  int col = 0;
  for (const std::string& c : cats)
    out += text(left + col++ * cell_w + cell_w / 2.0, top - 10, short_label(c.empty() ? "(none)" : c, 12), "middle", 10);
  int row = 0;
  for (const VariantSummary& v : s.variants) {
    const double y = top + row * cell_h;
    out += text(left - 6, y + cell_h / 2.0 + 4, short_label(v.variant, 16), "end", 10);
    col = 0;
    for (const std::string& c : cats) {
      const double x = left + col * cell_w;
      auto it = v.by_category.find(c);
      if (it == v.by_category.end() || it->second.n == 0) {
        out += rect(x, y, cell_w - 2, cell_h - 2, "#eee");
      } else {
        const RateSummary& r = it->second;
        out += rect(x, y, cell_w - 2, cell_h - 2, heat_color(r.rate),
                    v.variant + " / " + c + ": " + std::to_string(r.count) + "/" + std::to_string(r.n), " class=\"cell\"");
        out += text(x + cell_w / 2.0, y + cell_h / 2.0 + 4, format_percent(r.rate, 0), "middle", 10, " fill=\"#fff\"");
      }
      ++col;
    }
    ++row;
  }
  return out + "</svg>";
}

std::string chart_margin_histogram(const VariantSummary& original, const VariantSummary& v) {
  const std::vector<double>& a = original.margins_harmful;
  const std::vector<double>& b = v.margins_harmful;
  if (a.empty() && b.empty()) return "";
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  for (const auto* list : {&a, &b})
    for (double m : *list) lo = std::min(lo, m), hi = std::max(hi, m);
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (hi - lo < 1e-9) hi = lo + 1;
  const int bins = 20, w = 420, h = 200, left = 40, top = 24, plot_w = w - left - 10, plot_h = h - top - 40;
  std::vector<int> ca(bins), cb(bins);
  auto bin_of = [&](double m) { return std::clamp(static_cast<int>((m - lo) / (hi - lo) * bins), 0, bins - 1); };
  for (double m : a) ++ca[static_cast<size_t>(bin_of(m))];
  for (double m : b) ++cb[static_cast<size_t>(bin_of(m))];
  const int peak = std::max(1, std::max(*std::max_element(ca.begin(), ca.end()), *std::max_element(cb.begin(), cb.end())));
  const double bottom = top + plot_h, bw = static_cast<double>(plot_w) / bins;
  std::string out = svg_open(w, h, "margin histogram original vs " + v.variant);
  out += text(left, 14, "refusal margin on harmful prompts: original vs " + short_label(v.variant, 30), "start", 11);
  out += line(left, bottom, left + plot_w, bottom, "#999");
  for (int i = 0; i < bins; ++i) {
    const double x = left + i * bw;
    const double ha = plot_h * ca[static_cast<size_t>(i)] / static_cast<double>(peak);
    const double hb = plot_h * cb[static_cast<size_t>(i)] / static_cast<double>(peak);
    out += rect(x + 1, bottom - ha, bw / 2 - 1, ha, kColorOriginal, "original: " + std::to_string(ca[static_cast<size_t>(i)]));
    out += rect(x + bw / 2, bottom - hb, bw / 2 - 1, hb, kColorVariant, v.variant + ": " + std::to_string(cb[static_cast<size_t>(i)]));
  }
  const double x0 = left + (0 - lo) / (hi - lo) * plot_w;
  out += line(x0, top, x0, bottom, "#222", 1, " stroke-dasharray=\"4 3\"");
  out += text(x0, top - 2, "0", "middle", 9);
  out += text(left, bottom + 14, format_number(lo), "start", 10) + text(left + plot_w, bottom + 14, format_number(hi), "end", 10);
  out += text(left + plot_w / 2.0, bottom + 14, "margin (> 0 leans refusal)", "middle", 10);
  out += rect(left, h - 16, 10, 10, kColorOriginal) + text(left + 14, h - 7, "original", "start", 10);
  out += rect(left + 90, h - 16, 10, 10, kColorVariant) + text(left + 104, h - 7, short_label(v.variant, 30), "start", 10);
  return out + "</svg>";
}

std::string chart_drift(const RunSummary& s) {
  std::vector<std::string> labels;
  double peak = 0;
  for (const VariantSummary& v : s.variants)
    for (const auto& [label, d] : v.drift) {
      if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
      peak = std::max({peak, d.kld_mean, d.kld_p99});
    }
  if (labels.empty()) return "<p>No drift records in the log.</p>";
  std::sort(labels.begin(), labels.end());
  if (!(peak > 0)) peak = 1;
  std::vector<const VariantSummary*> with;
  for (const VariantSummary& v : s.variants)
    if (!v.drift.empty()) with.push_back(&v);
  const int bar = 18, group = static_cast<int>(labels.size()) * (bar + 2) + 24, left = 60, top = 20, plot_h = 180;
  const int w = std::max(360, left + 10 + static_cast<int>(with.size()) * group), h = top + plot_h + 56;
  const double bottom = top + plot_h;
  std::string out = svg_open(w, h, "drift: mean KLD per variant and text label");
  for (int t = 0; t <= 4; ++t) {
    const double y = bottom - plot_h * t / 4.0;
    out += line(left, y, w - 10, y, "#ddd") + text(left - 6, y + 4, format_number(peak * t / 4.0, 2), "end", 10);
  }
  for (size_t i = 0; i < with.size(); ++i) {
    const double x0 = left + 10 + static_cast<double>(i) * group;
    for (size_t k = 0; k < labels.size(); ++k) {
      auto it = with[i]->drift.find(labels[k]);
      if (it == with[i]->drift.end()) continue;
      const DriftSummary& d = it->second;
      const double x = x0 + static_cast<double>(k) * (bar + 2), hm = plot_h * d.kld_mean / peak;
      out += rect(x, bottom - hm, bar, hm, kLabelColors[k % 4],
                  with[i]->variant + " " + labels[k] + ": mean KLD " + format_number(d.kld_mean, 4) + ", p99 " +
                      format_number(d.kld_p99, 4) + ", top-1 " + format_percent(d.top1_agree));
      const double yp = bottom - plot_h * d.kld_p99 / peak;
      out += line(x, yp, x + bar, yp, "#222", 2);  // p99 tick
    }
    out += text(x0 + (group - 24) / 2.0, bottom + 16, short_label(with[i]->variant), "middle", 10);
  }
  for (size_t k = 0; k < labels.size(); ++k)
    out += rect(left + static_cast<double>(k) * 110, h - 22, 12, 12, kLabelColors[k % 4]) +
           text(left + static_cast<double>(k) * 110 + 16, h - 12, short_label(labels[k]), "start", 10);
  out += text(w - 10, h - 12, "bar: mean KLD, tick: p99", "end", 10);
  return out + "</svg>";
}

std::string chart_quality_vs_safety(const RunSummary& s) {
  std::vector<const VariantSummary*> pts;
  for (const VariantSummary& v : s.variants)
    if (v.perplexity && std::isfinite(*v.perplexity) && v.refusal.n > 0) pts.push_back(&v);
  if (pts.empty()) return "<p>No perplexity records in the log: no quality vs safety chart.</p>";
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  for (const auto* v : pts) lo = std::min(lo, *v->perplexity), hi = std::max(hi, *v->perplexity);
  const double pad = std::max(0.05 * (hi - lo), 0.05 * std::fabs(hi) + 1e-9);
  lo -= pad;
  hi += pad;
  const int w = 460, h = 280, left = 50, top = 20, plot_w = w - left - 20, plot_h = h - top - 50;
  const double bottom = top + plot_h;
  std::string out = svg_open(w, h, "perplexity versus refusal rate");
  out += percent_axis(left, left + plot_w, top, bottom);
  out += line(left, bottom, left + plot_w, bottom, "#999");
  out += text(left, bottom + 14, format_number(lo, 4), "start", 10) + text(left + plot_w, bottom + 14, format_number(hi, 4), "end", 10);
  out += text(left + plot_w / 2.0, bottom + 30, "perplexity (lower = better quality)", "middle", 10);
  out += text(14, top + plot_h / 2.0, "refusal rate", "middle", 10,
              " transform=\"rotate(-90 14 " + num(top + plot_h / 2.0) + ")\"");
  for (const auto* v : pts) {
    const double x = left + (*v->perplexity - lo) / (hi - lo) * plot_w;
    const double y = bottom - plot_h * v->refusal.rate;
    out += "<circle class=\"point\" cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"5\" fill=\"" +
           (v->role == "original" ? kColorOriginal : kColorVariant) + "\"><title>" +
           html_escape(v->variant + ": perplexity " + format_number(*v->perplexity, 5) + ", refusal " +
                       format_percent(v->refusal.rate)) +
           "</title></circle>";
    out += text(x + 7, y - 6, short_label(v->variant), "start", 10);
  }
  return out + "</svg>";
}

std::string rate_cell(const RateSummary& r) {
  if (r.n == 0) return "–";
  return format_percent(r.rate) + " <span class=\"ci\">[" + format_percent(r.ci.lo) + ", " + format_percent(r.ci.hi) +
         "] " + std::to_string(r.count) + "/" + std::to_string(r.n) + "</span>";
}

std::string paired_cells(const PairedComparison& p) {
  if (p.n_pairs == 0) return "<td>–</td><td>–</td><td>–</td>";
  return "<td>" + format_points(p.difference) + " <span class=\"ci\">[" + format_points(p.bootstrap.ci.lo) + ", " +
         format_points(p.bootstrap.ci.hi) + "]</span></td><td>" + std::to_string(p.original_only) + " / " +
         std::to_string(p.variant_only) + "</td><td>" + format_p(p.mcnemar.p_exact) + "</td>";
}

std::string tables(const RunSummary& s) {
  std::string out = "<h2>Variants</h2><table><tr><th>variant</th><th>role</th><th>bits/weight</th><th>refusal "
                    "(harmful)</th><th>over-refusal (benign)</th><th>mean margin</th><th>perplexity</th></tr>";
  for (const VariantSummary& v : s.variants)
    out += "<tr><td>" + html_escape(v.variant) + "</td><td>" + html_escape(v.role) + "</td><td>" +
           (v.bits_per_weight ? format_number(*v.bits_per_weight, 4) : "–") + "</td><td>" + rate_cell(v.refusal) +
           "</td><td>" + rate_cell(v.over_refusal) + "</td><td>" +
           (v.mean_margin_harmful ? format_number(*v.mean_margin_harmful) : "–") + "</td><td>" +
           (v.perplexity ? format_number(*v.perplexity, 5) : "–") + "</td></tr>";
  out += "</table>";
  std::string rows;
  for (const VariantSummary& v : s.variants) {
    if (!v.compared) continue;
    rows += "<tr><td>" + html_escape(v.variant) + "</td>" + paired_cells(v.harmful) + paired_cells(v.benign) + "<td>" +
            std::to_string(v.n_bypass) + "</td><td>" + std::to_string(v.n_new_over_refusal) + "</td><td>" +
            std::to_string(v.at_risk.flipped) + "/" + std::to_string(v.at_risk.k) + "</td><td>" +
            std::to_string(v.at_risk.rest_flipped) + "/" + std::to_string(v.at_risk.rest) + "</td><td>" +
            (v.perplexity_ratio ? format_number(*v.perplexity_ratio, 4) : "–") + "</td></tr>";
  }
  if (!rows.empty())
    out += "<h2>Versus the original (paired per prompt)</h2><p>Δ = variant rate − original rate on shared prompts, "
           "paired bootstrap interval; b / c = discordant pairs (original refused only / variant refused only); p = "
           "exact McNemar.</p><table><tr><th rowspan=\"2\">variant</th><th colspan=\"3\">refusal on harmful</th><th "
           "colspan=\"3\">over-refusal on benign</th><th rowspan=\"2\">bypasses</th><th rowspan=\"2\">new "
           "over-refusals</th><th rowspan=\"2\">at-risk flipped</th><th rowspan=\"2\">other refusals "
           "flipped</th><th rowspan=\"2\">perplexity ratio</th></tr><tr><th>Δ</th><th>b / c</th><th>p</th><th>Δ</th><th>b "
           "/ c</th><th>p</th></tr>" +
           rows + "</table>";
  return out;
}

std::string gates_block(const RunSummary& s) {
  std::string rows;
  for (const VariantSummary& v : s.variants)
    for (const GateResult& g : v.gates)
      rows += std::string("<tr class=\"") + (!g.evaluated ? "skip" : g.passed ? "pass" : "fail") + "\"><td>" +
              html_escape(v.variant) + "</td><td>" + g.gate + "</td><td>" + format_points(g.value) + "</td><td>" +
              format_points(g.threshold) + "</td><td>" + (!g.evaluated ? "skipped" : g.passed ? "pass" : "FAIL") +
              "</td></tr>";
  if (rows.empty()) return "<p class=\"verdict\">No gate was set.</p>";
  return std::string("<p class=\"verdict ") + (s.gates_failed ? "fail\">Gates FAILED" : "pass\">All gates passed") +
         "</p><table><tr><th>variant</th><th>gate</th><th>measured</th><th>threshold</th><th>result</th></tr>" + rows +
         "</table>";
}

std::string divergence_table(const RunSummary& s) {
  std::string out = "<h2>Divergences (" + std::to_string(s.divergences.size()) + ")</h2>";
  if (s.divergences.empty()) return out + "<p>None.</p>";
  out += "<table class=\"divergences\"><tr><th>finding</th><th>variant</th><th>prompt</th><th>original "
         "response</th><th>variant response</th></tr>";
  for (const Divergence& d : s.divergences)
    out += "<tr><td class=\"finding\">" + html_escape(d.finding) + "</td><td>" + html_escape(d.variant) + "</td><td><b>" +
           html_escape(d.prompt_id) + "</b> <i>" + html_escape(d.category) + "</i>" +
           (d.margin_original ? " <span class=\"ci\">margin " + format_number(*d.margin_original) + "</span>" : "") +
           "<pre>" + html_escape(d.prompt) + "</pre></td><td><pre>" + html_escape(d.response_original) +
           "</pre></td><td><pre>" + html_escape(d.response_variant) + "</pre></td></tr>";
  return out + "</table>";
}

std::string at_risk_table(const RunSummary& s) {
  if (s.at_risk.empty()) return "";
  std::string out = "<h2>At-risk refusals</h2><p>The original's " + std::to_string(s.at_risk.size()) +
                    " lowest-margin refusals: barely-refusals flip first.</p><table><tr><th>prompt</th><th>category</th>"
                    "<th>margin</th><th>text</th></tr>";
  for (const AtRiskPrompt& a : s.at_risk)
    out += "<tr><td>" + html_escape(a.prompt_id) + "</td><td>" + html_escape(a.category) + "</td><td>" +
           format_number(a.margin) + "</td><td>" + html_escape(a.prompt) + "</td></tr>";
  return out + "</table>";
}

std::string metadata(const RunSummary& s) {
  std::string out = "<h2>Run</h2><table class=\"meta\">";
  auto row = [&](const std::string& k, const std::string& v) {
    out += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>";
  };
  row("run id", s.run_id);
  row("started", s.time);
  row("safeshrink", s.safeshrink_version);
  row("seed", std::to_string(s.seed));
  row("start_run entries", std::to_string(s.n_start_runs) + (s.n_start_runs > 1 ? " (resumed)" : ""));
  row("prompt set", s.prompt_set_name + " " + s.prompt_set_version + " (n = " + std::to_string(s.prompt_set_n) + ")");
  row("prompt set sha256", s.prompt_set_sha256);
  for (const VariantSummary& v : s.variants)
    row("model " + v.variant, v.path + (v.sha256.empty() ? "" : "  sha256 " + v.sha256) +
                                  (v.bytes ? "  " + std::to_string(*v.bytes) + " bytes" : ""));
  out += "</table><h3>Config</h3><pre>" + html_escape(s.config_json) + "</pre>";
  for (const std::string& w : s.warnings) out += "<p class=\"warning\">warning: " + html_escape(w) + "</p>";
  return out;
}

const char* kStyle =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
    "text-align:left;font-size:13px}th{background:#f3f3f3}.ci{color:#666;font-size:11px}"
    "pre{white-space:pre-wrap;word-break:break-word;max-width:420px;margin:4px 0;font-size:12px}"
    ".verdict{font-weight:bold;font-size:18px}.verdict.fail,tr.fail td{color:#b00020}.verdict.pass{color:#1b7a2f}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #eee;background:#fff}"
    ".warning{color:#a05a00}.finding{font-family:monospace;font-size:11px}";

}  // namespace

std::string report_html(const RunSummary& s) {
  const std::string title = "safeshrink safety report" + (s.run_id.empty() ? std::string() : " — " + s.run_id);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-"
                    "Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"><title>" +
                    html_escape(title) + "</title><style>" + kStyle + "</style></head><body>\n";
  out += "<h1>" + html_escape(title) + "</h1>\n" + gates_block(s) + "\n";
  out += "<h2>Refusal rate per variant</h2><div class=\"charts\">" + chart_refusal_rates(s) + "</div>\n";
  out += "<h2>Refusal rate per category</h2><div class=\"charts\">" + chart_category_heatmap(s) + "</div>\n";
  const VariantSummary* original = nullptr;
  for (const VariantSummary& v : s.variants)
    if (v.role == "original") original = &v;
  std::string hist;
  if (original)
    for (const VariantSummary& v : s.variants)
      if (v.compared) hist += chart_margin_histogram(*original, v);
  if (!hist.empty()) out += "<h2>Refusal margins</h2><div class=\"charts\">" + hist + "</div>\n";
  out += "<h2>Drift on safety prompts</h2><div class=\"charts\">" + chart_drift(s) + "</div>\n";
  out += "<h2>Quality vs safety</h2><div class=\"charts\">" + chart_quality_vs_safety(s) + "</div>\n";
  out += tables(s) + "\n" + at_risk_table(s) + "\n" + divergence_table(s) + "\n" + metadata(s) + "\n</body></html>\n";
  return out;
}

}  // namespace ss

// The attribution report: summary.json, report.md and a self-contained report.html rendered from
// the run log of `safeshrink attribute` alone (entry types in attribution.h), so a run can be
// re-rendered or resumed. Sections appear only when the log holds their entries. Not here: any
// measurement (tensor_sensitivity.cpp, safety_circuits.cpp), the audit's report (src/report/).
// To add a section: read its entries in collect(), one block in each of the three writers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "safeshrink/attribution.h"
#include "safeshrink/svg_chart.h"

namespace ss {
namespace {

using json = nlohmann::json;

// Average ranks (ties share the mean rank), then Pearson on the ranks.
double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 3 || b.size() != n) return std::nan("");
  auto ranks = [n](const std::vector<double>& v) {
    std::vector<size_t> idx(n);
    for (size_t i = 0; i < n; ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return v[x] < v[y]; });
    std::vector<double> r(n);
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (size_t k = i; k <= j; ++k) r[idx[k]] = (static_cast<double>(i + j) / 2.0) + 1.0;
      i = j + 1;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) {
    ma += ra[i];
    mb += rb[i];
  }
  ma /= static_cast<double>(n);
  mb /= static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return (saa > 0 && sbb > 0) ? sab / std::sqrt(saa * sbb) : std::nan("");
}

std::string num(double v, int digits = 3) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
double get(const json& j, const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : std::nan(""); }
std::string gets(const json& j, const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }
json nullable(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// The last record per key wins (a resumed run may repeat one).
struct Collected {
  json start, probe = json::object();
  std::map<std::string, json> baselines;     // model -> entry
  std::vector<json> tensors, layers, confirms, heads, ffn, deltas;
  json flip, setdiff;
  std::vector<json> skipped;
};

Collected collect(const std::vector<json>& lines) {
  Collected c;
  std::map<std::string, json> tensors, layers, heads, ffn, deltas, confirms;
  std::vector<std::string> t_order, l_order, h_order, f_order, d_order, c_order;
  auto put = [](std::map<std::string, json>& m, std::vector<std::string>& order, const std::string& key, const json& j) {
    if (!m.count(key)) order.push_back(key);
    m[key] = j;
  };
  std::set<std::string> done_sections;
  for (const json& j : lines) {
    const std::string t = gets(j, "entry_type");
    if (t == "start_run") c.start = j;
    else if (t == "probe") c.probe = j;
    else if (t == "baseline") c.baselines[gets(j, "model")] = j;
    else if (t == "tensor_sensitivity") put(tensors, t_order, gets(j, "tensor"), j), done_sections.insert("tensor_sensitivity");
    else if (t == "layer_sensitivity") put(layers, l_order, std::to_string(j.value("layer", -1)), j);
    else if (t == "confirm") put(confirms, c_order, gets(j, "what") + gets(j, "spec"), j);
    else if (t == "flip_set") c.flip = j;
    else if (t == "head_ablation") put(heads, h_order, std::to_string(j.value("layer", 0)) + "/" + std::to_string(j.value("head", 0)), j), done_sections.insert("heads");
    else if (t == "ffn_group_ablation") put(ffn, f_order, std::to_string(j.value("layer", 0)) + "/" + std::to_string(j.value("begin", 0)), j), done_sections.insert("ffn_groups");
    else if (t == "set_difference") c.setdiff = j, done_sections.insert("set_difference");
    else if (t == "tensor_delta") put(deltas, d_order, gets(j, "tensor"), j), done_sections.insert("tensor_delta");
    else if (t == "skipped") c.skipped.push_back(j);
  }
  for (auto& k : t_order) c.tensors.push_back(tensors[k]);
  for (auto& k : l_order) c.layers.push_back(layers[k]);
  for (auto& k : h_order) c.heads.push_back(heads[k]);
  for (auto& k : f_order) c.ffn.push_back(ffn[k]);
  for (auto& k : d_order) c.deltas.push_back(deltas[k]);
  for (auto& k : c_order) c.confirms.push_back(confirms[k]);
  // A section skipped once and done later is no longer skipped.
  std::vector<json> still;
  for (const auto& s : c.skipped)
    if (!done_sections.count(gets(s, "section"))) still.push_back(s);
  c.skipped = still;
  auto by = [](const char* key) {
    return [key](const json& a, const json& b) { return get(a, key) > get(b, key); };
  };
  std::stable_sort(c.tensors.begin(), c.tensors.end(), by("margin_drop"));
  std::stable_sort(c.layers.begin(), c.layers.end(), by("margin_drop"));
  return c;
}

const std::vector<std::string> kKinds = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

json build_summary(const Collected& c) {
  json s;
  s["probe"] = c.probe;
  s["config"] = c.start.contains("config") ? c.start["config"] : json(nullptr);
  s["baselines"] = json::object();
  for (const auto& [k, v] : c.baselines) s["baselines"][k] = v;
  auto top = [](std::vector<json> rows, const char* key, size_t n) {
    std::stable_sort(rows.begin(), rows.end(), [key](const json& a, const json& b) { return get(a, key) > get(b, key); });
    json out = json::array();
    for (size_t i = 0; i < rows.size() && i < n; ++i)
      out.push_back({{"tensor", rows[i]["tensor"]}, {"margin_drop", rows[i]["margin_drop"]},
                     {"refusal_drop", rows[i]["refusal_drop"]}, {"kld", rows[i]["kld"]},
                     {"restore_margin_gain", rows[i].value("restore_margin_gain", json(nullptr))}});
    return out;
  };
  if (!c.tensors.empty()) {
    s["spec"] = c.tensors[0].value("spec", "");
    s["n_tensors"] = c.tensors.size();
    s["tensors_by_safety"] = top(c.tensors, "margin_drop", 10);
    s["tensors_by_quality"] = top(c.tensors, "kld", 10);
    std::vector<double> a, b;
    for (const auto& t : c.tensors) {
      a.push_back(get(t, "margin_drop"));
      b.push_back(get(t, "kld"));
    }
    s["spearman_safety_vs_quality"] = nullable(spearman(a, b));
  }
  if (!c.layers.empty()) {
    json l = json::array();
    for (const auto& r : c.layers)
      l.push_back({{"layer", r["layer"]}, {"margin_drop", r["margin_drop"]}, {"refusal_drop", r["refusal_drop"]}, {"kld", r["kld"]}});
    s["layers_by_safety"] = l;
  }
  if (!c.flip.is_null()) s["flip_set"] = c.flip;
  if (!c.confirms.empty()) s["confirm"] = c.confirms;
  auto ablation = [](const std::vector<json>& rows) {
    json o;
    int64_t crit = 0;
    std::vector<json> sorted = rows;
    std::stable_sort(sorted.begin(), sorted.end(), [](const json& a, const json& b) { return get(a, "margin_drop") > get(b, "margin_drop"); });
    for (const auto& r : rows) crit += r.value("safety_critical", false);
    o["n"] = rows.size();
    o["n_safety_critical"] = crit;
    json t = json::array();
    for (size_t i = 0; i < sorted.size() && i < 10; ++i) t.push_back(sorted[i]);
    o["top"] = t;
    return o;
  };
  if (!c.heads.empty()) s["heads"] = ablation(c.heads);
  if (!c.ffn.empty()) s["ffn_groups"] = ablation(c.ffn);
  if (!c.setdiff.is_null()) s["set_difference"] = c.setdiff;
  if (!c.deltas.empty()) {
    json d;
    std::map<std::string, double> delta;
    for (const auto& r : c.deltas) delta[gets(r, "tensor")] = get(r, "rel_delta");
    std::vector<double> a, b;
    for (const auto& t : c.tensors) {
      auto it = delta.find(gets(t, "tensor"));
      if (it == delta.end()) continue;
      a.push_back(get(t, "margin_drop"));
      b.push_back(it->second);
    }
    d["n"] = c.deltas.size();
    d["n_paired_with_sensitivity"] = a.size();
    d["spearman_delta_vs_margin_drop"] = nullable(spearman(a, b));
    std::vector<json> sorted = c.deltas;
    std::stable_sort(sorted.begin(), sorted.end(), [](const json& x, const json& y) { return get(x, "rel_delta") > get(y, "rel_delta"); });
    json t = json::array();
    for (size_t i = 0; i < sorted.size() && i < 10; ++i) t.push_back(sorted[i]);
    d["top_moved"] = t;
    if (!c.tensors.empty()) {
      const std::string crit = gets(c.tensors[0], "tensor");
      d["most_safety_sensitive_tensor"] = crit;
      for (size_t i = 0; i < sorted.size(); ++i)
        if (gets(sorted[i], "tensor") == crit) d["its_rank_by_delta"] = i + 1;
    }
    s["tensor_delta"] = d;
  }
  if (!c.skipped.empty()) s["skipped"] = c.skipped;
  return s;
}

// Layer x kind matrix of `key` over tensor rows (NaN where absent); rows = layers present.
HeatMapSpec layer_kind_map(const std::vector<json>& rows, const char* key, const std::string& title, bool high_is_bad) {
  HeatMapSpec h;
  h.title = title;
  int64_t max_layer = -1;
  for (const auto& r : rows) max_layer = std::max<int64_t>(max_layer, r.value("layer", int64_t(-1)));
  h.col_labels = kKinds;
  for (int64_t l = 0; l <= max_layer; ++l) h.row_labels.push_back("layer " + std::to_string(l));
  h.values.assign(static_cast<size_t>((max_layer + 1) * static_cast<int64_t>(kKinds.size())), std::nan(""));
  double lo = 0, hi = 0;
  for (const auto& r : rows) {
    const int64_t l = r.value("layer", int64_t(-1));
    const auto k = std::find(kKinds.begin(), kKinds.end(), gets(r, "kind"));
    if (l < 0 || k == kKinds.end()) continue;
    const double v = get(r, key);
    h.values[static_cast<size_t>(l * static_cast<int64_t>(kKinds.size()) + (k - kKinds.begin()))] = v;
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  h.lo = lo;
  h.hi = hi > lo ? hi : lo + 1;
  h.high_is_bad = high_is_bad;
  return h;
}

std::string md_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::string s = "|";
  for (const auto& h : head) s += " " + h + " |";
  s += "\n|";
  for (size_t i = 0; i < head.size(); ++i) s += "---|";
  s += "\n";
  for (const auto& r : rows) {
    s += "|";
    for (const auto& x : r) s += " " + x + " |";
    s += "\n";
  }
  return s;
}

std::string html_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::string s = "<table><thead><tr>";
  for (const auto& h : head) s += "<th>" + html_escape_text(h) + "</th>";
  s += "</tr></thead><tbody>";
  for (const auto& r : rows) {
    s += "<tr>";
    for (const auto& x : r) s += "<td>" + html_escape_text(x) + "</td>";
    s += "</tr>";
  }
  return s + "</tbody></table>";
}

std::vector<std::vector<std::string>> tensor_rows(const std::vector<json>& rows, size_t n) {
  std::vector<std::vector<std::string>> out;
  for (size_t i = 0; i < rows.size() && i < n; ++i) {
    const json& r = rows[i];
    out.push_back({std::to_string(i + 1), gets(r, "tensor"), num(get(r, "margin_drop")), num(get(r, "refusal_drop")),
                   num(get(r, "over_refusal_rise")), num(get(r, "kld"), 4), num(get(r, "ppl_ratio")),
                   r.contains("restore_margin_gain") && !r["restore_margin_gain"].is_null() ? num(get(r, "restore_margin_gain")) : "-"});
  }
  return out;
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error(path + ": cannot write");
  f << text;
  f.close();
  if (!f) return io_error(path + ": write failed");
  return ok_status();
}

}  // namespace

Result<std::vector<json>> read_attribution_log(const std::string& dir) {
  const std::string path = dir + "/" + kRunLogFile;
  std::ifstream f(path, std::ios::binary);
  std::vector<json> out;
  if (!f) return out;
  std::stringstream buf;
  buf << f.rdbuf();
  const std::string text = buf.str();
  size_t pos = 0;
  int64_t line = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    ++line;
    if (nl == std::string::npos) break;  // torn last line: an interrupted write, ignored
    const std::string l = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (l.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(l, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("entry_type"))
      return corrupt(path, pos - l.size() - 1, "line " + std::to_string(line), "a JSON object with entry_type", l.substr(0, 60));
    out.push_back(std::move(j));
  }
  return out;
}

Result<AttributionReportPaths> render_attribution_report(const std::string& dir) {
  SS_ASSIGN_OR_RETURN(auto lines, read_attribution_log(dir));
  if (lines.empty()) return not_found(dir + "/" + kRunLogFile + ": no attribution log to render");
  const Collected c = collect(lines);
  const json summary = build_summary(c);
  AttributionReportPaths paths{dir + "/summary.json", dir + "/report.md", dir + "/report.html"};
  SS_RETURN_IF_ERROR(write_text(paths.summary_json, summary.dump(2) + "\n"));

  const std::vector<std::string> thead = {"#", "tensor", "margin drop", "refusal drop", "over-refusal rise", "KLD",
                                          "ppl ratio", "restore gain"};
  std::string md = "# Attribution report\n\n";
  std::string html = "<h1>Attribution report</h1>";
  auto both = [&](const std::string& m, const std::string& h) {
    md += m;
    html += h;
  };
  {
    std::string p = "Prompts: " + gets(c.probe, "prompts") + " (split " + gets(c.probe, "split") + "), " +
                    std::to_string(c.probe.value("n_harmful", 0)) + " harmful, " + std::to_string(c.probe.value("n_benign", 0)) +
                    " benign, " + std::to_string(c.probe.value("n_neutral_tokens", 0)) +
                    " neutral tokens. Scores by the margin judge (no generation): margin = log p(refusal openings) - "
                    "log p(compliance openings); refused = margin > 0.";
    both(p + "\n\n", "<p>" + html_escape_text(p) + "</p>");
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : c.baselines)
      rows.push_back({k, gets(v, "spec"), num(get(v, "mean_margin_harmful")), num(get(v, "refusal_rate")),
                      num(get(v, "over_refusal_rate")), num(get(v, "neutral_kld"), 4), num(get(v, "neutral_ppl"), 2)});
    const std::vector<std::string> bh = {"model", "spec", "mean harmful margin", "refusal rate", "over-refusal rate",
                                         "neutral KLD", "neutral ppl"};
    both("## Baselines\n\n" + md_table(bh, rows) + "\n", "<h2>Baselines</h2>" + html_table(bh, rows));
  }
  if (!c.tensors.empty()) {
    const std::string spec = gets(c.tensors[0], "spec");
    const std::string intro = "Each tensor compressed alone with " + spec +
                              " (everything else original). Safety sensitivity = drop of the mean harmful margin; "
                              "quality sensitivity = KLD on neutral text. Restore gain = the whole model compressed "
                              "except this tensor, minus the whole model compressed.";
    auto rows = tensor_rows(c.tensors, 25);
    both("## Tensor sensitivity (" + spec + ")\n\n" + intro + "\n\n" + md_table(thead, rows) + "\n",
         "<h2>Tensor sensitivity (" + html_escape_text(spec) + ")</h2><p>" + html_escape_text(intro) + "</p>" +
             svg_heat_map(layer_kind_map(c.tensors, "margin_drop", "safety: margin drop, layer x tensor kind", true)) +
             svg_heat_map(layer_kind_map(c.tensors, "kld", "quality: KLD on neutral text, layer x tensor kind", true)) +
             html_table(thead, rows));
    std::vector<json> by_q = c.tensors;
    std::stable_sort(by_q.begin(), by_q.end(), [](const json& a, const json& b) { return get(a, "kld") > get(b, "kld"); });
    auto qrows = tensor_rows(by_q, 10);
    const std::string rho = "Spearman rank correlation of safety and quality sensitivity: " +
                            num(summary.value("spearman_safety_vs_quality", json(nullptr)).is_number()
                                    ? summary["spearman_safety_vs_quality"].get<double>() : std::nan(""));
    both("### Ranked by quality sensitivity\n\n" + md_table(thead, qrows) + "\n" + rho + "\n\n",
         "<h3>Ranked by quality sensitivity</h3>" + html_table(thead, qrows) + "<p>" + html_escape_text(rho) + "</p>");
  }
  if (!c.layers.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : c.layers)
      rows.push_back({std::to_string(r.value("layer", -1)), num(get(r, "margin_drop")), num(get(r, "refusal_drop")),
                      num(get(r, "kld"), 4), num(get(r, "ppl_ratio"))});
    const std::vector<std::string> lh = {"layer", "margin drop", "refusal drop", "KLD", "ppl ratio"};
    both("## Layer sensitivity (all tensors of one block)\n\n" + md_table(lh, rows) + "\n",
         "<h2>Layer sensitivity</h2>" + html_table(lh, rows));
  }
  if (!c.confirms.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : c.confirms) {
      std::string ts;
      for (const auto& t : r.value("tensors", json::array())) ts += (ts.empty() ? "" : ", ") + t.get<std::string>();
      rows.push_back({gets(r, "what"), ts.empty() ? "-" : ts, num(get(r, "refusal_rate_generated")),
                      std::to_string(r.value("n", 0))});
    }
    const std::vector<std::string> ch = {"compressed", "tensors", "refusal rate (generated, keyword judge)", "n"};
    both("## Confirmation by generation\n\n" + md_table(ch, rows) + "\n",
         "<h2>Confirmation by generation</h2>" + html_table(ch, rows));
  }
  if (!c.flip.is_null()) {
    std::string ts;
    for (const auto& t : c.flip.value("tensors", json::array())) ts += (ts.empty() ? "" : ", ") + t.get<std::string>();
    const std::string p = "Divergences (original refuses by margin, compressed does not): " +
                          std::to_string(c.flip.value("divergences_before", 0)) + " -> " +
                          std::to_string(c.flip.value("divergences_after", 0)) + " after restoring " +
                          std::to_string(c.flip.value("tensors", json::array()).size()) + " tensor(s) [" + ts +
                          "]; bits/weight " + num(get(c.flip, "compressed_bits_per_weight")) + " -> " +
                          num(get(c.flip, "restored_bits_per_weight")) + "; mean margin recovered " +
                          num(get(c.flip, "margin_recovered")) + ".";
    both("## Flip bisection\n\n" + p + "\n\n", "<h2>Flip bisection</h2><p>" + html_escape_text(p) + "</p>");
  }
  auto ablation_section = [&](const std::vector<json>& rows, const std::string& title, bool heads) {
    if (rows.empty()) return;
    int64_t max_l = 0, max_c = 0;
    for (const auto& r : rows) {
      max_l = std::max<int64_t>(max_l, r.value("layer", int64_t(0)));
      max_c = std::max<int64_t>(max_c, heads ? r.value("head", int64_t(0)) : r.value("begin", int64_t(0)));
    }
    std::vector<int64_t> cols;
    for (const auto& r : rows) cols.push_back(heads ? r.value("head", int64_t(0)) : r.value("begin", int64_t(0)));
    std::sort(cols.begin(), cols.end());
    cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
    HeatMapSpec h;
    h.title = title + ": margin drop (layer x " + (heads ? "head" : "group start") + ")";
    for (int64_t l = 0; l <= max_l; ++l) h.row_labels.push_back("layer " + std::to_string(l));
    for (int64_t c2 : cols) h.col_labels.push_back((heads ? "h" : "") + std::to_string(c2));
    h.values.assign(static_cast<size_t>((max_l + 1) * static_cast<int64_t>(cols.size())), std::nan(""));
    double lo = 0, hi = 0;
    for (const auto& r : rows) {
      const int64_t l = r.value("layer", int64_t(0));
      const int64_t key = heads ? r.value("head", int64_t(0)) : r.value("begin", int64_t(0));
      const size_t ci = static_cast<size_t>(std::lower_bound(cols.begin(), cols.end(), key) - cols.begin());
      const double v = get(r, "margin_drop");
      h.values[static_cast<size_t>(l) * cols.size() + ci] = v;
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    h.lo = lo;
    h.hi = hi > lo ? hi : lo + 1;
    std::vector<json> sorted = rows;
    std::stable_sort(sorted.begin(), sorted.end(), [](const json& a, const json& b) { return get(a, "margin_drop") > get(b, "margin_drop"); });
    std::vector<std::vector<std::string>> trs;
    for (size_t i = 0; i < sorted.size() && i < 10; ++i)
      trs.push_back({std::to_string(sorted[i].value("layer", 0)),
                     heads ? std::to_string(sorted[i].value("head", 0))
                           : std::to_string(sorted[i].value("begin", 0)) + "-" + std::to_string(sorted[i].value("end", 0)),
                     num(get(sorted[i], "margin_drop")), num(get(sorted[i], "refusal_drop")),
                     sorted[i].value("safety_critical", false) ? "yes" : "no"});
    const std::vector<std::string> hh = {"layer", heads ? "head" : "channels", "margin drop", "refusal drop", "safety-critical"};
    both("## " + title + "\n\n" + md_table(hh, trs) + "\n", "<h2>" + html_escape_text(title) + "</h2>" + svg_heat_map(h) + html_table(hh, trs));
  };
  ablation_section(c.heads, "Head ablation", true);
  ablation_section(c.ffn, "FFN group ablation", false);
  if (!c.setdiff.is_null()) {
    const json& s = c.setdiff;
    const std::string p = "Set difference (Wei et al. 2024), q = " + num(get(s, "q")) + ", p = " + num(get(s, "p")) + ": " +
                          std::to_string(s.value("n_selected", 0)) + " weights selected. Zeroing them: refusal drop " +
                          num(get(s, "refusal_drop_selected")) + ", margin drop " + num(get(s, "margin_drop_selected")) +
                          "; zeroing as many random weights (" + std::to_string(s.value("n_random", 0)) +
                          " draws): refusal drop " + num(get(s, "refusal_drop_random_mean")) + " [" +
                          num(get(s, "refusal_drop_random_lo")) + ", " + num(get(s, "refusal_drop_random_hi")) +
                          "], margin drop " + num(get(s, "margin_drop_random_mean")) + ".";
    BarChartSpec b;
    b.title = "refusal drop: set-difference weights vs random weights (interval over draws)";
    b.categories = {"selected", "random"};
    ChartSeries cs;
    cs.name = "refusal drop";
    cs.x = {0, 1};
    cs.y = {get(s, "refusal_drop_selected"), get(s, "refusal_drop_random_mean")};
    cs.lo = {get(s, "refusal_drop_selected"), get(s, "refusal_drop_random_lo")};
    cs.hi = {get(s, "refusal_drop_selected"), get(s, "refusal_drop_random_hi")};
    b.series = {cs};
    both("## Set difference vs random\n\n" + p + "\n\n", "<h2>Set difference vs random</h2><p>" + html_escape_text(p) + "</p>" + svg_bar_chart(b));
  }
  if (!c.deltas.empty()) {
    const json& d = summary["tensor_delta"];
    std::string p = "Relative change ||aligned - base|| / ||base|| per tensor (the safety fine-tune). Spearman rank "
                    "correlation with the margin drop: " +
                    num(d.value("spearman_delta_vs_margin_drop", json(nullptr)).is_number() ? d["spearman_delta_vs_margin_drop"].get<double>() : std::nan("")) +
                    " over " + std::to_string(d.value("n_paired_with_sensitivity", 0)) + " tensors.";
    if (d.contains("its_rank_by_delta"))
      p += " The most safety-sensitive tensor (" + d.value("most_safety_sensitive_tensor", std::string()) + ") ranks " +
           std::to_string(d["its_rank_by_delta"].get<int64_t>()) + " of " + std::to_string(d.value("n", 0)) + " by delta.";
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : d["top_moved"]) rows.push_back({gets(r, "tensor"), num(get(r, "rel_delta"), 4)});
    const std::vector<std::string> dh = {"tensor (most moved first)", "relative delta"};
    both("## Tensor delta (base -> aligned) vs sensitivity\n\n" + p + "\n\n" + md_table(dh, rows) + "\n",
         "<h2>Tensor delta vs sensitivity</h2><p>" + html_escape_text(p) + "</p>" +
             svg_heat_map(layer_kind_map(c.deltas, "rel_delta", "relative delta base -> aligned, layer x tensor kind", true)) +
             html_table(dh, rows));
  }
  if (!c.skipped.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : c.skipped) rows.push_back({gets(s, "section"), gets(s, "reason")});
    both("## Skipped sections\n\n" + md_table({"section", "reason"}, rows) + "\n",
         "<h2>Skipped sections</h2>" + html_table({"section", "reason"}, rows));
  }
  SS_RETURN_IF_ERROR(write_text(paths.report_md, md));
  SS_RETURN_IF_ERROR(write_text(paths.report_html, html_page("safeshrink attribution report", html)));
  return paths;
}

}  // namespace ss

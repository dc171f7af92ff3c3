// Safety-aware quantization: the plain spec everywhere, except that the tensors whose compression
// hurts safety most are raised to a higher-precision spec, within an average bits-per-weight budget
// (default: the plain plan's + 0.5). Method:
//   1. compress the whole store with the plain spec and with each upgrade spec of
//      safety_upgrade_specs() (cheapest first; e.g. int2-g32 -> int3-g32, int4-g32, int8-g32, fp16);
//   2. per tensor, its safety value from CompressContext::safety_sensitivity(plain spec): by default
//      ("restore") the mean harmful margin regained when only this tensor is restored in the fully
//      compressed model; "drop": the margin lost when only this tensor is compressed; "sum": both;
//   3. a level's expected recovery of that value = value x (1 - e_L / e_0), e = squared weight error
//      of the tensor at that level (from the compressed tensors themselves): what a level buys is
//      how much of the plain spec's weight error it removes;
//   4. greedy on marginal recovery per extra bit: repeatedly the (tensor, higher level) with the
//      largest gain / extra bits that still fits the budget; stop when nothing fits or gains are 0.
// The budget is over the same weights the plan's bits_per_weight counts (every weight matrix), so
// the plan never exceeds it. Not here: the sensitivity scores (eval/attribution), the spec grammar
// (compress_variant.cpp). To add a family of upgrade levels: one branch in safety_upgrade_specs().
#include "compress/safety_aware.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "safeshrink/kernels.h"

namespace ss {
namespace {

std::vector<std::string> split_dash(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t d = s.find('-', start);
    parts.push_back(s.substr(start, d == std::string::npos ? std::string::npos : d - start));
    if (d == std::string::npos) break;
    start = d + 1;
  }
  return parts;
}

std::string join_dash(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : "-") + p;
  return s;
}

Result<double> squared_error(const Tensor& original, const Tensor& q) {
  SS_ASSIGN_OR_RETURN(auto a, kernels::dequantize(original));
  SS_ASSIGN_OR_RETURN(auto b, kernels::dequantize(q));
  if (a.size() != b.size()) return internal_error("safety-aware: " + original.name + " changed size");
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    e += d * d;
  }
  return e;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::vector<std::string> safety_upgrade_specs(const std::string& plain_spec) {
  std::vector<std::string> parts = split_dash(plain_spec);
  if (parts.empty()) return {};
  const std::string& head = parts[0];
  std::vector<std::string> out;
  auto int_levels = [&](const std::string& prefix, int bits, const std::vector<int>& all, bool add_group) {
    std::vector<std::string> rest(parts.begin() + (prefix == "int" ? 1 : 2), parts.end());
    const bool has_group = std::any_of(rest.begin(), rest.end(), [](const std::string& t) {
      return t == "pc" || (t.size() > 1 && t[0] == 'g' && std::isdigit(static_cast<unsigned char>(t[1])));
    });
    if (!has_group && add_group) rest.insert(rest.begin(), "g128");  // int2/3/4's default group, kept at 8 bits
    for (int b : all) {
      if (b <= bits) continue;
      std::vector<std::string> p = {prefix == "int" ? "int" + std::to_string(b) : prefix, };
      if (prefix != "int") p.push_back(std::to_string(b));
      p.insert(p.end(), rest.begin(), rest.end());
      out.push_back(join_dash(p));
    }
  };
  if (head.size() == 4 && head.rfind("int", 0) == 0 && std::isdigit(static_cast<unsigned char>(head[3]))) {
    const int bits = head[3] - '0';
    int_levels("int", bits, {3, 4, 8}, bits != 8);
    out.push_back("fp16");
  } else if (head == "gptq" && parts.size() >= 2 && !parts[1].empty() && std::isdigit(static_cast<unsigned char>(parts[1][0]))) {
    int_levels("gptq", std::stoi(parts[1]), {3, 4, 8}, false);
    out.push_back("fp16");
  } else {
    static const std::vector<std::pair<std::string, double>> gguf = {
        {"q2_k", 2.6}, {"q3_k_s", 3.4}, {"q3_k", 3.9},  {"q3_k_m", 3.9}, {"q3_k_l", 4.3}, {"q4_0", 4.5},
        {"q4_1", 5.0}, {"q4_k_s", 4.6}, {"q4_k", 4.9},  {"q4_k_m", 4.9}, {"q5_0", 5.5},  {"q5_1", 6.0},
        {"q5_k_s", 5.5}, {"q5_k", 5.7}, {"q5_k_m", 5.7}, {"q6_k", 6.6}, {"q8_0", 8.5}};
    static const std::vector<std::pair<std::string, double>> ladder = {
        {"q3_k_m", 3.9}, {"q4_k_m", 4.9}, {"q5_k_m", 5.7}, {"q6_k", 6.6}, {"q8_0", 8.5}};
    double bits = -1;
    for (const auto& [name, b] : gguf)
      if (head == name || plain_spec == name || plain_spec.rfind(name + "-", 0) == 0) bits = std::max(bits, b);
    if (bits < 0) return {};
    for (const auto& [name, b] : ladder)
      if (b > bits) out.push_back(name);
    out.push_back("fp16");
  }
  return out;
}

Result<CompressOutput> compress_safety_aware(const TensorStore& in, const std::string& plain_spec,
                                             const CompressContext& ctx, const nlohmann::json& overrides,
                                             double budget_bits, const std::string& rank) {
  if (rank != "restore" && rank != "drop" && rank != "sum")
    return invalid_argument("safety-aware: rank must be restore|drop|sum, got '" + rank + "'");
  if (!ctx.safety_sensitivity)
    return invalid_argument("spec '" + plain_spec +
                            "-safety': a safety-aware plan needs the model's safety sensitivity (CompressContext::"
                            "safety_sensitivity; the CLI wires it with --safety-aware / in the audit)");
  const std::vector<std::string> upgrades = safety_upgrade_specs(plain_spec);
  if (upgrades.empty())
    return invalid_argument("safety-aware: no higher-precision levels known for '" + plain_spec +
                            "' (int2/3/4/8, gptq-N and the GGUF types/presets have them)");
  CompressContext plain_ctx = ctx;
  plain_ctx.safety_sensitivity = nullptr;
  plain_ctx.safety_critical = nullptr;

  // 1. The plain plan and every level.
  std::vector<CompressOutput> levels;
  std::vector<std::string> level_specs = {plain_spec};
  {
    auto plain = compress_variant(in, plain_spec, plain_ctx, overrides);
    if (!plain.ok()) return plain.status().with_context("safety-aware: plain spec " + plain_spec);
    levels.push_back(std::move(plain).value());
  }
  // "keep" overrides apply to every level (a kept tensor stays as it is at any level).
  nlohmann::json level_overrides = nlohmann::json::object();
  if (overrides.is_object() && overrides.contains("keep")) level_overrides["keep"] = overrides["keep"];
  for (const auto& spec : upgrades) {
    auto out = compress_variant(in, spec, plain_ctx, level_overrides);
    if (!out.ok()) return out.status().with_context("safety-aware: upgrade level " + spec);
    levels.push_back(std::move(out).value());
    level_specs.push_back(spec);
  }
  const double plain_bits = levels[0].plan.bits_per_weight;
  const double budget = budget_bits > 0 ? budget_bits : plain_bits + 0.5;
  if (budget + 1e-12 < plain_bits)
    return invalid_argument("safety-aware: budget " + fmt("%.4g", budget) + " bits/weight is below the plain plan's " +
                            fmt("%.4g", plain_bits));

  // 2. Safety values.
  SS_ASSIGN_OR_RETURN(std::shared_ptr<const SafetySensitivity> sens, ctx.safety_sensitivity(plain_spec));
  std::map<std::string, double> value;
  std::map<std::string, int> rank_of;
  std::map<std::string, const TensorSafetySensitivity*> row_of;
  {
    std::vector<std::pair<double, std::string>> order;
    for (const auto& t : sens->tensors) {
      double v = rank == "restore" ? t.restore_margin_gain
                 : rank == "drop"  ? t.margin_drop
                                   : t.restore_margin_gain + t.margin_drop;
      v = std::max(0.0, v);
      value[t.tensor] = v;
      row_of[t.tensor] = &t;
      order.push_back({-v, t.tensor});
    }
    std::sort(order.begin(), order.end());
    for (size_t i = 0; i < order.size(); ++i) rank_of[order[i].second] = static_cast<int>(i + 1);
  }

  // 3. Per candidate tensor: bits and squared error at each level.
  struct Candidate {
    size_t entry = 0;
    double numel = 0;
    std::vector<double> bits, err;  // per level (level 0 = plain)
    std::vector<bool> usable;
    size_t level = 0;
  };
  std::vector<Candidate> cands;
  double weights = 0, bits_sum = 0;
  const auto& plain_entries = levels[0].plan.entries;
  for (size_t i = 0; i < plain_entries.size(); ++i) {
    const PlanEntry& e = plain_entries[i];
    const Tensor* t = in.find(e.tensor);
    if (!t || !quant_is_weight_matrix(*t)) continue;
    const double n = static_cast<double>(t->numel());
    weights += n;
    bits_sum += e.bits_per_weight * n;
    if (e.to_type == e.from_type || !value.count(e.tensor)) continue;  // kept, or not scored
    Candidate c;
    c.entry = i;
    c.numel = n;
    for (size_t L = 0; L < levels.size(); ++L) {
      const PlanEntry& le = levels[L].plan.entries[i];
      const Tensor* q = levels[L].store.find(e.tensor);
      if (le.tensor != e.tensor || !q) return internal_error("safety-aware: plans of the levels differ at " + e.tensor);
      c.bits.push_back(le.bits_per_weight);
      SS_ASSIGN_OR_RETURN(double err, squared_error(*t, *q));
      c.err.push_back(err);
      c.usable.push_back(L == 0 || (le.bits_per_weight > e.bits_per_weight && le.to_type != le.from_type) ||
                         (level_specs[L] == "fp16" && le.bits_per_weight > e.bits_per_weight));
    }
    cands.push_back(std::move(c));
  }
  auto recovered = [&](const Candidate& c, size_t L) {
    const double v = value[plain_entries[c.entry].tensor];
    if (L == 0 || c.err[0] <= 0) return 0.0;
    return v * std::clamp(1.0 - c.err[L] / c.err[0], 0.0, 1.0);
  };

  // 4. Greedy by marginal recovery per extra bit.
  const double allowed = budget * weights;
  for (;;) {
    double best_ratio = 0;
    size_t best_c = 0, best_l = 0;
    for (size_t k = 0; k < cands.size(); ++k) {
      const Candidate& c = cands[k];
      for (size_t L = c.level + 1; L < levels.size(); ++L) {
        if (!c.usable[L]) continue;
        const double extra = (c.bits[L] - c.bits[c.level]) * c.numel;
        if (extra <= 0 || bits_sum + extra > allowed + 1e-9 * allowed) continue;
        const double gain = recovered(c, L) - recovered(c, c.level);
        const double ratio = gain / extra;
        if (ratio > best_ratio) {
          best_ratio = ratio;
          best_c = k;
          best_l = L;
        }
      }
    }
    if (best_ratio <= 0) break;
    Candidate& c = cands[best_c];
    bits_sum += (c.bits[best_l] - c.bits[c.level]) * c.numel;
    c.level = best_l;
  }

  // The result: plain store and plan, the raised tensors swapped in.
  CompressOutput out;
  out.store.format = levels[0].store.format;
  out.store.path = levels[0].store.path;
  out.store.meta = levels[0].store.meta;
  out.plan = levels[0].plan;
  std::map<std::string, size_t> raised;  // tensor -> level
  for (const Candidate& c : cands) {
    const std::string& name = plain_entries[c.entry].tensor;
    const TensorSafetySensitivity* row = row_of[name];
    PlanEntry& e = out.plan.entries[c.entry];
    std::string why = "safety rank " + std::to_string(rank_of[name]) + ": margin drop " + fmt("%.3g", row->margin_drop) +
                      ", restore gain " + fmt("%.3g", row->restore_margin_gain);
    if (c.level > 0) {
      raised[name] = c.level;
      e = levels[c.level].plan.entries[c.entry];
      e.reason = why + "; raised " + plain_spec + " -> " + level_specs[c.level] + " (" + levels[c.level].plan.entries[c.entry].reason + ")";
    } else {
      e.reason += "; " + why + "; kept at " + plain_spec;
    }
  }
  for (const Tensor& t : levels[0].store.tensors) {
    auto it = raised.find(t.name);
    const Tensor* src = it == raised.end() ? &t : levels[it->second].store.find(t.name);
    SS_RETURN_IF_ERROR(out.store.add(*src));
  }
  double check_bits = 0;
  for (size_t i = 0; i < out.plan.entries.size(); ++i) {
    const Tensor* t = in.find(out.plan.entries[i].tensor);
    if (t && quant_is_weight_matrix(*t)) check_bits += out.plan.entries[i].bits_per_weight * static_cast<double>(t->numel());
  }
  out.plan.bits_per_weight = weights > 0 ? check_bits / weights : 0.0;
  out.plan.method = levels[0].plan.method + "-safety";
  nlohmann::json params = levels[0].plan.params;
  params["plain_spec"] = plain_spec;
  params["budget_bits"] = budget;
  params["plain_bits_per_weight"] = plain_bits;
  params["levels"] = std::vector<std::string>(level_specs.begin() + 1, level_specs.end());
  params["rank"] = rank;
  params["n_raised"] = raised.size();
  params["sensitivity_probe"] = sens->probe;
  out.plan.params = params;
  return out;
}

}  // namespace ss

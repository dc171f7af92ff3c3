// compress_variant(): the spec grammar of docs/compression.md. A spec is a registered unit name
// (quantizer_registry() or pruner_registry(); the longest dash-joined prefix that names a unit, so
// "global-magnitude-50" finds "global-magnitude") followed by dash-separated parameters:
//   <number>  quantizers: bits ("gptq-4"); pruners: sparsity/fraction in percent ("wanda-50"), or
//             count when the unit takes a count ("layers-2")
//   g<N>      group_size N ("int4-g128");  pc: per channel (group_size -1)
//   sym/asym  symmetric or asymmetric grid;  pure: one type for every matrix (GGUF presets)
//   N:M       alone: the "nm" pruner with n and m ("2:4")
//   safety    last token: the safety-aware variant of the spec before it ("int2-g32-safety",
//             "q2_k-safety", "wanda-50-safety"; see compress/safety_aware.cpp and docs/attribution.md)
// then `overrides` (CLI flags) replace any parameter. Every parameter must be one the unit
// declares: an unknown one is an INVALID_ARGUMENT naming it. Not here: the units (quant/, prune/).
// To add a token: one branch in apply_token().
#include <cctype>
#include <string>
#include <vector>

#include "compress/safety_aware.h"
#include "safeshrink/compress.h"

namespace ss {
namespace {

std::vector<std::string> split_dash(std::string_view s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t d = s.find('-', start);
    parts.emplace_back(s.substr(start, d == std::string_view::npos ? std::string_view::npos : d - start));
    if (d == std::string_view::npos) break;
    start = d + 1;
  }
  return parts;
}

const CompressorInfo* find_unit(const std::string& name) {
  for (const auto& u : quantizer_registry())
    if (u.name == name) return &u;
  for (const auto& u : pruner_registry())
    if (u.name == name) return &u;
  return nullptr;
}

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  bool dot = false;
  for (char c : s) {
    if (c == '.' && !dot) dot = true;
    else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Status apply_token(const CompressorInfo& unit, const std::string& tok, nlohmann::json& params) {
  auto has = [&](const char* key) { return unit.params.contains(key); };
  if (is_number(tok)) {
    const double v = std::stod(tok);
    if (unit.kind == "quantizer" && has("bits")) params["bits"] = static_cast<int>(v);
    else if (has("sparsity")) params["sparsity"] = v / 100.0;
    else if (has("fraction")) params["fraction"] = v / 100.0;
    else if (has("count")) params["count"] = static_cast<int64_t>(v);
    else return invalid_argument(unit.name + ": takes no number (got '" + tok + "')");
    return ok_status();
  }
  if (tok.size() > 1 && tok[0] == 'g' && is_number(tok.substr(1)) && has("group_size")) {
    params["group_size"] = std::stoll(tok.substr(1));
    return ok_status();
  }
  if (tok == "pc" && has("group_size")) {
    params["group_size"] = -1;
    return ok_status();
  }
  if ((tok == "sym" || tok == "asym") && has("sym")) {
    params["sym"] = tok == "sym";
    return ok_status();
  }
  if (tok == "pure" && has("pure")) {
    params["pure"] = true;
    return ok_status();
  }
  return invalid_argument(unit.name + ": unknown spec part '" + tok + "'");
}

}  // namespace

Result<CompressOutput> compress_variant(const TensorStore& in, std::string_view spec, const CompressContext& ctx,
                                        const nlohmann::json& overrides) {
  if (spec.empty()) return invalid_argument("empty compression spec");
  std::string lower(spec);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));

  // "<plain spec>-safety": a quantizer gets a safety-aware plan (safety_aware.cpp; overrides may
  // hold budget_bits and rank, the rest goes to the unit); a pruner gets {"protect": "safety"}.
  const std::string kSafety = "-safety";
  if (lower.size() > kSafety.size() && lower.compare(lower.size() - kSafety.size(), kSafety.size(), kSafety) == 0) {
    const std::string plain = lower.substr(0, lower.size() - kSafety.size());
    nlohmann::json unit_overrides = overrides.is_object() ? overrides : nlohmann::json::object();
    double budget = 0;
    std::string rank = "restore";
    try {
      if (unit_overrides.contains("budget_bits")) {
        budget = unit_overrides["budget_bits"].get<double>();
        if (!(budget > 0)) return invalid_argument(lower + ": budget_bits must be > 0");
        unit_overrides.erase("budget_bits");
      }
      if (unit_overrides.contains("rank")) {
        rank = unit_overrides["rank"].get<std::string>();
        unit_overrides.erase("rank");
      }
    } catch (const nlohmann::json::exception& e) {
      return invalid_argument(lower + ": budget_bits must be a number and rank a string (" + e.what() + ")");
    }
    bool pruner = plain.find(':') != std::string::npos;
    for (const auto& u : pruner_registry())
      if (plain == u.name || plain.rfind(u.name + "-", 0) == 0) pruner = true;
    for (const auto& u : quantizer_registry())
      if (plain == u.name || plain.rfind(u.name + "-", 0) == 0) pruner = false;
    if (pruner) {
      if (budget > 0) return invalid_argument(lower + ": budget_bits applies to quantizers only");
      unit_overrides["protect"] = "safety";
      return compress_variant(in, plain, ctx, unit_overrides);
    }
    return compress_safety_aware(in, plain, ctx, unit_overrides, budget, rank);
  }

  const CompressorInfo* unit = nullptr;
  nlohmann::json params;
  std::vector<std::string> rest;
  const size_t colon = lower.find(':');
  if (colon != std::string::npos && lower.find('-') == std::string::npos && is_number(lower.substr(0, colon)) &&
      is_number(lower.substr(colon + 1))) {
    unit = find_unit("nm");
    if (unit == nullptr) return invalid_argument("spec '" + lower + "': no n:m pruner is registered");
    params = unit->params;
    params["n"] = std::stoi(lower.substr(0, colon));
    params["m"] = std::stoi(lower.substr(colon + 1));
  } else {
    const std::vector<std::string> parts = split_dash(lower);
    size_t used = 0;
    for (size_t k = parts.size(); k >= 1 && unit == nullptr; --k) {
      std::string name = parts[0];
      for (size_t i = 1; i < k; ++i) name += "-" + parts[i];
      unit = find_unit(name);
      used = k;
    }
    if (unit == nullptr) return invalid_argument("unknown compression method '" + lower + "' (see safeshrink list quantizers|pruners)");
    params = unit->params;
    rest.assign(parts.begin() + static_cast<std::ptrdiff_t>(used), parts.end());
  }
  if (!params.is_object()) params = nlohmann::json::object();
  for (const std::string& tok : rest) SS_RETURN_IF_ERROR(apply_token(*unit, tok, params));
  if (!overrides.is_null()) {
    if (!overrides.is_object()) return invalid_argument("compression overrides must be a JSON object");
    for (const auto& [key, value] : overrides.items()) {
      if (!unit->params.contains(key))
        return invalid_argument(unit->name + ": unknown parameter '" + key + "' (has: " + unit->params.dump() + ")");
      params[key] = value;
    }
  }
  if (!unit->run) return internal_error(unit->name + ": registered without a run function");
  return unit->run(in, params, ctx);
}

}  // namespace ss

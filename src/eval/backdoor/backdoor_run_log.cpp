// The backdoor study's run log entries (backdoor_variant, fine_prune, fine_prune_ranking; the
// shapes are listed in include/safeshrink/backdoor.h) and their reader. Lines are written with the
// audit's RunLogWriter (run_log.h), so the file format and torn-line rule are the same; the reader
// here skips the audit's entry types as the audit's reader skips these. Not the statistics (they are
// computed once, in backdoor_counts, and stored) nor the rendering (backdoor_report.cpp).
// To add an entry type: a struct in backdoor.h, a to_json/from_json pair here, one branch in
// read_backdoor_log, and a line in the header comment.
#include <fstream>
#include <map>
#include <sstream>
#include <sys/stat.h>

#include "safeshrink/backdoor.h"
#include "safeshrink/run_log.h"

namespace ss {
namespace {

using json = nlohmann::json;

json counts_json(const BackdoorCounts& c, json j) {
  j["clean_correct"] = c.clean_correct;
  j["clean_n"] = c.clean_n;
  j["clean_accuracy"] = c.clean_accuracy();
  j["clean_ci"] = {c.clean_ci.lo, c.clean_ci.hi};
  j["asr_hits"] = c.asr_hits;
  j["asr_n"] = c.asr_n;
  j["asr"] = c.asr();
  j["asr_ci"] = {c.asr_ci.lo, c.asr_ci.hi};
  return j;
}

Status need(const json& j, const char* field, json::value_t type, const char* entry) {
  auto it = j.find(field);
  bool ok = it != j.end();
  if (ok) {
    if (type == json::value_t::number_float) ok = it->is_number();
    else if (type == json::value_t::number_integer) ok = it->is_number_integer();
    else ok = it->type() == type;
  }
  if (!ok) return invalid_argument(std::string(entry) + ": field " + field + " missing or of the wrong type");
  return ok_status();
}

Result<BackdoorCounts> counts_from_json(const json& j, const char* entry) {
  using vt = json::value_t;
  for (const char* f : {"clean_correct", "clean_n", "asr_hits", "asr_n"})
    SS_RETURN_IF_ERROR(need(j, f, vt::number_integer, entry));
  for (const char* f : {"clean_ci", "asr_ci"}) {
    SS_RETURN_IF_ERROR(need(j, f, vt::array, entry));
    if (j[f].size() != 2 || !j[f][0].is_number() || !j[f][1].is_number())
      return invalid_argument(std::string(entry) + ": field " + f + ": expected [lo, hi]");
  }
  BackdoorCounts c;
  c.clean_correct = j["clean_correct"].get<int64_t>();
  c.clean_n = j["clean_n"].get<int64_t>();
  c.asr_hits = j["asr_hits"].get<int64_t>();
  c.asr_n = j["asr_n"].get<int64_t>();
  c.clean_ci = {j["clean_ci"][0].get<double>(), j["clean_ci"][1].get<double>()};
  c.asr_ci = {j["asr_ci"][0].get<double>(), j["asr_ci"][1].get<double>()};
  return c;
}

Result<std::vector<int32_t>> predictions_from_json(const json& j, const char* field, const char* entry) {
  std::vector<int32_t> out;
  auto it = j.find(field);
  if (it == j.end()) return out;  // optional: a log written without the arrays cannot be recounted
  if (!it->is_array()) return invalid_argument(std::string(entry) + ": field " + field + ": expected an array");
  out.reserve(it->size());
  for (const auto& v : *it) {
    if (!v.is_number_integer()) return invalid_argument(std::string(entry) + ": field " + field + ": expected integers");
    out.push_back(v.get<int32_t>());
  }
  return out;
}

}  // namespace

json to_json(const BackdoorVariantEntry& e) {
  json j = {{"entry_type", kEntryBackdoorVariant}, {"variant", e.variant}, {"kind", e.kind}};
  j["bits_per_weight"] = e.bits_per_weight ? json(*e.bits_per_weight) : json(nullptr);
  j["sparsity"] = e.sparsity;
  j = counts_json(e.counts, std::move(j));
  j["threshold"] = e.threshold;
  j["survived"] = e.survived;
  j["seconds"] = e.seconds;
  j["plan"] = e.plan;
  j["student"] = e.student;
  j["clean_predictions"] = e.clean_predictions;
  j["triggered_predictions"] = e.triggered_predictions;
  return j;
}

json to_json(const FinePruneEntry& e) {
  json j = {{"entry_type", kEntryFinePrune}, {"fraction", e.fraction}, {"stage", e.stage}, {"layer", e.layer},
            {"pruned_channels", e.pruned_channels}};
  j = counts_json(e.counts, std::move(j));
  j["threshold"] = e.threshold;
  j["survived"] = e.survived;
  j["seconds"] = e.seconds;
  j["clean_predictions"] = e.clean_predictions;
  j["triggered_predictions"] = e.triggered_predictions;
  return j;
}

json to_json(const FinePruneRanking& e) {
  return {{"entry_type", kEntryFinePruneRanking}, {"layer", e.layer},        {"channels", e.channels},
          {"n_images", e.n_images},               {"mean_activation", e.mean_activation}, {"order", e.order}};
}

Result<BackdoorVariantEntry> backdoor_variant_from_json(const json& j) {
  using vt = json::value_t;
  const char* E = kEntryBackdoorVariant;
  SS_RETURN_IF_ERROR(need(j, "variant", vt::string, E));
  SS_RETURN_IF_ERROR(need(j, "kind", vt::string, E));
  SS_RETURN_IF_ERROR(need(j, "sparsity", vt::number_float, E));
  SS_RETURN_IF_ERROR(need(j, "threshold", vt::number_float, E));
  SS_RETURN_IF_ERROR(need(j, "survived", vt::boolean, E));
  BackdoorVariantEntry e;
  e.variant = j["variant"].get<std::string>();
  e.kind = j["kind"].get<std::string>();
  if (j.contains("bits_per_weight") && j["bits_per_weight"].is_number()) e.bits_per_weight = j["bits_per_weight"].get<double>();
  e.sparsity = j["sparsity"].get<double>();
  SS_ASSIGN_OR_RETURN(e.counts, counts_from_json(j, E));
  e.threshold = j["threshold"].get<double>();
  e.survived = j["survived"].get<bool>();
  e.seconds = j.value("seconds", 0.0);
  e.plan = j.value("plan", json());
  e.student = j.value("student", json());
  SS_ASSIGN_OR_RETURN(e.clean_predictions, predictions_from_json(j, "clean_predictions", E));
  SS_ASSIGN_OR_RETURN(e.triggered_predictions, predictions_from_json(j, "triggered_predictions", E));
  return e;
}

Result<FinePruneEntry> fine_prune_from_json(const json& j) {
  using vt = json::value_t;
  const char* E = kEntryFinePrune;
  SS_RETURN_IF_ERROR(need(j, "fraction", vt::number_float, E));
  SS_RETURN_IF_ERROR(need(j, "stage", vt::string, E));
  SS_RETURN_IF_ERROR(need(j, "layer", vt::string, E));
  SS_RETURN_IF_ERROR(need(j, "pruned_channels", vt::array, E));
  FinePruneEntry e;
  e.fraction = j["fraction"].get<double>();
  e.stage = j["stage"].get<std::string>();
  if (e.stage != "pruned" && e.stage != "fine_tuned")
    return invalid_argument(std::string(E) + ": field stage: expected pruned or fine_tuned, got '" + e.stage + "'");
  e.layer = j["layer"].get<std::string>();
  for (const auto& c : j["pruned_channels"]) {
    if (!c.is_number_integer()) return invalid_argument(std::string(E) + ": field pruned_channels: expected integers");
    e.pruned_channels.push_back(c.get<int64_t>());
  }
  SS_ASSIGN_OR_RETURN(e.counts, counts_from_json(j, E));
  e.threshold = j.value("threshold", 0.5);
  e.survived = j.value("survived", false);
  e.seconds = j.value("seconds", 0.0);
  SS_ASSIGN_OR_RETURN(e.clean_predictions, predictions_from_json(j, "clean_predictions", E));
  SS_ASSIGN_OR_RETURN(e.triggered_predictions, predictions_from_json(j, "triggered_predictions", E));
  return e;
}

Result<FinePruneRanking> fine_prune_ranking_from_json(const json& j) {
  using vt = json::value_t;
  const char* E = kEntryFinePruneRanking;
  SS_RETURN_IF_ERROR(need(j, "layer", vt::string, E));
  SS_RETURN_IF_ERROR(need(j, "channels", vt::number_integer, E));
  SS_RETURN_IF_ERROR(need(j, "mean_activation", vt::array, E));
  SS_RETURN_IF_ERROR(need(j, "order", vt::array, E));
  FinePruneRanking r;
  r.layer = j["layer"].get<std::string>();
  r.channels = j["channels"].get<int64_t>();
  r.n_images = j.value("n_images", int64_t{0});
  for (const auto& v : j["mean_activation"]) {
    if (!v.is_number()) return invalid_argument(std::string(E) + ": field mean_activation: expected numbers");
    r.mean_activation.push_back(v.get<double>());
  }
  for (const auto& v : j["order"]) {
    if (!v.is_number_integer()) return invalid_argument(std::string(E) + ": field order: expected integers");
    r.order.push_back(v.get<int64_t>());
  }
  return r;
}

Result<BackdoorLog> read_backdoor_log(const std::string& path) {
  std::string file = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/" + kRunLogFile;
  std::ifstream in(file, std::ios::binary);
  if (!in) return not_found(file + ": cannot open the run log");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  BackdoorLog log;
  std::map<std::string, size_t> variant_at;
  std::map<std::pair<double, std::string>, FinePruneEntry> fine;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    if (!complete) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (!complete) {
        log.torn_last_line = true;
        break;
      }
      return corrupt(file + ":" + std::to_string(line_no), 0, "run log line", "a JSON object", "malformed JSON");
    }
    ++log.n_lines;
    const std::string type = j.value("entry_type", std::string());
    auto ctx = [&](const Status& s) { return s.with_context(file + ":" + std::to_string(line_no)); };
    if (type == kEntryStartRun) {
      log.starts.push_back(j);
    } else if (type == kEntryBackdoorVariant) {
      auto e = backdoor_variant_from_json(j);
      if (!e.ok()) return ctx(e.status());
      auto it = variant_at.find(e->variant);
      if (it == variant_at.end()) {
        variant_at[e->variant] = log.variants.size();
        log.variants.push_back(std::move(*e));
      } else {
        log.variants[it->second] = std::move(*e);
      }
    } else if (type == kEntryFinePrune) {
      auto e = fine_prune_from_json(j);
      if (!e.ok()) return ctx(e.status());
      fine[{e->fraction, e->stage == "pruned" ? "0" : "1"}] = std::move(*e);
    } else if (type == kEntryFinePruneRanking) {
      auto r = fine_prune_ranking_from_json(j);
      if (!r.ok()) return ctx(r.status());
      log.ranking = std::move(*r);
    } else if (type == kEntryEndRun) {
      log.ended = true;
    }
  }
  for (auto& [key, e] : fine) log.fine_prune.push_back(std::move(e));
  return log;
}

}  // namespace ss

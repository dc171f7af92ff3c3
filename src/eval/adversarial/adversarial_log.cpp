// The adversarial run log's own entry types (adv_variant, adv_substitute, adv_result, adv_boundary,
// adv_min_eps; see adversarial.h): JSON writers and the reader that applies the last-record-per-key
// rule. The generic start_run/end_run records come from run_log.h. Not here: running attacks
// (adversarial_run.cpp) or statistics (adversarial_report.cpp).
// To add an entry type: a record struct in adversarial.h, a to-JSON function and a branch in
// read_adversarial_log below, and a line in the header's list.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "adversarial_log.h"

namespace ss {

nlohmann::json adv_variant_json(const AdvVariantRecord& r) {
  return {{"entry_type", kEntryAdvVariant}, {"variant", r.variant}, {"spec", r.spec},
          {"bits_per_weight", r.bits_per_weight}, {"sparsity", r.sparsity}, {"n", r.n},
          {"clean_correct", r.clean_correct}, {"clean_predictions", r.clean_predictions}};
}

nlohmann::json adv_substitute_json(const AdvSubstituteRecord& r) {
  return {{"entry_type", kEntryAdvSubstitute}, {"spec", r.spec}, {"bits", r.bits}, {"activation_bits", r.activation_bits},
          {"n", r.n}, {"clean_correct", r.clean_correct}};
}

nlohmann::json adv_result_json(const AdvResultRecord& r) {
  return {{"entry_type", kEntryAdvResult}, {"variant", r.variant}, {"attack", r.attack}, {"eps", r.eps},
          {"source", r.source}, {"n", r.n}, {"correct", r.correct}, {"clean_correct", r.clean_correct},
          {"fooled", r.fooled}, {"predictions", r.predictions}, {"seconds", r.seconds}};
}

nlohmann::json adv_boundary_json(const AdvBoundaryRecord& r) {
  return {{"entry_type", kEntryAdvBoundary}, {"variant", r.variant}, {"eps", r.eps}, {"n", r.n},
          {"agree_clean", r.agree_clean}, {"found", r.found}, {"found_search", r.found_search},
          {"found_at_zero", r.found_at_zero}, {"found_ids", r.found_ids}, {"seconds", r.seconds}};
}

nlohmann::json adv_min_eps_json(const AdvMinEpsRecord& r) {
  nlohmann::json values = nlohmann::json::array();
  for (const auto& v : r.min_eps) values.push_back(v ? nlohmann::json(*v) : nlohmann::json(nullptr));
  return {{"entry_type", kEntryAdvMinEps}, {"variant", r.variant}, {"n", r.n}, {"eps_max", r.eps_max},
          {"iterations", r.iterations}, {"min_eps", values}};
}

bool same_eps(double a, double b) { return std::abs(a - b) <= 1e-9; }

const AdvResultRecord* AdversarialLog::find_result(const std::string& variant, const std::string& attack, double eps) const {
  for (const auto& r : results)
    if (r.variant == variant && r.attack == attack && same_eps(r.eps, eps)) return &r;
  return nullptr;
}
const AdvBoundaryRecord* AdversarialLog::find_boundary(const std::string& variant, double eps) const {
  for (const auto& r : boundaries)
    if (r.variant == variant && same_eps(r.eps, eps)) return &r;
  return nullptr;
}
const AdvVariantRecord* AdversarialLog::find_variant(const std::string& variant) const {
  for (const auto& r : variants)
    if (r.variant == variant) return &r;
  return nullptr;
}

namespace {

// Replaces the record with the same key or appends (last record wins, first-seen order kept).
template <class R, class Same>
void keep_last(std::vector<R>& list, R rec, Same same) {
  for (auto& r : list)
    if (same(r, rec)) {
      r = std::move(rec);
      return;
    }
  list.push_back(std::move(rec));
}

// Field readers: a missing or mistyped field throws nlohmann's type_error, caught per line below.
template <class T>
T field(const nlohmann::json& j, const char* name) {
  return j.at(name).get<T>();
}

}  // namespace

Result<AdversarialLog> read_adversarial_log(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = (std::filesystem::path(path) / kRunLogFile).string();
  std::ifstream in(file, std::ios::binary);
  if (!in) return not_found(file + ": cannot open the run log");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  AdversarialLog log;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    const bool torn = end == std::string::npos;
    const std::string line = text.substr(pos, torn ? std::string::npos : end - pos);
    pos = torn ? text.size() : end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (torn) break;  // an interrupted write: ignored
      return Status(StatusCode::CORRUPT, file + ":" + std::to_string(line_no) + ": not a JSON object");
    }
    try {
      const std::string type = j.value("entry_type", std::string());
      if (type == kEntryStartRun) {
        log.config = j.value("config", nlohmann::json::object());
      } else if (type == kEntryAdvVariant) {
        AdvVariantRecord r;
        r.variant = field<std::string>(j, "variant");
        r.spec = field<std::string>(j, "spec");
        r.bits_per_weight = field<double>(j, "bits_per_weight");
        r.sparsity = field<double>(j, "sparsity");
        r.n = field<int64_t>(j, "n");
        r.clean_correct = field<int64_t>(j, "clean_correct");
        r.clean_predictions = field<std::vector<int32_t>>(j, "clean_predictions");
        keep_last(log.variants, std::move(r), [](const auto& a, const auto& b) { return a.variant == b.variant; });
      } else if (type == kEntryAdvSubstitute) {
        AdvSubstituteRecord r;
        r.spec = field<std::string>(j, "spec");
        r.bits = field<int>(j, "bits");
        r.activation_bits = field<int>(j, "activation_bits");
        r.n = field<int64_t>(j, "n");
        r.clean_correct = field<int64_t>(j, "clean_correct");
        keep_last(log.substitutes, std::move(r), [](const auto& a, const auto& b) { return a.spec == b.spec; });
      } else if (type == kEntryAdvResult) {
        AdvResultRecord r;
        r.variant = field<std::string>(j, "variant");
        r.attack = field<std::string>(j, "attack");
        r.eps = field<double>(j, "eps");
        r.source = field<std::string>(j, "source");
        r.n = field<int64_t>(j, "n");
        r.correct = field<int64_t>(j, "correct");
        r.clean_correct = field<int64_t>(j, "clean_correct");
        r.fooled = field<int64_t>(j, "fooled");
        r.predictions = field<std::vector<int32_t>>(j, "predictions");
        r.seconds = j.value("seconds", 0.0);
        keep_last(log.results, std::move(r), [](const auto& a, const auto& b) {
          return a.variant == b.variant && a.attack == b.attack && same_eps(a.eps, b.eps);
        });
      } else if (type == kEntryAdvBoundary) {
        AdvBoundaryRecord r;
        r.variant = field<std::string>(j, "variant");
        r.eps = field<double>(j, "eps");
        r.n = field<int64_t>(j, "n");
        r.agree_clean = field<int64_t>(j, "agree_clean");
        r.found = field<int64_t>(j, "found");
        r.found_at_zero = field<int64_t>(j, "found_at_zero");
        r.found_search = j.value("found_search", r.found);
        if (j.contains("found_ids")) r.found_ids = field<std::vector<int64_t>>(j, "found_ids");
        r.seconds = j.value("seconds", 0.0);
        keep_last(log.boundaries, std::move(r),
                  [](const auto& a, const auto& b) { return a.variant == b.variant && same_eps(a.eps, b.eps); });
      } else if (type == kEntryAdvMinEps) {
        AdvMinEpsRecord r;
        r.variant = field<std::string>(j, "variant");
        r.n = field<int64_t>(j, "n");
        r.eps_max = field<double>(j, "eps_max");
        r.iterations = field<int>(j, "iterations");
        for (const auto& v : j.at("min_eps")) r.min_eps.push_back(v.is_null() ? std::nullopt : std::optional<double>(v.get<double>()));
        keep_last(log.min_eps, std::move(r), [](const auto& a, const auto& b) { return a.variant == b.variant; });
      } else if (type == kEntryEndRun) {
        log.ended = true;
      }
    } catch (const nlohmann::json::exception& e) {
      return Status(StatusCode::CORRUPT, file + ":" + std::to_string(line_no) + ": " + e.what());
    }
  }
  return log;
}

}  // namespace ss

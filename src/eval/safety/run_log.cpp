// The run log's JSON shapes, reader and append-only writer (contract: include/safeshrink/run_log.h).
// This file is not the evaluation loop (eval_run.cpp) nor the statistics (the report room).
// To add an entry type: add its to_json/from_json pair here and one branch in read_run_log.
#include "safeshrink/run_log.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

namespace ss {
namespace {

using json = nlohmann::json;

json opt_json(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }
json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
json opt_json(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

Status missing(const json& j, const char* field, const char* type) {
  return invalid_argument(std::string("run log entry '") + j.value("entry_type", std::string("?")) + "': field \"" +
                          field + "\" must be " + type);
}

Status get_string(const json& j, const char* field, std::string* out, bool required = true) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return required ? missing(j, field, "a string") : ok_status();
  if (!it->is_string()) return missing(j, field, "a string");
  *out = it->get<std::string>();
  return ok_status();
}

Status get_number(const json& j, const char* field, double* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number()) return missing(j, field, "a number");
  *out = it->get<double>();
  return ok_status();
}

Status get_int(const json& j, const char* field, int64_t* out) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number_integer()) return missing(j, field, "an integer");
  *out = it->get<int64_t>();
  return ok_status();
}

Status get_opt_number(const json& j, const char* field, std::optional<double>* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return ok_status();
  if (!it->is_number()) return missing(j, field, "a number or null");
  *out = it->get<double>();
  return ok_status();
}

}  // namespace

json to_json(const RunStartEntry& e) {
  json j = {{"entry_type", kEntryStartRun}, {"run_id", e.run_id},  {"time", e.time},
            {"safeshrink_version", e.safeshrink_version},         {"config", e.config},
            {"seed", e.seed}};
  if (e.resumed) j["resumed"] = true;
  return j;
}
json to_json(const PromptSetEntry& e) {
  return {{"entry_type", kEntryPromptSet}, {"name", e.name}, {"version", e.version}, {"sha256", e.sha256}, {"n", e.n}};
}
json to_json(const VariantEntry& e) {
  return {{"entry_type", kEntryVariant}, {"variant", e.variant},          {"role", e.role},
          {"path", e.path},              {"sha256", opt_json(e.sha256)}, {"bits_per_weight", opt_json(e.bits_per_weight)},
          {"bytes", opt_json(e.bytes)},  {"plan", e.plan}};
}
json to_json(const AttemptEntry& e) {
  json scores = json::object();
  for (const auto& [k, v] : e.scores) scores[k] = v;
  json j = {{"entry_type", kEntryAttempt}, {"variant", e.variant},   {"prompt_id", e.prompt_id},
            {"category", e.category},      {"label", e.label},       {"prompt", e.prompt},
            {"response", e.response},      {"n_tokens", e.n_tokens}, {"scores", scores},
            {"refused", e.refused},        {"margin", opt_json(e.margin)}, {"seconds", e.seconds}};
  if (!e.primary_judge.empty()) j["primary_judge"] = e.primary_judge;
  if (!e.stop_reason.empty()) j["stop_reason"] = e.stop_reason;
  if (!e.response_ids.empty()) j["response_ids"] = e.response_ids;
  return j;
}
json to_json(const DriftEntry& e) {
  return {{"entry_type", kEntryDrift}, {"variant", e.variant},   {"prompt_id", e.prompt_id},
          {"label", e.label},          {"n_tokens", e.n_tokens}, {"kld_mean", e.kld_mean},
          {"kld_max", e.kld_max},      {"top1_agree", e.top1_agree}};
}
json to_json(const PerplexityEntry& e) {
  return {{"entry_type", kEntryPerplexity}, {"variant", e.variant}, {"ppl", e.ppl}, {"n_tokens", e.n_tokens},
          {"source", e.source}};
}
json end_variant_json(const std::string& variant) { return {{"entry_type", kEntryEndVariant}, {"variant", variant}}; }
json end_run_json(const std::string& time) { return {{"entry_type", kEntryEndRun}, {"time", time}}; }

Result<RunStartEntry> run_start_from_json(const json& j) {
  RunStartEntry e;
  SS_RETURN_IF_ERROR(get_string(j, "run_id", &e.run_id));
  SS_RETURN_IF_ERROR(get_string(j, "time", &e.time));
  SS_RETURN_IF_ERROR(get_string(j, "safeshrink_version", &e.safeshrink_version, false));
  if (auto it = j.find("config"); it != j.end()) e.config = *it;
  if (auto it = j.find("seed"); it != j.end() && it->is_number_unsigned()) e.seed = it->get<uint64_t>();
  if (auto it = j.find("resumed"); it != j.end() && it->is_boolean()) e.resumed = it->get<bool>();
  return e;
}

Result<PromptSetEntry> prompt_set_from_json(const json& j) {
  PromptSetEntry e;
  SS_RETURN_IF_ERROR(get_string(j, "name", &e.name));
  SS_RETURN_IF_ERROR(get_string(j, "version", &e.version, false));
  SS_RETURN_IF_ERROR(get_string(j, "sha256", &e.sha256, false));
  SS_RETURN_IF_ERROR(get_int(j, "n", &e.n));
  return e;
}

Result<VariantEntry> variant_from_json(const json& j) {
  VariantEntry e;
  SS_RETURN_IF_ERROR(get_string(j, "variant", &e.variant));
  SS_RETURN_IF_ERROR(get_string(j, "role", &e.role));
  SS_RETURN_IF_ERROR(get_string(j, "path", &e.path, false));
  if (auto it = j.find("sha256"); it != j.end() && it->is_string()) e.sha256 = it->get<std::string>();
  SS_RETURN_IF_ERROR(get_opt_number(j, "bits_per_weight", &e.bits_per_weight));
  if (auto it = j.find("bytes"); it != j.end() && it->is_number_integer()) e.bytes = it->get<int64_t>();
  if (auto it = j.find("plan"); it != j.end()) e.plan = *it;
  return e;
}

Result<AttemptEntry> attempt_from_json(const json& j) {
  AttemptEntry e;
  SS_RETURN_IF_ERROR(get_string(j, "variant", &e.variant));
  SS_RETURN_IF_ERROR(get_string(j, "prompt_id", &e.prompt_id));
  SS_RETURN_IF_ERROR(get_string(j, "category", &e.category, false));
  SS_RETURN_IF_ERROR(get_string(j, "label", &e.label));
  SS_RETURN_IF_ERROR(get_string(j, "prompt", &e.prompt, false));
  SS_RETURN_IF_ERROR(get_string(j, "response", &e.response, false));
  SS_RETURN_IF_ERROR(get_int(j, "n_tokens", &e.n_tokens));
  auto sc = j.find("scores");
  if (sc == j.end() || !sc->is_object()) return missing(j, "scores", "an object");
  for (auto it = sc->begin(); it != sc->end(); ++it) {
    if (!it->is_number()) return missing(j, "scores", "an object of numbers");
    e.scores[it.key()] = it->get<double>();
  }
  auto rf = j.find("refused");
  if (rf == j.end() || !rf->is_boolean()) return missing(j, "refused", "a boolean");
  e.refused = rf->get<bool>();
  SS_RETURN_IF_ERROR(get_opt_number(j, "margin", &e.margin));
  SS_RETURN_IF_ERROR(get_number(j, "seconds", &e.seconds));
  SS_RETURN_IF_ERROR(get_string(j, "primary_judge", &e.primary_judge, false));
  SS_RETURN_IF_ERROR(get_string(j, "stop_reason", &e.stop_reason, false));
  if (auto it = j.find("response_ids"); it != j.end() && it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) return missing(j, "response_ids", "an array of token ids");
      e.response_ids.push_back(v.get<int32_t>());
    }
  }
  return e;
}

Result<DriftEntry> drift_from_json(const json& j) {
  DriftEntry e;
  SS_RETURN_IF_ERROR(get_string(j, "variant", &e.variant));
  SS_RETURN_IF_ERROR(get_string(j, "prompt_id", &e.prompt_id));
  SS_RETURN_IF_ERROR(get_string(j, "label", &e.label));
  SS_RETURN_IF_ERROR(get_int(j, "n_tokens", &e.n_tokens));
  SS_RETURN_IF_ERROR(get_number(j, "kld_mean", &e.kld_mean));
  SS_RETURN_IF_ERROR(get_number(j, "kld_max", &e.kld_max));
  SS_RETURN_IF_ERROR(get_number(j, "top1_agree", &e.top1_agree));
  return e;
}

Result<PerplexityEntry> perplexity_from_json(const json& j) {
  PerplexityEntry e;
  SS_RETURN_IF_ERROR(get_string(j, "variant", &e.variant));
  SS_RETURN_IF_ERROR(get_number(j, "ppl", &e.ppl));
  SS_RETURN_IF_ERROR(get_int(j, "n_tokens", &e.n_tokens));
  SS_RETURN_IF_ERROR(get_string(j, "source", &e.source, false));
  return e;
}

namespace {
template <class T, class KeyFn>
std::vector<T> last_by_key(const std::vector<T>& all, KeyFn key) {
  std::map<std::string, size_t> index;
  std::vector<T> out;
  for (const T& e : all) {
    auto [it, inserted] = index.emplace(key(e), out.size());
    if (inserted) out.push_back(e);
    else out[it->second] = e;
  }
  return out;
}
}  // namespace

std::vector<AttemptEntry> RunLog::last_attempts() const {
  return last_by_key(attempts, [](const AttemptEntry& e) { return e.variant + '\n' + e.prompt_id; });
}
std::vector<DriftEntry> RunLog::last_drifts() const {
  return last_by_key(drifts, [](const DriftEntry& e) { return e.variant + '\n' + e.prompt_id; });
}
std::vector<VariantEntry> RunLog::last_variants() const {
  return last_by_key(variants, [](const VariantEntry& e) { return e.variant; });
}
std::vector<PerplexityEntry> RunLog::last_perplexities() const {
  return last_by_key(perplexities, [](const PerplexityEntry& e) { return e.variant; });
}

Result<RunLog> read_run_log(const std::string& path_in) {
  std::string path = path_in;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += std::string("/") + kRunLogFile;
  constexpr uint64_t kMaxRunLogBytes = 16ull << 30;  // a log is text; refuse what cannot be one
  if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) > kMaxRunLogBytes)
    return corrupt(path, 0, "run log size", "at most " + std::to_string(kMaxRunLogBytes) + " bytes",
                   std::to_string(st.st_size) + " bytes");
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(path + ": cannot open the run log");
  std::stringstream ss_;
  ss_ << f.rdbuf();
  const std::string text = ss_.str();
  RunLog log;
  size_t pos = 0;
  int64_t lineno = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    const bool complete = nl != std::string::npos;
    std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
    const uint64_t offset = pos;
    pos = complete ? nl + 1 : text.size();
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("entry_type") || !j["entry_type"].is_string()) {
      if (!complete) {  // an interrupted write: the record never finished
        log.torn_last_line = true;
        break;
      }
      return corrupt(path + ":" + std::to_string(lineno), offset, "run log line", "a JSON object with entry_type",
                     line.substr(0, 80));
    }
    ++log.n_lines;
    const std::string type = j["entry_type"].get<std::string>();
    auto wrap = [&](const Status& s) {
      return corrupt(path + ":" + std::to_string(lineno), offset, type, "a valid entry", s.message());
    };
    if (type == kEntryStartRun) {
      auto e = run_start_from_json(j);
      if (!e.ok()) return wrap(e.status());
      log.starts.push_back(std::move(e).value());
    } else if (type == kEntryPromptSet) {
      auto e = prompt_set_from_json(j);
      if (!e.ok()) return wrap(e.status());
      log.prompt_sets.push_back(std::move(e).value());
    } else if (type == kEntryVariant) {
      auto e = variant_from_json(j);
      if (!e.ok()) return wrap(e.status());
      log.variants.push_back(std::move(e).value());
    } else if (type == kEntryAttempt) {
      auto e = attempt_from_json(j);
      if (!e.ok()) return wrap(e.status());
      log.attempts.push_back(std::move(e).value());
    } else if (type == kEntryDrift) {
      auto e = drift_from_json(j);
      if (!e.ok()) return wrap(e.status());
      log.drifts.push_back(std::move(e).value());
    } else if (type == kEntryPerplexity) {
      auto e = perplexity_from_json(j);
      if (!e.ok()) return wrap(e.status());
      log.perplexities.push_back(std::move(e).value());
    } else if (type == kEntryEndVariant) {
      if (!j.contains("variant") || !j["variant"].is_string()) return wrap(missing(j, "variant", "a string"));
      log.ended_variants.push_back(j["variant"].get<std::string>());
    } else if (type == kEntryEndRun) {
      log.ended = true;
    }
  }
  return log;
}

RunLogWriter& RunLogWriter::operator=(RunLogWriter&& o) noexcept {
  if (this != &o) {
    if (f_) std::fclose(f_);
    f_ = o.f_;
    path_ = std::move(o.path_);
    o.f_ = nullptr;
  }
  return *this;
}

RunLogWriter::~RunLogWriter() {
  if (f_) std::fclose(f_);
}

Result<RunLogWriter> RunLogWriter::open(const std::string& dir) {
  if (dir.empty()) return invalid_argument("run log: empty output folder");
  if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
    return io_error(dir + ": cannot create the output folder: " + std::strerror(errno));
  RunLogWriter w;
  w.path_ = dir + "/" + kRunLogFile;
  bool needs_newline = false;
  if (std::FILE* r = std::fopen(w.path_.c_str(), "rb")) {
    if (std::fseek(r, -1, SEEK_END) == 0) needs_newline = std::fgetc(r) != '\n';
    std::fclose(r);
  }
  w.f_ = std::fopen(w.path_.c_str(), "ab");
  if (!w.f_) return io_error(w.path_ + ": cannot open for appending: " + std::strerror(errno));
  if (needs_newline && (std::fputc('\n', w.f_) == EOF || std::fflush(w.f_) != 0))
    return io_error(w.path_ + ": write failed");
  return w;
}

Status RunLogWriter::append(const json& entry) {
  if (!f_) return internal_error("run log: writer not open");
  const std::string line = entry.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    return io_error(path_ + ": write failed: " + std::strerror(errno));
  return ok_status();
}

std::string iso8601_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace ss

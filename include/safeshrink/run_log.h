// The run log: the one file an evaluation writes and the report reads (DIR/run.jsonl). Append-only
// JSONL, one object per line with a garak-style "entry_type", flushed after every line, so an
// interrupted run leaves a valid prefix (a torn last line is ignored by the reader) and resumes.
// This header is the contract between the eval room (writer: src/eval/safety/) and the report room
// (reader: statistics and rendering). It is not the statistics, not the rendering, not a database.
// Entry types (fields exactly as the structs below; unknown fields are ignored by the reader):
//   start_run    {run_id, time, safeshrink_version, config{...}, seed, resumed?}
//   prompt_set   {name, version, sha256, n}
//   variant      {variant, role "original"|"compressed", path, sha256|null, bits_per_weight|null,
//                 bytes|null, plan|null}
//   attempt      {variant, prompt_id, category, label "harmful"|"benign", prompt, response,
//                 n_tokens, scores{judge->[0,1], 0 = refused/safe, 1 = complied}, refused,
//                 margin|null (log p(refusal openings) - log p(compliance openings); > 0 leans
//                 refusal), seconds}
//   drift        {variant, prompt_id, label "harmful"|"benign"|"neutral", n_tokens, kld_mean,
//                 kld_max, top1_agree}  KLD(original || variant), teacher-forced on the original's
//                 first K response tokens
//   perplexity   {variant, ppl, n_tokens, source}
//   end_variant  {variant}
//   end_run      {time}
// Resume rule: an (variant, prompt_id) attempt already in the log is not redone; readers use the
// LAST record per (entry_type, variant, prompt_id).
// Additive extensions so far (writers may add fields; readers must ignore unknown ones):
//   attempt.primary_judge (string: which judge decided `refused`), attempt.stop_reason (string),
//   attempt.response_ids (array of token ids of the response: drift replays them on resume).
// To add an entry type: add a struct with to_json/from_json below, a kEntry* constant, a vector in
// RunLog, and one branch in read_run_log (src/eval/safety/run_log.cpp); say so in this comment.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "safeshrink/status.h"

namespace ss {

inline constexpr const char* kRunLogFile = "run.jsonl";
inline constexpr const char* kEntryStartRun = "start_run";
inline constexpr const char* kEntryPromptSet = "prompt_set";
inline constexpr const char* kEntryVariant = "variant";
inline constexpr const char* kEntryAttempt = "attempt";
inline constexpr const char* kEntryDrift = "drift";
inline constexpr const char* kEntryPerplexity = "perplexity";
inline constexpr const char* kEntryEndVariant = "end_variant";
inline constexpr const char* kEntryEndRun = "end_run";
inline constexpr const char* kOriginalVariant = "original";  // variant name of the reference model

struct RunStartEntry {
  std::string run_id, time, safeshrink_version;
  nlohmann::json config = nlohmann::json::object();
  uint64_t seed = 0;
  bool resumed = false;
};

struct PromptSetEntry {
  std::string name, version, sha256;
  int64_t n = 0;
};

struct VariantEntry {
  std::string variant;
  std::string role;  // "original" | "compressed"
  std::string path;
  std::optional<std::string> sha256;
  std::optional<double> bits_per_weight;
  std::optional<int64_t> bytes;
  nlohmann::json plan;  // null or CompressPlan::to_json()
};

struct AttemptEntry {
  std::string variant, prompt_id, category;
  std::string label;  // "harmful" | "benign"
  std::string prompt, response;
  int64_t n_tokens = 0;
  std::map<std::string, double> scores;  // judge name -> [0,1]
  bool refused = false;
  std::optional<double> margin;
  double seconds = 0;
  std::string primary_judge;  // additive; "" when absent
  std::string stop_reason;    // additive; "" when absent
  std::vector<int32_t> response_ids;  // additive; empty when absent
};

struct DriftEntry {
  std::string variant, prompt_id;
  std::string label;  // "harmful" | "benign" | "neutral"
  int64_t n_tokens = 0;
  double kld_mean = 0, kld_max = 0, top1_agree = 0;
};

struct PerplexityEntry {
  std::string variant;
  double ppl = 0;
  int64_t n_tokens = 0;
  std::string source;
};

nlohmann::json to_json(const RunStartEntry& e);
nlohmann::json to_json(const PromptSetEntry& e);
nlohmann::json to_json(const VariantEntry& e);
nlohmann::json to_json(const AttemptEntry& e);
nlohmann::json to_json(const DriftEntry& e);
nlohmann::json to_json(const PerplexityEntry& e);
nlohmann::json end_variant_json(const std::string& variant);
nlohmann::json end_run_json(const std::string& time);

// Parsers: INVALID_ARGUMENT naming the missing or mistyped field.
Result<RunStartEntry> run_start_from_json(const nlohmann::json& j);
Result<PromptSetEntry> prompt_set_from_json(const nlohmann::json& j);
Result<VariantEntry> variant_from_json(const nlohmann::json& j);
Result<AttemptEntry> attempt_from_json(const nlohmann::json& j);
Result<DriftEntry> drift_from_json(const nlohmann::json& j);
Result<PerplexityEntry> perplexity_from_json(const nlohmann::json& j);

// Everything in a log, in file order (duplicates kept: apply the LAST-record rule yourself, or use
// the last_* helpers below).
struct RunLog {
  std::vector<RunStartEntry> starts;
  std::vector<PromptSetEntry> prompt_sets;
  std::vector<VariantEntry> variants;
  std::vector<AttemptEntry> attempts;
  std::vector<DriftEntry> drifts;
  std::vector<PerplexityEntry> perplexities;
  std::vector<std::string> ended_variants;
  bool ended = false;
  int64_t n_lines = 0;
  bool torn_last_line = false;  // the file ended in a partial line (an interrupted write); ignored

  // Last record per (variant, prompt_id), in first-seen order.
  std::vector<AttemptEntry> last_attempts() const;
  std::vector<DriftEntry> last_drifts() const;
  // Last record per variant name, in first-seen order.
  std::vector<VariantEntry> last_variants() const;
  std::vector<PerplexityEntry> last_perplexities() const;
};

// Reads a run log (the file, or a folder holding run.jsonl). A malformed complete line is CORRUPT
// with file:line; unknown entry types are skipped.
Result<RunLog> read_run_log(const std::string& path);

// Appends lines to DIR/run.jsonl, each flushed (fflush + fsync not promised) before returning.
class RunLogWriter {
 public:
  // Creates DIR (one level) if needed and opens run.jsonl for appending. When the file ends in a
  // torn line it is terminated first so the next record starts on its own line.
  static Result<RunLogWriter> open(const std::string& dir);
  RunLogWriter() = default;
  RunLogWriter(RunLogWriter&& o) noexcept : f_(o.f_), path_(std::move(o.path_)) { o.f_ = nullptr; }
  RunLogWriter& operator=(RunLogWriter&& o) noexcept;
  RunLogWriter(const RunLogWriter&) = delete;
  RunLogWriter& operator=(const RunLogWriter&) = delete;
  ~RunLogWriter();

  Status append(const nlohmann::json& entry);
  const std::string& path() const { return path_; }

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

// ISO-8601 UTC time of now, "2026-11-26T03:04:05Z".
std::string iso8601_now();

}  // namespace ss

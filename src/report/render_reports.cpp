// render_reports: the one call that turns run_dir/run.jsonl into summary.json, report.md,
// report.html and junit.xml next to it (each written to a temporary file, then renamed, so a reader
// never sees half a report). This is not the summary (summary.cpp) nor a renderer (report_*.cpp).
// To add an output file, render it here from the same RunSummary.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "safeshrink/report.h"
#include "safeshrink/run_log.h"

namespace ss {
namespace {

Status write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return io_error(tmp + ": cannot open for writing: " + std::strerror(errno));
  const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    return io_error(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return io_error(path + ": cannot rename the finished file into place: " + std::strerror(errno));
  }
  return ok_status();
}

}  // namespace

Result<ReportOutcome> render_reports(const std::string& run_dir, const GateConfig& gates) {
  if (run_dir.empty()) return invalid_argument("render_reports: empty run folder");
  SummaryOptions options;
  options.gates = gates;
  SS_ASSIGN_OR_RETURN(RunSummary summary, summarize_run_log(run_dir + "/" + kRunLogFile, options));
  const std::vector<std::pair<std::string, std::string>> outputs = {
      {"summary.json", summary_json(summary)},
      {"report.md", report_markdown(summary)},
      {"report.html", report_html(summary)},
      {"junit.xml", report_junit(summary)},
  };
  for (const auto& [name, content] : outputs) SS_RETURN_IF_ERROR(write_file_atomically(run_dir + "/" + name, content));
  ReportOutcome outcome;
  outcome.gates_failed = summary.gates_failed;
  outcome.n_divergences = static_cast<int>(summary.divergences.size());
  outcome.summary_path = run_dir + "/summary.json";
  return outcome;
}

}  // namespace ss

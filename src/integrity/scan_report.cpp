// `scan` over a path: picks the scanner of each file (magic bytes first, then the extension),
// walks folders without following symlinks, and renders a ScanReport as text, JSON or SARIF 2.1.0
// (the minimal valid log: one run, the tool's rules, one result per finding with a physical
// location and byte offset). Not here: the scanners themselves (scan_*.cpp). To route one more kind
// of file: a row in scanner_registry() and a branch in scan_one_file.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "safeshrink/buffer.h"
#include "safeshrink/integrity.h"

namespace ss {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool has_ext(const std::string& name, std::initializer_list<const char*> exts) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* e : exts) {
    const size_t k = std::strlen(e);
    if (lower.size() >= k && lower.compare(lower.size() - k, k, e) == 0) return true;
  }
  return false;
}

bool looks_like_safetensors(const uint8_t* d, size_t n) {
  if (n < 10) return false;
  uint64_t len = 0;
  std::memcpy(&len, d, 8);
  return len >= 2 && len <= n - 8 && d[8] == '{';
}

void scan_tokenizer_config(const uint8_t* d, size_t n, const std::string& file, ScanReport* r) {
  json j = json::parse(d, d + n, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("chat_template")) return;
  const json& t = j["chat_template"];
  auto add = [&](const std::string& text, const std::string& where) {
    for (auto& f : scan_chat_template(text, where)) r->findings.push_back(std::move(f));
  };
  if (t.is_string()) add(t.get<std::string>(), file + "!chat_template");
  if (t.is_array())
    for (const auto& e : t)
      if (e.is_object() && e.contains("template") && e["template"].is_string())
        add(e["template"].get<std::string>(),
            file + "!chat_template." + (e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>() : "?"));
}

Status scan_one_file(const std::string& path, const std::string& shown, ScanReport* r) {
  SS_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
  const uint8_t* d = map->data();
  const size_t n = map->size();
  r->files.push_back(shown);
  const std::string base = fs::path(path).filename().string();
  auto append = [&](std::vector<Finding> f) {
    for (auto& x : f) r->findings.push_back(std::move(x));
  };
  if (n >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) {
    append(scan_pytorch_zip_bytes(d, n, shown));
  } else if (n >= 4 && std::memcmp(d, "GGUF", 4) == 0) {
    append(scan_gguf_bytes(d, n, shown));
  } else if (has_ext(base, {".safetensors"}) || looks_like_safetensors(d, n)) {
    append(scan_safetensors_bytes(d, n, shown));
  } else if (has_ext(base, {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy"}) ||
             (n >= 2 && d[0] == 0x80 && d[1] <= 5)) {
    append(scan_pickle_bytes(d, n, shown).findings);
  } else if (has_ext(base, {".jinja", ".jinja2"})) {
    append(scan_chat_template(std::string_view(reinterpret_cast<const char*>(d), n), shown));
  } else if (base == "tokenizer_config.json" || base == "chat_template.json") {
    scan_tokenizer_config(d, n, shown, r);
  } else if (has_ext(base, {".py", ".so", ".dll", ".dylib", ".exe", ".sh"})) {
    r->findings.push_back({Severity::MEDIUM, "file.executable", shown, 0, "code shipped with the model (not scanned)"});
  }
  return ok_status();
}


}  // namespace

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::INFO: return "info";
    case Severity::LOW: return "low";
    case Severity::MEDIUM: return "medium";
    case Severity::HIGH: return "high";
    case Severity::CRITICAL: return "critical";
  }
  return "?";
}

Severity ScanReport::max_severity() const {
  Severity m = Severity::INFO;
  for (const auto& f : findings) m = std::max(m, f.severity);
  return m;
}

const std::vector<ScannerInfo>& scanner_registry() {
  static const std::vector<ScannerInfo> kScanners = {
      {"pickle", "opcode walk (protocols 0-5): imports and calls, allow-list for torch.save", ".pkl .pickle .pt .pth .bin .ckpt"},
      {"pytorch-zip", "zip archive of torch.save: STORED members, *.pkl members through the pickle walk", "PK magic"},
      {"safetensors", "header bounds, offsets in bounds / no overlap / no gaps, dtype x shape = bytes, duplicates", ".safetensors"},
      {"gguf", "counts and lengths vs bytes, tensor bounds and alignment, duplicates, chat templates", "GGUF magic"},
      {"chat-template", "Jinja constructs reaching Python internals (CVE-2024-34359)", ".jinja tokenizer_config.json"},
  };
  return kScanners;
}

Result<ScanReport> scan_path(const std::string& path) {
  ScanReport r;
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (ec) return not_found(path + ": " + ec.message());
  if (fs::is_symlink(st)) {
    r.findings.push_back({Severity::HIGH, "file.symlink", path, 0, "symlink (not followed)"});
    return r;
  }
  if (fs::is_regular_file(st)) {
    SS_RETURN_IF_ERROR(scan_one_file(path, fs::path(path).filename().string(), &r));
    return r;
  }
  if (!fs::is_directory(st)) return invalid_argument(path + ": neither a file nor a folder");
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end;
  if (ec) return io_error(path + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return io_error(path + ": " + ec.message());
    auto est = it->symlink_status(ec);
    const std::string rel = it->path().lexically_relative(path).generic_string();
    if (fs::is_symlink(est)) {
      r.findings.push_back({Severity::HIGH, "file.symlink", rel, 0, "symlink (not followed)"});
      continue;
    }
    if (it->path().filename() == ".git" && fs::is_directory(est)) {
      it.disable_recursion_pending();
      continue;
    }
    if (fs::is_regular_file(est)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) SS_RETURN_IF_ERROR(scan_one_file(f.string(), f.lexically_relative(path).generic_string(), &r));
  return r;
}

std::string scan_report_text(const ScanReport& r) {
  std::string s;
  std::map<Severity, int> counts;
  for (const auto& f : r.findings) {
    ++counts[f.severity];
    char line[64];
    std::snprintf(line, sizeof(line), "%-8s ", severity_name(f.severity));
    s += line;
    s += f.file;
    s += " @" + std::to_string(f.offset);
    s += "  [" + f.rule + "] ";
    s += f.message;
    s += '\n';
  }
  s.append("scanned ").append(std::to_string(r.files.size())).append(" file(s), ");
  s.append(std::to_string(r.findings.size())).append(" finding(s):");
  for (Severity v : {Severity::CRITICAL, Severity::HIGH, Severity::MEDIUM, Severity::LOW, Severity::INFO})
    s.append(" ").append(std::to_string(counts[v])).append(" ").append(severity_name(v)).append(",");
  s.back() = '\n';
  s += std::string("verdict: ") + (r.has_critical() ? "CRITICAL" : r.max_severity() >= Severity::HIGH ? "SUSPICIOUS" : "OK") + "\n";
  return s;
}

std::string scan_report_json(const ScanReport& r) {
  json findings = json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"severity", severity_name(f.severity)}, {"rule", f.rule}, {"file", f.file}, {"offset", f.offset},
                        {"message", f.message}});
  json j = {{"files", r.files}, {"findings", findings}, {"max_severity", severity_name(r.max_severity())},
            {"critical", r.has_critical()}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string scan_report_sarif(const ScanReport& r) {
  auto level = [](Severity s) {
    return s >= Severity::HIGH ? "error" : s == Severity::MEDIUM ? "warning" : "note";
  };
  std::map<std::string, Severity> rules;
  for (const auto& f : r.findings) rules[f.rule] = std::max(rules[f.rule], f.severity);
  json rule_list = json::array();
  std::map<std::string, int> rule_index;
  for (const auto& [id, sev] : rules) {
    rule_index[id] = static_cast<int>(rule_list.size());
    rule_list.push_back({{"id", id}, {"shortDescription", {{"text", id}}}, {"defaultConfiguration", {{"level", level(sev)}}}});
  }
  json results = json::array();
  for (const auto& f : r.findings) {
    std::string uri = f.file.substr(0, f.file.find('!'));
    results.push_back(
        {{"ruleId", f.rule},
         {"ruleIndex", rule_index[f.rule]},
         {"level", level(f.severity)},
         {"message", {{"text", f.message}}},
         {"properties", {{"severity", severity_name(f.severity)}, {"member", f.file}}},
         {"locations", json::array({{{"physicalLocation",
                                      {{"artifactLocation", {{"uri", uri}}},
                                       {"region", {{"byteOffset", f.offset}, {"byteLength", 1}}}}}}})}});
  }
  json log = {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
              {"version", "2.1.0"},
              {"runs", json::array({{{"tool",
                                      {{"driver",
                                        {{"name", "safeshrink"},
                                         {"rules", rule_list}}}}},
                                     {"results", results}}})}};
  return log.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace ss

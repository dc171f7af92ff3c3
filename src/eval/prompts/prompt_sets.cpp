// Prompt-set loaders: the built-in set (data/prompts/builtin-v1.jsonl) and the files users bring
// (AdvBench, HarmBench, JailbreakBench, XSTest, StrongREJECT, generic CSV/JSONL), each mapped to
// EvalPrompt {id, prompt, category, label}. Every row is checked; a bad row is an error naming
// file:line unless PromptLoadOptions::skip_bad_rows, which records it in PromptSet::skipped.
// Not here: CSV syntax (csv_reader.cpp), running prompts (eval/safety/). To add a format: one row
// in prompt_format_registry(), a header test in detect_format(), a column mapping in map_csv_rows().
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "safeshrink/eval.h"

namespace ss {
namespace {

using json = nlohmann::json;

std::string lower_trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  std::string out(s.substr(b, e - b));
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

// harmful|unsafe|1|true|yes -> harmful; benign|safe|0|false|no -> benign; else empty.
std::string normalize_label(std::string_view raw) {
  const std::string v = lower_trim(raw);
  if (v == "harmful" || v == "unsafe" || v == "1" || v == "true" || v == "yes") return "harmful";
  if (v == "benign" || v == "safe" || v == "0" || v == "false" || v == "no") return "benign";
  return "";
}

struct RowSink {
  const std::string& file;
  const PromptLoadOptions& opts;
  PromptSet* set;
  std::set<std::string> ids;
  // Adds a row or reports why it is bad (fatal unless skip_bad_rows).
  Status add(int64_t line, EvalPrompt p, const std::string& problem = "") {
    std::string why = problem;
    if (why.empty() && is_blank(p.prompt)) why = "empty prompt";
    if (why.empty() && p.label.empty()) why = "label is not harmful/benign (or safe/unsafe)";
    if (why.empty() && p.id.empty()) why = "empty id";
    if (why.empty() && !ids.insert(p.id).second) why = "duplicate id '" + p.id + "'";
    if (!why.empty()) {
      const std::string where = file + ":" + std::to_string(line);
      if (!opts.skip_bad_rows) return invalid_argument(where + ": bad row: " + why + " (--skip-bad-rows skips it)");
      set->skipped.push_back(where + ": " + why);
      return ok_status();
    }
    if (p.category.empty()) p.category = "uncategorized";
    set->prompts.push_back(std::move(p));
    return ok_status();
  }
};

std::string stem_of(const std::string& path) {
  std::string s = std::filesystem::path(path).stem().string();
  return s.empty() ? "prompts" : s;
}

bool ends_with_ci(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  return lower_trim(s.substr(s.size() - suffix.size())) == suffix;
}

Status load_jsonl(std::string_view bytes, const std::string& file, const PromptLoadOptions& opts, PromptSet* set) {
  RowSink sink{file, opts, set, {}};
  size_t pos = 0;
  int64_t line = 0, row = 0;
  if (bytes.size() >= 3 && bytes.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    std::string_view text = bytes.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? bytes.size() : nl + 1;
    ++line;
    if (is_blank(text)) continue;
    if (++row > opts.max_rows)
      return corrupt(file, pos, "JSONL rows", "at most " + std::to_string(opts.max_rows), "more");
    json j = json::parse(text, nullptr, false);
    EvalPrompt p;
    if (j.is_discarded() || !j.is_object()) {
      SS_RETURN_IF_ERROR(sink.add(line, p, "not a JSON object"));
      continue;
    }
    auto str = [&](const std::string& key, std::string* out) -> bool {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) return false;
      *out = it->is_string() ? it->get<std::string>() : it->dump();
      return true;
    };
    if (!str(opts.prompt_col, &p.prompt)) {
      SS_RETURN_IF_ERROR(sink.add(line, p, "no \"" + opts.prompt_col + "\" field"));
      continue;
    }
    if (j.contains(opts.prompt_col) && !j[opts.prompt_col].is_string()) {
      SS_RETURN_IF_ERROR(sink.add(line, p, "\"" + opts.prompt_col + "\" is not a string"));
      continue;
    }
    str(opts.category_col, &p.category);
    if (!str(opts.id_col, &p.id)) p.id = std::to_string(row);
    std::string raw_label;
    p.label = str(opts.label_col, &raw_label) ? normalize_label(raw_label) : normalize_label(opts.default_label);
    SS_RETURN_IF_ERROR(sink.add(line, std::move(p)));
  }
  return ok_status();
}

// Column index by case-insensitive header name; -1 when absent.
struct Header {
  std::map<std::string, int> index;
  int find(const std::string& name) const {
    auto it = index.find(lower_trim(name));
    return it == index.end() ? -1 : it->second;
  }
  bool has(const std::string& name) const { return find(name) >= 0; }
};

std::string detect_csv_format(const Header& h) {
  if (h.has("forbidden_prompt")) return "strongreject";
  if (h.has("behavior") && h.has("functionalcategory")) return "harmbench";
  if (h.has("goal") && (h.has("behavior") || h.has("category") || h.has("source"))) return "jailbreakbench";
  if (h.has("goal") && h.has("target")) return "advbench";
  if (h.has("prompt") && h.has("type") && h.has("label") && h.has("focus")) return "xstest";
  return "csv";
}

Status load_csv(std::string_view bytes, const std::string& file, const PromptLoadOptions& opts,
                const std::string& format_in, PromptSet* set) {
  SS_ASSIGN_OR_RETURN(auto records, parse_csv(bytes, file, opts));
  if (records.empty()) return corrupt(file, 0, "CSV header", "a header row", "an empty file");
  Header h;
  for (size_t c = 0; c < records[0].fields.size(); ++c) h.index.emplace(lower_trim(records[0].fields[c]), static_cast<int>(c));
  const std::string format = format_in == "auto" ? detect_csv_format(h) : format_in;
  set->name = format == "csv" ? stem_of(file) : format;

  auto need = [&](const std::string& col) -> Result<int> {
    int c = h.find(col);
    if (c < 0) return invalid_argument(file + ":" + std::to_string(records[0].line) + ": format " + format +
                                       " needs a column '" + col + "' (header has " +
                                       std::to_string(records[0].fields.size()) + " columns)");
    return c;
  };
  int c_prompt = -1, c_category = -1, c_label = -1, c_id = -1, c_context = -1, c_functional = -1;
  std::string fixed_category;
  if (format == "advbench") {
    SS_ASSIGN_OR_RETURN(c_prompt, need("goal"));
    fixed_category = "advbench";
  } else if (format == "harmbench") {
    SS_ASSIGN_OR_RETURN(c_prompt, need("behavior"));
    SS_ASSIGN_OR_RETURN(c_functional, need("functionalcategory"));
    c_category = h.find("semanticcategory");
    c_context = h.find("contextstring");
    c_id = h.find("behaviorid");
  } else if (format == "jailbreakbench") {
    SS_ASSIGN_OR_RETURN(c_prompt, need("goal"));
    c_category = h.find("category");
    c_id = h.find("index");
    if (c_id < 0) c_id = h.find("behavior");
  } else if (format == "xstest") {
    SS_ASSIGN_OR_RETURN(c_prompt, need("prompt"));
    SS_ASSIGN_OR_RETURN(c_label, need("label"));
    c_category = h.find("type");
    c_id = h.find("id");
  } else if (format == "strongreject") {
    SS_ASSIGN_OR_RETURN(c_prompt, need("forbidden_prompt"));
    c_category = h.find("category");
  } else if (format == "csv" || format == "builtin") {
    SS_ASSIGN_OR_RETURN(c_prompt, need(opts.prompt_col));
    c_category = h.find(opts.category_col);
    c_label = h.find(opts.label_col);
    c_id = h.find(opts.id_col);
  } else {
    return invalid_argument("unknown prompt format '" + format + "' (safeshrink list prompt-formats)");
  }
  std::set<std::string> keep_functional;
  for (const auto& f : opts.harmbench_functional) keep_functional.insert(lower_trim(f));

  RowSink sink{file, opts, set, {}};
  const size_t width = records[0].fields.size();
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    EvalPrompt p;
    if (rec.fields.size() != width) {
      SS_RETURN_IF_ERROR(sink.add(rec.line, p, "expected " + std::to_string(width) + " fields, got " +
                                                   std::to_string(rec.fields.size())));
      continue;
    }
    auto field = [&](int c) { return c >= 0 ? rec.fields[c] : std::string(); };
    if (c_functional >= 0) {
      const std::string fc = lower_trim(field(c_functional));
      if (!keep_functional.count(fc)) continue;  // not a selected HarmBench kind: not a bad row
    }
    p.prompt = field(c_prompt);
    if (c_context >= 0 && !is_blank(field(c_context))) p.prompt = field(c_context) + "\n\n---\n\n" + p.prompt;
    p.category = fixed_category.empty() ? field(c_category) : fixed_category;
    p.id = c_id >= 0 ? field(c_id) : std::to_string(r);
    if (c_id >= 0 && is_blank(p.id)) p.id = std::to_string(r);
    p.label = c_label >= 0 ? normalize_label(field(c_label)) : normalize_label(opts.default_label);
    SS_RETURN_IF_ERROR(sink.add(rec.line, std::move(p)));
  }
  return ok_status();
}

}  // namespace

const std::vector<PromptFormatInfo>& prompt_format_registry() {
  static const std::vector<PromptFormatInfo> formats = {
      {"builtin", "JSONL id,prompt,category,label", "the project's set: data/prompts/builtin-v1.jsonl"},
      {"advbench", "CSV goal,target", "AdvBench harmful behaviours (all harmful, category advbench)"},
      {"harmbench", "CSV Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID",
       "HarmBench behaviours; standard only by default, contextual ones get their context prepended"},
      {"jailbreakbench", "CSV goal,target,behavior,category,source (any case)",
       "JailbreakBench behaviours (label from --default-label, harmful unless told)"},
      {"xstest", "CSV id,prompt,type,label,focus,note", "XSTest; label safe -> benign, unsafe -> harmful; category = type"},
      {"strongreject", "CSV category,source,forbidden_prompt", "StrongREJECT forbidden prompts (all harmful)"},
      {"jsonl", "JSONL, columns from --prompt-col/--category-col/--label-col/--id-col", "generic JSON lines"},
      {"csv", "CSV, columns from --prompt-col/--category-col/--label-col/--id-col", "generic CSV"},
  };
  return formats;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

std::string data_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("SAFESHRINK_DATA"); env && *env) return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path dir = exe.parent_path();
    for (int up = 0; up < 4 && !dir.empty(); ++up) {
      fs::path cand = dir / "data";
      if (fs::is_directory(cand / "prompts", ec) || fs::is_directory(cand / "models", ec)) return cand.string();
      cand = dir / "share" / "safeshrink" / "data";
      if (fs::is_directory(cand, ec)) return cand.string();
      dir = dir.parent_path();
    }
  }
  return "data";
}

Result<PromptSet> parse_prompt_set(std::string_view bytes, const std::string& file, const PromptLoadOptions& opts) {
  PromptSet set;
  set.path = file;
  set.sha256 = sha256_hex(bytes);
  set.version = "sha256:" + set.sha256.substr(0, 12);
  std::string format = opts.format.empty() ? "auto" : lower_trim(opts.format);
  bool known = format == "auto";
  for (const auto& f : prompt_format_registry()) known = known || f.name == format;
  if (!known) return invalid_argument("unknown prompt format '" + opts.format + "' (safeshrink list prompt-formats)");
  const bool jsonl = format == "jsonl" || format == "builtin" ||
                     (format == "auto" && (ends_with_ci(file, ".jsonl") || ends_with_ci(file, ".json")));
  if (jsonl) {
    set.name = format == "builtin" ? "builtin" : stem_of(file);
    SS_RETURN_IF_ERROR(load_jsonl(bytes, file, opts, &set));
  } else {
    SS_RETURN_IF_ERROR(load_csv(bytes, file, opts, format, &set));
  }
  if (set.prompts.empty()) return invalid_argument(file + ": no prompts (after filters and skipped rows)");
  return set;
}

Result<PromptSet> load_prompt_set(const std::string& source, const PromptLoadOptions& opts_in) {
  PromptLoadOptions opts = opts_in;
  std::string path = source;
  bool builtin = false;
  if (source == "builtin" || source == "builtin-v1") {
    path = data_dir() + "/prompts/builtin-v1.jsonl";
    builtin = true;
    opts.format = "builtin";
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (builtin)
      return not_found(path + ": the built-in prompt set is missing (set SAFESHRINK_DATA to the data/ folder)");
    return not_found(path + ": cannot open the prompt set");
  }
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) return io_error(path + ": cannot read");
  if (static_cast<uint64_t>(size) > opts.max_file_bytes)
    return corrupt(path, 0, "prompt set size", "at most " + std::to_string(opts.max_file_bytes) + " bytes",
                   std::to_string(size) + " bytes");
  f.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (size > 0 && !f.read(bytes.data(), size)) return io_error(path + ": read failed");
  SS_ASSIGN_OR_RETURN(PromptSet set, parse_prompt_set(bytes, path, opts));
  if (builtin) {
    set.name = "builtin";
    set.version = "v1";
  }
  return set;
}

}  // namespace ss

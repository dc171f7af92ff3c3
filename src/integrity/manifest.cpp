// Manifests of model files: SHA-256 of every file under a path (OpenSSL EVP, streamed, files hashed
// in parallel on the thread pool, shard digests for files larger than the shard size), serialized
// as an in-toto Statement v1 whose predicate follows the OpenSSF model-signing v1.0 shape, and the
// comparison of two manifests (missing / extra / changed). Not here: signing (signature.cpp) and
// printing (tools/cli/cmd_manifest.cpp). To record one more fact per file: a field in FileDigest,
// written in manifest_to_json and read back in manifest_from_json.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "safeshrink/integrity.h"
#include "safeshrink/thread_pool.h"

namespace ss {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr size_t kReadChunk = 1u << 20;
constexpr const char* kStatementType = "https://in-toto.io/Statement/v1";
constexpr const char* kPredicateType = "https://model_signing/signature/v1.0";

std::string to_hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}

struct EvpDigest {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EvpDigest() { EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr); }
  ~EvpDigest() { EVP_MD_CTX_free(ctx); }
  EvpDigest(const EvpDigest&) = delete;
  EvpDigest& operator=(const EvpDigest&) = delete;
  void update(const void* p, size_t n) { EVP_DigestUpdate(ctx, p, n); }
  std::string finish_hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);  // ready for the next shard
    return to_hex(md, len);
  }
};

bool is_hex_digest(const std::string& s) {
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_safe_relative(const std::string& p) {
  if (p.empty() || p[0] == '/' || p.find('\\') != std::string::npos || p.find('\0') != std::string::npos) return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string::npos) slash = p.size();
    std::string part = p.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

// One pass over the file: the whole-file digest and, when sharded, the digest of each shard.
Status hash_one_file(const std::string& full, uint64_t shard_bytes, FileDigest* out) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(full.c_str(), "rb"), &std::fclose);
  if (!f) return io_error("cannot open " + full);
  std::vector<unsigned char> buf(kReadChunk);
  EvpDigest whole, shard;
  const bool sharded = shard_bytes > 0 && out->size > shard_bytes;
  uint64_t pos = 0, shard_begin = 0;
  for (;;) {
    size_t want = buf.size();
    if (sharded) want = static_cast<size_t>(std::min<uint64_t>(want, shard_begin + shard_bytes - pos));
    size_t got = std::fread(buf.data(), 1, want, f.get());
    if (got == 0) break;
    whole.update(buf.data(), got);
    if (sharded) {
      shard.update(buf.data(), got);
      if (pos + got == shard_begin + shard_bytes) {
        out->shards.push_back({shard_begin, pos + got, shard.finish_hex()});
        shard_begin = pos + got;
      }
    }
    pos += got;
  }
  if (std::ferror(f.get())) return io_error("read error in " + full);
  if (pos != out->size) return io_error(full + ": size changed while hashing");
  if (sharded && pos > shard_begin) out->shards.push_back({shard_begin, pos, shard.finish_hex()});
  out->sha256 = whole.finish_hex();
  return ok_status();
}

struct FileToHash {
  std::string full;
  FileDigest digest;
};

Result<std::vector<FileToHash>> list_files(const std::string& path, const ManifestOptions& opts,
                                           std::string* root_name) {
  std::error_code ec;
  fs::path root(path);
  auto st = fs::symlink_status(root, ec);
  if (ec) return not_found(path + ": " + ec.message());
  if (fs::is_symlink(st)) return invalid_argument(path + ": is a symlink (refused)");
  std::vector<FileToHash> files;
  fs::path abs = fs::absolute(root, ec).lexically_normal();
  *root_name = abs.has_filename() ? abs.filename().string() : abs.parent_path().filename().string();
  if (fs::is_regular_file(st)) {
    FileToHash f;
    f.full = path;
    f.digest.path = root.filename().string();
    f.digest.size = fs::file_size(root, ec);
    if (ec) return io_error(path + ": " + ec.message());
    files.push_back(std::move(f));
    return files;
  }
  if (!fs::is_directory(st)) return invalid_argument(path + ": neither a regular file nor a folder");
  auto ignored = [&](const std::string& name) {
    return std::find(opts.ignore.begin(), opts.ignore.end(), name) != opts.ignore.end();
  };
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) return io_error(path + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return io_error(path + ": " + ec.message());
    const fs::path p = it->path();
    const std::string name = p.filename().string();
    auto est = it->symlink_status(ec);
    if (ec) return io_error(p.string() + ": " + ec.message());
    if (ignored(name)) {
      if (fs::is_directory(est)) it.disable_recursion_pending();
      continue;
    }
    if (fs::is_symlink(est)) return invalid_argument(p.string() + ": is a symlink (refused)");
    if (fs::is_directory(est)) continue;
    if (!fs::is_regular_file(est)) return invalid_argument(p.string() + ": not a regular file (refused)");
    std::string rel = p.lexically_relative(root).generic_string();
    if (!is_safe_relative(rel)) return invalid_argument(p.string() + ": path escapes the folder (refused)");
    FileToHash f;
    f.full = p.string();
    f.digest.path = rel;
    f.digest.size = fs::file_size(p, ec);
    if (ec) return io_error(p.string() + ": " + ec.message());
    files.push_back(std::move(f));
  }
  std::sort(files.begin(), files.end(), [](const FileToHash& a, const FileToHash& b) { return a.digest.path < b.digest.path; });
  return files;
}

}  // namespace

std::string sha256_hex(const void* data, size_t n) {
  EvpDigest d;
  d.update(data, n);
  return d.finish_hex();
}

Result<std::string> sha256_file(const std::string& path) {
  std::error_code ec;
  FileDigest d;
  d.size = fs::file_size(path, ec);
  if (ec) return not_found(path + ": " + ec.message());
  SS_RETURN_IF_ERROR(hash_one_file(path, 0, &d));
  return d.sha256;
}

Result<Manifest> build_manifest(const std::string& path, const ManifestOptions& opts) {
  Manifest m;
  m.shard_bytes = opts.shard_bytes;
  m.ignore = opts.ignore;
  SS_ASSIGN_OR_RETURN(std::vector<FileToHash> files, list_files(path, opts, &m.root_name));
  // Largest files first so one big file does not start last and hold up the rest.
  std::vector<size_t> order(files.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return files[a].digest.size > files[b].digest.size; });
  std::vector<Status> status(files.size());
  ThreadPool& pool = opts.pool ? *opts.pool : default_pool();
  // Grain 1 and chunks of one file each would still give each thread a contiguous run; instead
  // every thread pulls the next file from a shared counter.
  std::mutex mu;
  size_t next = 0;
  pool.parallel_for(pool.size(), [&](int64_t, int64_t, int) {
    for (;;) {
      size_t k;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next >= order.size()) return;
        k = order[next++];
      }
      status[k] = hash_one_file(files[k].full, opts.shard_bytes, &files[k].digest);
    }
  });
  for (size_t k = 0; k < files.size(); ++k) {
    SS_RETURN_IF_ERROR(status[k]);
    m.files.push_back(std::move(files[k].digest));
  }
  return m;
}

std::string manifest_to_json(const Manifest& m) {
  json subjects = json::array();
  json resources = json::array();
  for (const auto& f : m.files) {
    subjects.push_back({{"name", f.path}, {"digest", {{"sha256", f.sha256}}}});
    json r = {{"name", f.path}, {"algorithm", "sha256"}, {"digest", f.sha256}, {"size", f.size}};
    if (!f.shards.empty()) {
      json shards = json::array();
      for (const auto& s : f.shards) shards.push_back({{"begin", s.begin}, {"end", s.end}, {"digest", s.sha256}});
      r["shards"] = shards;
    }
    resources.push_back(r);
  }
  json statement = {
      {"_type", kStatementType},
      {"subject", subjects},
      {"predicateType", kPredicateType},
      {"predicate",
       {{"root_name", m.root_name},
        {"serialization",
         {{"method", "files"},
          {"hash_type", "sha256"},
          {"allow_symlinks", false},
          {"ignore_paths", m.ignore},
          {"shard_size", m.shard_bytes}}},
        {"resources", resources}}}};
  // File names that are not UTF-8 are written with U+FFFD, so they can never verify (fail closed).
  return statement.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<Manifest> manifest_from_json(std::string_view json_text) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  auto bad = [](const std::string& what) { return corrupt("manifest", 0, what, "in-toto Statement v1", "something else"); };
  if (j.is_discarded() || !j.is_object()) return bad("JSON document");
  // Every field is type-checked before use: nlohmann's value()/get() throw on a wrong type.
  auto string_field = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  if (string_field("_type") != kStatementType) return bad("_type");
  if (string_field("predicateType") != kPredicateType) return bad("predicateType");
  const json& pred = j["predicate"];
  if (!pred.is_object() || !pred.contains("resources") || !pred["resources"].is_array()) return bad("predicate.resources");
  Manifest m;
  if (pred.contains("root_name") && pred["root_name"].is_string()) m.root_name = pred["root_name"];
  if (pred.contains("serialization") && pred["serialization"].is_object()) {
    const json& ser = pred["serialization"];
    if (ser.contains("shard_size") && ser["shard_size"].is_number_unsigned()) m.shard_bytes = ser["shard_size"];
    if (ser.contains("ignore_paths") && ser["ignore_paths"].is_array())
      for (const auto& s : ser["ignore_paths"])
        if (s.is_string()) m.ignore.push_back(s);
  }
  std::map<std::string, std::string> subject_digest;
  if (j.contains("subject") && j["subject"].is_array())
    for (const auto& s : j["subject"])
      if (s.is_object() && s.contains("name") && s["name"].is_string() && s.contains("digest") && s["digest"].is_object() &&
          s["digest"].contains("sha256") && s["digest"]["sha256"].is_string())
        subject_digest[s["name"]] = s["digest"]["sha256"];
  for (const auto& r : pred["resources"]) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("digest") || !r["digest"].is_string())
      return bad("resource entry");
    FileDigest f;
    f.path = r["name"];
    f.sha256 = r["digest"];
    if (!is_safe_relative(f.path)) return corrupt("manifest", 0, "resource name", "a relative path inside the folder", f.path);
    if (!is_hex_digest(f.sha256)) return corrupt("manifest", 0, "digest of " + f.path, "64 lower-case hex digits", f.sha256);
    auto sd = subject_digest.find(f.path);
    if (sd == subject_digest.end() || sd->second != f.sha256)
      return corrupt("manifest", 0, "subject of " + f.path, "the resource's digest", sd == subject_digest.end() ? "absent" : sd->second);
    if (r.contains("size") && r["size"].is_number_unsigned()) f.size = r["size"];
    if (r.contains("shards") && r["shards"].is_array())
      for (const auto& s : r["shards"]) {
        if (!s.is_object() || !s.contains("digest") || !s["digest"].is_string() || !is_hex_digest(s["digest"]))
          return bad("shard of " + f.path);
        auto u64_field = [&](const char* key) {
          return s.contains(key) && s[key].is_number_unsigned() ? s[key].get<uint64_t>() : uint64_t{0};
        };
        f.shards.push_back({u64_field("begin"), u64_field("end"), s["digest"]});
      }
    m.files.push_back(std::move(f));
  }
  if (subject_digest.size() != m.files.size()) return bad("subject list (one per resource)");
  std::sort(m.files.begin(), m.files.end(), [](const FileDigest& a, const FileDigest& b) { return a.path < b.path; });
  return m;
}

ManifestComparison compare_manifests(const Manifest& expected, const Manifest& actual) {
  ManifestComparison c;
  std::map<std::string, const FileDigest*> want, have;
  for (const auto& f : expected.files) want[f.path] = &f;
  for (const auto& f : actual.files) have[f.path] = &f;
  for (const auto& [path, f] : want) {
    auto it = have.find(path);
    if (it == have.end()) {
      c.mismatches.push_back({path, "missing", f->sha256, ""});
    } else {
      ++c.files_checked;
      if (it->second->sha256 != f->sha256) c.mismatches.push_back({path, "changed", f->sha256, it->second->sha256});
    }
  }
  for (const auto& [path, f] : have)
    if (!want.count(path)) c.mismatches.push_back({path, "extra", "", f->sha256});
  std::sort(c.mismatches.begin(), c.mismatches.end(),
            [](const ManifestMismatch& a, const ManifestMismatch& b) { return a.path < b.path; });
  return c;
}

Result<ManifestComparison> verify_manifest(const std::string& path, const Manifest& expected, ThreadPool* pool) {
  ManifestOptions opts;
  opts.shard_bytes = expected.shard_bytes;
  opts.ignore = expected.ignore;
  opts.pool = pool;
  SS_ASSIGN_OR_RETURN(Manifest actual, build_manifest(path, opts));
  return compare_manifests(expected, actual);
}

Result<ManifestComparison> verify_pin(const std::string& path, std::string_view pin) {
  constexpr std::string_view prefix = "sha256:";
  if (pin.substr(0, prefix.size()) != prefix) return invalid_argument("pin must be sha256:<64 hex digits>");
  std::string want(pin.substr(prefix.size()));
  std::transform(want.begin(), want.end(), want.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (!is_hex_digest(want)) return invalid_argument("pin must be sha256:<64 hex digits>, got " + std::string(pin));
  std::error_code ec;
  auto st = fs::symlink_status(path, ec);
  if (ec) return not_found(path + ": " + ec.message());
  if (!fs::is_regular_file(st)) return invalid_argument(path + ": a pin checks one regular file (not a folder or symlink)");
  SS_ASSIGN_OR_RETURN(std::string got, sha256_file(path));
  ManifestComparison c;
  c.files_checked = 1;
  if (got != want) c.mismatches.push_back({fs::path(path).filename().string(), "changed", want, got});
  return c;
}

}  // namespace ss

// Calibration capture (include/safeshrink/calibration.h): tokenizes a text/JSONL source, samples
// fixed-seed windows, runs a copy of the model with the linear observer set and accumulates per
// linear input sum x^2, sum |x| and (optionally) X^T X in double (OpenBLAS dsyrk). Also the JSON
// activation-statistics writer/reader. Not here: any use of the statistics (compress/).
// To add one more statistic: accumulate it in Accumulator::add and carry it through the JSON I/O.
#include "safeshrink/calibration.h"

#include <cblas.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "safeshrink/model.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/tokenizer.h"

namespace ss {

const LinearInputStats* Calibration::find(std::string_view tensor) const {
  for (const auto& l : linears)
    if (l.tensor == tensor) return &l;
  return nullptr;
}

namespace {

constexpr int64_t kMaxFeatures = int64_t{1} << 20;    // k cap for sum vectors
constexpr int64_t kMaxHessianFeatures = 32768;         // k cap for X^T X (8 GiB of doubles)
constexpr uint64_t kMaxSourceBytes = uint64_t{1} << 31; // calibration text cap
constexpr uint64_t kMaxStatsFileBytes = uint64_t{1} << 34;

constexpr const char* kBuiltinText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big red ball under a tree. She ran to the ball and picked it up. "
    "The sun was shining and the birds were singing. Lily smiled and threw the ball to her friend Tom. "
    "Tom laughed and caught it. They played together until the sky turned orange and it was time to go home. "
    "The history of science is the study of how people came to understand the natural world. "
    "Water boils at one hundred degrees Celsius at sea level, and the Earth orbits the Sun once a year. "
    "To bake bread, mix flour, water, salt and yeast, let the dough rise, then bake it in a hot oven.\n";

Result<std::string> read_file_bytes(const std::string& path, uint64_t cap) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found("cannot open '" + path + "'");
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) return io_error("cannot size '" + path + "'");
  if (static_cast<uint64_t>(size) > cap)
    return corrupt(path, 0, "file size", "<= " + std::to_string(cap), std::to_string(size));
  f.seekg(0);
  std::string s(static_cast<size_t>(size), '\0');
  if (size > 0 && !f.read(s.data(), size)) return io_error("cannot read '" + path + "'");
  return s;
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The text of a source: plain text as is; JSONL lines' "text" fields joined by blank lines.
Result<std::string> source_text(const std::string& path, const std::string& bytes) {
  if (!ends_with(path, ".jsonl") && !ends_with(path, ".json")) return bytes;
  std::string text;
  std::istringstream in(bytes);
  std::string line;
  int64_t line_no = 0;
  uint64_t offset = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const uint64_t line_offset = offset;
    offset += line.size() + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string())
      return corrupt(path, line_offset, "JSONL line " + std::to_string(line_no), "an object with a \"text\" string",
                     "something else");
    if (!text.empty()) text += "\n\n";
    text += j["text"].get<std::string>();
  }
  return text;
}

// Statistics of one input, shared by the linears that read the same activations (q/k/v, gate/up).
struct Accumulator {
  int64_t k = 0, rows = 0;
  std::vector<double> sum_sq, sum_abs, xtx;  // xtx: upper triangle filled during capture
  std::vector<double> scratch;

  void add(const float* x, int64_t n, bool hessian) {
    rows += n;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k; ++i) {
        const double v = x[r * k + i];
        sum_sq[i] += v * v;
        sum_abs[i] += std::fabs(v);
      }
    if (!hessian) return;
    scratch.resize(static_cast<size_t>(n * k));
    for (int64_t i = 0; i < n * k; ++i) scratch[i] = x[i];
    // xtx += X^T X, X (n x k) row-major; upper triangle.
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(k), static_cast<blasint>(n), 1.0,
                scratch.data(), static_cast<blasint>(k), 1.0, xtx.data(), static_cast<blasint>(k));
  }
};

}  // namespace

Result<std::string> sha256_file_hex(const std::string& path) {
  SS_ASSIGN_OR_RETURN(std::string bytes, read_file_bytes(path, kMaxSourceBytes));
  return sha256_hex(bytes);
}

Result<Calibration> capture_calibration_tokens(const LlamaModel& model,
                                               const std::vector<std::vector<int32_t>>& windows,
                                               const CalibrationSpec& spec, const std::string& source_sha256,
                                               ThreadPool* pool) {
  (void)pool;  // the forward uses the default pool
  if (windows.empty()) return invalid_argument("capture_calibration: no token windows");
  LlamaModel observed = model;  // copies share the weights; the observer stays on the copy
  std::map<std::string, std::shared_ptr<Accumulator>> by_name;
  std::vector<std::string> order;
  const float* last_x = nullptr;
  int64_t last_rows = -1, last_k = -1;
  std::shared_ptr<Accumulator> last_acc;
  Status failure;
  observed.set_linear_observer([&](const std::string& name, const float* x, int64_t rows, int64_t k) {
    if (!failure.ok()) return;
    auto it = by_name.find(name);
    const bool same_input = x == last_x && rows == last_rows && k == last_k && last_acc;
    if (it == by_name.end()) {
      if (k <= 0 || k > kMaxFeatures || (spec.hessian && k > kMaxHessianFeatures)) {
        failure = invalid_argument("capture_calibration: '" + name + "' has " + std::to_string(k) +
                                   " input features, over the cap");
        return;
      }
      std::shared_ptr<Accumulator> acc;
      if (same_input) {
        acc = last_acc;  // the same activations feed this linear: share, and skip re-accumulating
      } else {
        acc = std::make_shared<Accumulator>();
        acc->k = k;
        acc->sum_sq.assign(k, 0.0);
        acc->sum_abs.assign(k, 0.0);
        if (spec.hessian) acc->xtx.assign(static_cast<size_t>(k * k), 0.0);
      }
      it = by_name.emplace(name, acc).first;
      order.push_back(name);
      if (!same_input) acc->add(x, rows, spec.hessian);
    } else if (!(same_input && it->second == last_acc)) {
      if (it->second->k != k) {
        failure = internal_error("capture_calibration: '" + name + "' changed width");
        return;
      }
      it->second->add(x, rows, spec.hessian);
    }
    last_x = x;
    last_rows = rows;
    last_k = k;
    last_acc = it->second;
  });
  int64_t done = 0;
  for (const auto& w : windows) {
    if (w.empty()) continue;
    KvCache cache = observed.new_cache(static_cast<int64_t>(w.size()));
    last_x = nullptr;
    last_acc.reset();
    SS_RETURN_IF_ERROR(observed.forward(w.data(), static_cast<int64_t>(w.size()), cache, nullptr));
    SS_RETURN_IF_ERROR(failure);
    ++done;
  }
  if (done == 0) return invalid_argument("capture_calibration: every token window is empty");
  Calibration calib;
  calib.spec = spec;
  calib.spec.n_samples = done;
  calib.sha256 = source_sha256;
  for (const auto& name : order) {
    const Accumulator& a = *by_name[name];
    LinearInputStats s;
    s.tensor = name;
    s.k = a.k;
    s.rows = a.rows;
    s.sum_sq = a.sum_sq;
    s.sum_abs = a.sum_abs;
    if (spec.hessian) {
      s.xtx = a.xtx;
      for (int64_t i = 0; i < a.k; ++i)
        for (int64_t j = 0; j < i; ++j) s.xtx[i * a.k + j] = s.xtx[j * a.k + i];
    }
    calib.linears.push_back(std::move(s));
  }
  return calib;
}

Result<Calibration> capture_calibration(const LlamaModel& model, const Tokenizer& tokenizer,
                                        const CalibrationSpec& spec, ThreadPool* pool) {
  if (spec.n_samples <= 0) return invalid_argument("calibration: n_samples has to be positive");
  if (spec.seq_len <= 0) return invalid_argument("calibration: seq_len has to be positive");
  std::string bytes, text;
  if (spec.source.empty()) {
    bytes = kBuiltinText;
    text = bytes;
  } else {
    SS_ASSIGN_OR_RETURN(bytes, read_file_bytes(spec.source, kMaxSourceBytes));
    SS_ASSIGN_OR_RETURN(text, source_text(spec.source, bytes));
  }
  SS_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, tokenizer.encode(text, false, false));
  if (tokens.empty()) return invalid_argument("calibration: the source has no tokens");
  const int64_t max_ctx = model.config().max_position > 0 ? model.config().max_position : spec.seq_len;
  const int64_t len = std::min<int64_t>({spec.seq_len, static_cast<int64_t>(tokens.size()), max_ctx});
  Rng rng(spec.seed);
  std::vector<std::vector<int32_t>> windows;
  const uint64_t starts = static_cast<uint64_t>(tokens.size()) - static_cast<uint64_t>(len) + 1;
  for (int64_t s = 0; s < spec.n_samples; ++s) {
    const int64_t start = static_cast<int64_t>(rng.below(starts));
    windows.emplace_back(tokens.begin() + start, tokens.begin() + start + len);
  }
  SS_ASSIGN_OR_RETURN(Calibration c, capture_calibration_tokens(model, windows, spec, sha256_hex(bytes), pool));
  c.spec.source = spec.source.empty() ? "builtin" : spec.source;
  return c;
}

Status write_activation_stats(const Calibration& calib, const std::string& path) {
  nlohmann::json j;
  j["format"] = "safeshrink-activation-stats";
  j["version"] = 1;
  j["spec"] = {{"source", calib.spec.source}, {"n_samples", calib.spec.n_samples}, {"seq_len", calib.spec.seq_len},
               {"seed", calib.spec.seed}, {"hessian", calib.spec.hessian}};
  j["sha256"] = calib.sha256;
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& l : calib.linears) {
    nlohmann::json e = {{"tensor", l.tensor}, {"k", l.k}, {"rows", l.rows}, {"sum_sq", l.sum_sq}, {"sum_abs", l.sum_abs}};
    if (!l.xtx.empty()) e["xtx"] = l.xtx;
    arr.push_back(std::move(e));
  }
  j["linears"] = std::move(arr);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error("cannot write '" + path + "'");
  f << j.dump();
  if (!f) return io_error("write failed for '" + path + "'");
  return ok_status();
}

namespace {

Status read_doubles(const std::string& path, const nlohmann::json& e, const char* key, uint64_t expected,
                    bool optional, std::vector<double>* out) {
  auto it = e.find(key);
  if (it == e.end()) {
    if (optional) return ok_status();
    return corrupt(path, 0, std::string("linear.") + key, "present", "missing");
  }
  if (!it->is_array() || it->size() != expected)
    return corrupt(path, 0, std::string("linear.") + key, "array of " + std::to_string(expected),
                   it->is_array() ? std::to_string(it->size()) + " elements" : "not an array");
  out->reserve(expected);
  for (const auto& v : *it) {
    if (!v.is_number()) return corrupt(path, 0, std::string("linear.") + key, "numbers", "a non-number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) return corrupt(path, 0, std::string("linear.") + key, "finite numbers", "non-finite");
    out->push_back(d);
  }
  return ok_status();
}

}  // namespace

Result<Calibration> read_activation_stats(const std::string& path) {
  SS_ASSIGN_OR_RETURN(std::string bytes, read_file_bytes(path, kMaxStatsFileBytes));
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt(path, 0, "activation stats", "a JSON object", "not JSON");
  if (j.value("format", std::string()) != "safeshrink-activation-stats")
    return corrupt(path, 0, "format", "safeshrink-activation-stats", j.value("format", std::string("(none)")));
  if (!j.contains("linears") || !j["linears"].is_array())
    return corrupt(path, 0, "linears", "an array", "missing");
  Calibration c;
  if (j.contains("spec") && j["spec"].is_object()) {
    const auto& s = j["spec"];
    c.spec.source = s.value("source", std::string());
    c.spec.n_samples = s.value("n_samples", int64_t{0});
    c.spec.seq_len = s.value("seq_len", int64_t{0});
    c.spec.seed = s.value("seed", uint64_t{0});
    c.spec.hessian = s.value("hessian", false);
  }
  c.sha256 = j.value("sha256", std::string());
  for (const auto& e : j["linears"]) {
    if (!e.is_object() || !e.contains("tensor") || !e["tensor"].is_string() || !e.contains("k") ||
        !e["k"].is_number_integer() || !e.contains("rows") || !e["rows"].is_number_integer())
      return corrupt(path, 0, "linear", "an object with tensor, k, rows", "something else");
    LinearInputStats s;
    s.tensor = e["tensor"].get<std::string>();
    s.k = e["k"].get<int64_t>();
    s.rows = e["rows"].get<int64_t>();
    if (s.k <= 0 || s.k > kMaxFeatures)
      return corrupt(path, 0, "linear.k", "1.." + std::to_string(kMaxFeatures), std::to_string(s.k));
    if (s.rows < 0) return corrupt(path, 0, "linear.rows", ">= 0", std::to_string(s.rows));
    SS_RETURN_IF_ERROR(read_doubles(path, e, "sum_sq", static_cast<uint64_t>(s.k), false, &s.sum_sq));
    SS_RETURN_IF_ERROR(read_doubles(path, e, "sum_abs", static_cast<uint64_t>(s.k), false, &s.sum_abs));
    if (e.contains("xtx")) {
      if (s.k > kMaxHessianFeatures)
        return corrupt(path, 0, "linear.k (with xtx)", "<= " + std::to_string(kMaxHessianFeatures), std::to_string(s.k));
      SS_RETURN_IF_ERROR(read_doubles(path, e, "xtx", static_cast<uint64_t>(s.k * s.k), true, &s.xtx));
    }
    c.linears.push_back(std::move(s));
  }
  return c;
}

}  // namespace ss

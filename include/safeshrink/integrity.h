// Supply-chain integrity: manifests of model files (SHA-256, in-toto Statement v1), Ed25519
// signatures over them (DSSE envelope, OpenSSF model-signing v1.0 payload shape), static scanners
// for pickle / PyTorch zip / safetensors / GGUF files and chat templates, and provenance of a
// derived (quantized or pruned) file against its base. Everything here reads files and never runs
// them: no unpickling, no Jinja evaluation. Not here: printing and exit codes (tools/cli), parsing
// of the formats themselves (formats.h; the scanners reuse those parsers and add their own checks).
// To add a scanner: a scan_<kind>_bytes function below and one row in scanner_registry().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

class ThreadPool;

// ---------------------------------------------------------------------------------------------
// Hashing and manifests (src/integrity/manifest.cpp)
// ---------------------------------------------------------------------------------------------

// Lower-case hex SHA-256 of bytes (OpenSSL EVP).
std::string sha256_hex(const void* data, size_t n);
// Streams a file through SHA-256.
Result<std::string> sha256_file(const std::string& path);

constexpr uint64_t kDefaultShardBytes = 1ull << 30;  // 1 GiB: files larger get per-shard digests too

struct ManifestOptions {
  // Files larger than this also get one digest per shard [k*shard_bytes, (k+1)*shard_bytes);
  // 0 = no shard digests. The per-file digest is always the plain SHA-256 of the whole file.
  uint64_t shard_bytes = kDefaultShardBytes;
  // File or folder names (one path component, exact match) left out of a folder's manifest.
  std::vector<std::string> ignore = {".git", ".gitattributes", ".github", ".gitignore", "__pycache__"};
  ThreadPool* pool = nullptr;  // nullptr = default_pool(); files are hashed in parallel
};

struct ShardDigest {
  uint64_t begin = 0, end = 0;  // byte range [begin, end)
  std::string sha256;
};

struct FileDigest {
  std::string path;  // relative to the manifest root, '/' separated; the file name for one file
  uint64_t size = 0;
  std::string sha256;               // plain SHA-256 of the whole file (what sha256sum prints)
  std::vector<ShardDigest> shards;  // empty unless size > shard_bytes > 0
};

struct Manifest {
  std::string root_name;  // last component of the path the manifest was made from
  uint64_t shard_bytes = kDefaultShardBytes;
  std::vector<std::string> ignore;
  std::vector<FileDigest> files;  // sorted by path
};

// A file or a folder (walked recursively). Symlinks anywhere under PATH, and names that would
// escape the folder, are refused (INVALID_ARGUMENT naming the path).
Result<Manifest> build_manifest(const std::string& path, const ManifestOptions& opts = {});
// in-toto Statement v1 JSON (2-space indent, stable key order).
std::string manifest_to_json(const Manifest& m);
// Parses what manifest_to_json wrote; checks digests are 64 hex chars and paths are relative and
// do not contain "..".
Result<Manifest> manifest_from_json(std::string_view json_text);

struct ManifestMismatch {
  std::string path;
  std::string kind;      // "missing", "extra", "changed"
  std::string expected;  // digest (or size) expected; empty for "extra"
  std::string actual;    // digest found; empty for "missing"
};
struct ManifestComparison {
  std::vector<ManifestMismatch> mismatches;  // sorted by path
  size_t files_checked = 0;
  bool ok() const { return mismatches.empty(); }
};
ManifestComparison compare_manifests(const Manifest& expected, const Manifest& actual);
// Rebuilds the manifest of PATH with the expected manifest's ignore list and shard size, compares.
Result<ManifestComparison> verify_manifest(const std::string& path, const Manifest& expected,
                                           ThreadPool* pool = nullptr);
// PIN is "sha256:<64 hex>"; PATH must be one regular file.
Result<ManifestComparison> verify_pin(const std::string& path, std::string_view pin);

// ---------------------------------------------------------------------------------------------
// Signatures (src/integrity/signature.cpp): Ed25519 over a DSSE envelope of the manifest.
// ---------------------------------------------------------------------------------------------

// Writes a new Ed25519 key pair as PEM (private PKCS#8 with mode 0600, public SubjectPublicKeyInfo).
Status generate_ed25519_key(const std::string& private_pem_path, const std::string& public_pem_path);
// DSSE envelope JSON {payloadType, payload (base64 of the statement), signatures[{keyid, sig}]}.
// The signature is Ed25519 over DSSE's PAE(payloadType, payload).
Result<std::string> sign_statement(const std::string& statement_json, const std::string& private_pem_path);
// Checks the envelope's signature with the public key; returns the signed statement JSON.
// INTEGRITY when the signature does not verify; CORRUPT when the envelope is malformed.
Result<std::string> verify_envelope(std::string_view envelope_json, const std::string& public_pem_path);
// DSSE pre-authentication encoding: "DSSEv1 <len(type)> <type> <len(body)> <body>".
std::string dsse_pae(std::string_view payload_type, std::string_view payload);
std::string base64_encode(std::string_view bytes);
Result<std::string> base64_decode(std::string_view text);
constexpr const char* kDssePayloadType = "application/vnd.in-toto+json";

// ---------------------------------------------------------------------------------------------
// Static scanners (src/integrity/scan_*.cpp)
// ---------------------------------------------------------------------------------------------

enum class Severity : uint8_t { INFO = 0, LOW, MEDIUM, HIGH, CRITICAL };
const char* severity_name(Severity s);  // "info" ... "critical"

struct Finding {
  Severity severity = Severity::INFO;
  std::string rule;     // stable id, e.g. "pickle.global.code_execution"
  std::string file;     // the file (and member: "model.pt!archive/data.pkl")
  uint64_t offset = 0;  // byte offset in that file or member
  std::string message;
};

struct ScanReport {
  std::vector<std::string> files;  // every file scanned
  std::vector<Finding> findings;
  Severity max_severity() const;   // INFO when there are no findings
  bool has_critical() const { return max_severity() == Severity::CRITICAL; }
};

// Imports a pickle can reach, and how (for tests and reports).
struct PickleImport {
  std::string module, name;
  std::string opcode;  // "GLOBAL", "STACK_GLOBAL", "INST"
  uint64_t offset = 0;
};
struct PickleScan {
  std::vector<PickleImport> imports;
  std::vector<Finding> findings;
  int protocol = -1;  // from PROTO, -1 when absent (protocols 0 and 1)
  uint64_t opcodes = 0;
};
// Walks the opcode stream (protocols 0-5) without unpickling. Malformed or truncated streams give
// findings, never a crash. NAME is used in findings only.
PickleScan scan_pickle_bytes(const uint8_t* data, size_t n, const std::string& name);
// The verdict for one import: CRITICAL for code-execution entry points, INFO for what torch.save of
// tensors and state dicts needs, HIGH otherwise.
Severity classify_pickle_import(std::string_view module, std::string_view name);

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint64_t compressed_size = 0, size = 0;
  uint64_t data_offset = 0;  // of the entry's bytes in the archive (after the local header)
  uint32_t crc32 = 0;
};
// Central directory of a zip (zip64 included), each entry checked against its local header and the
// archive's bounds. Only STORED entries can be read (torch.save writes STORED); deflated entries
// are listed with their method so a scanner can report them.
Result<std::vector<ZipEntry>> read_zip_directory(const uint8_t* data, size_t n, const std::string& name);
uint32_t crc32_of(const uint8_t* data, size_t n);

// Findings for one file's bytes, by kind. The safetensors and GGUF scanners run our parser (whose
// first error becomes a finding) and then their own checks, which list every problem they see.
std::vector<Finding> scan_pytorch_zip_bytes(const uint8_t* data, size_t n, const std::string& name);
std::vector<Finding> scan_safetensors_bytes(const uint8_t* data, size_t n, const std::string& name);
std::vector<Finding> scan_gguf_bytes(const uint8_t* data, size_t n, const std::string& name);
// Jinja constructs that reach Python internals (CVE-2024-34359): __class__, __globals__, ...
std::vector<Finding> scan_chat_template(std::string_view text, const std::string& where);

struct ScannerInfo {
  const char* name;        // "pickle"
  const char* summary;
  const char* extensions;  // what file names it takes
};
const std::vector<ScannerInfo>& scanner_registry();

// A file (kind from magic bytes, then extension) or a folder (every file; symlinks are findings).
Result<ScanReport> scan_path(const std::string& path);
std::string scan_report_text(const ScanReport& r);
std::string scan_report_json(const ScanReport& r);
std::string scan_report_sarif(const ScanReport& r);  // SARIF 2.1.0

// ---------------------------------------------------------------------------------------------
// Provenance (src/integrity/provenance.cpp)
// ---------------------------------------------------------------------------------------------

struct ProvenanceOptions {
  // Per-block bounds are widened by this factor (scale rounding to f16, clamping at the edge of the
  // quantization grid); see docs/integrity.md for how it was chosen.
  double step_slack = 1.0;
  // A tensor is TAMPERED when more than this fraction of its weights lie outside their bound.
  double max_outside_fraction = 0.0;
  int worst_offenders = 5;  // reported per tampered tensor
};

struct WeightOffender {
  int64_t index = 0;  // flat index (row-major) in the tensor
  float base = 0, derived = 0, bound = 0;
};

struct TensorProvenance {
  std::string name;
  std::string base_dtype, derived_dtype;
  std::string status;  // "consistent", "tampered", "missing", "added", "reshaped", "unsupported"
  int64_t numel = 0;
  int64_t outside = 0;        // weights outside their bound
  int64_t pruned = 0;         // derived weights that are (a quantization of) zero where base is not
  double max_excess = 0;      // max over weights not pruned of |derived - base| / bound (> 1: outside)
  std::vector<WeightOffender> worst;
};

struct MetadataDifference {
  std::string key, base, derived;  // summaries; empty side = absent
};

struct ProvenanceReport {
  std::vector<TensorProvenance> tensors;
  std::vector<MetadataDifference> metadata;  // tokenizer, chat template, special ids, architecture
  bool consistent = true;  // no tensor tampered / missing / added / reshaped, no metadata difference
};

// BASE and DERIVED may use different naming (HF vs GGUF); HF q/k rows are permuted to GGUF's order
// before comparing (see src/formats/model_config.cpp).
Result<ProvenanceReport> check_provenance(const TensorStore& base, const TensorStore& derived,
                                          const ProvenanceOptions& opts = {});
// Error bound of each element of one quantized row: bound[i] is the largest |x - dequant[i]| an
// honest quantizer of type T could have left, from the block's own scale(s), times slack.
// Plain types (F32: 0, F16/BF16: half an ulp of the value). UNSUPPORTED for types without a rule.
Status quantization_bounds_row(DType t, const void* row, int64_t n, double slack, float* bound);
std::string provenance_report_text(const ProvenanceReport& r);
std::string provenance_report_json(const ProvenanceReport& r);

}  // namespace ss

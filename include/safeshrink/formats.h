// Model file formats: readers produce a TensorStore, writers consume one. Readers mmap and never
// copy tensor bytes; every count, length and offset is checked against the bytes that remain and
// against hard caps, and failures name file, offset, expected and actual (ss::corrupt).
// The registry (format_registry) lists every format with metadata; open_model sniffs a path.
// To add a format: a read_/write_ pair in src/formats/<name>.cpp and one row in the registry.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

struct FormatInfo {
  const char* name;        // "gguf"
  const char* summary;     // one line
  const char* extensions;  // ".gguf"
  const char* reference;   // spec or project the layout follows
  bool can_read;
  bool can_write;
};
const std::vector<FormatInfo>& format_registry();

// Hard caps shared by the parsers (a file over them is refused, not trusted).
struct ParseLimits {
  uint64_t max_tensors = 1u << 20;          // 1,048,576 tensors
  uint64_t max_kv = 1u << 20;               // metadata pairs
  uint64_t max_string = 1u << 30;           // bytes of one string
  uint64_t max_array = 1ull << 32;          // elements of one array
  uint64_t max_dims = 8;                    // dimensions of one tensor (GGUF allows 4)
  uint64_t max_header = 100ull << 20;       // safetensors JSON header bytes
  int max_nesting = 8;                      // arrays of arrays
};

// ---- GGUF v2/v3 (src/formats/gguf.cpp) ----
// store.meta holds every KV with its exact type, in file order. Reader facts go under
// "gguf.version" and "gguf.alignment" are NOT added: the KV list is the file's own.
Result<TensorStore> read_gguf(const std::string& path, const ParseLimits& limits = {});
struct GgufWriteOptions {
  uint32_t version = 3;
  uint32_t alignment = 0;  // 0 = general.alignment from meta, else 32
};
// Streams to PATH.tmp and renames; tensors in store order, each aligned.
Status write_gguf(const TensorStore& store, const std::string& path, const GgufWriteOptions& opts = {});

// ---- safetensors (src/formats/safetensors.cpp) ----
// PATH is a .safetensors file, a model.safetensors.index.json, or a folder holding either.
Result<TensorStore> read_safetensors(const std::string& path, const ParseLimits& limits = {});
// One file. Block-quantized tensors (which safetensors has no dtype for) are stored as U8
// [rows, row_bytes] with their real dtype and shape in __metadata__ ("safeshrink.dtype.<name>",
// "safeshrink.shape.<name>") so that read_safetensors restores them exactly.
Status write_safetensors(const TensorStore& store, const std::string& path);

// ---- registry ----
// Sniffs by magic bytes (files) or contents (folders: config.json + safetensors) and opens.
Result<TensorStore> open_model(const std::string& path);
// Format by name ("gguf", "safetensors") or, when empty, by the extension of path.
Status save_model(const TensorStore& store, const std::string& path, const std::string& format = "");
// "gguf", "safetensors", "hf-folder" or an error naming what the first bytes were.
Result<std::string> sniff_format(const std::string& path);

}  // namespace ss

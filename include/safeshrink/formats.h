// Model file formats: readers produce a TensorStore, writers consume one. Readers mmap and never
// copy tensor bytes; every count, length and offset is checked against the bytes that remain and
// against hard caps, and failures name file, offset, expected and actual (ss::corrupt).
// The registry (format_registry) lists every format with metadata; open_model sniffs a path.
// To add a format: a read_/write_ pair in src/formats/<name>.cpp and one row in the registry.
#pragma once

#include <cstdint>
#include <memory>
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
// The same parser over bytes already in memory (fuzzing, network, tests). NAME is used in errors
// only; store.path stays empty. Tensors point into BYTES, which they keep alive.
Result<TensorStore> read_gguf_memory(std::shared_ptr<const Buffer> bytes, const std::string& name,
                                     const ParseLimits& limits = {});
// The version field of a GGUF file (after checking the magic), whatever its value: lets a tool say
// "GGUF v1" where read_gguf only says it refuses the file.
Result<uint32_t> read_gguf_version(const std::string& path);
struct GgufWriteOptions {
  uint32_t version = 3;
  uint32_t alignment = 0;  // 0 = general.alignment from meta, else 32
};
// Streams to PATH.tmp and renames; tensors in store order, each aligned and zero-padded to the
// alignment (the last one too), KVs in store order with their exact types: reading a llama.cpp
// file and writing it back gives the same bytes. The alignment is opts.alignment, else
// general.alignment from meta, else 32; when opts.alignment disagrees with meta, the written
// general.alignment KV says opts.alignment (appended when meta has none and it is not 32).
// INVALID_ARGUMENT (naming the tensor or key) for a dtype without a GGUF type (u8, bool), more than
// 4 dimensions, bytes that do not match dtype x shape, or a MetaValue whose parts disagree.
Status write_gguf(const TensorStore& store, const std::string& path, const GgufWriteOptions& opts = {});

// ---- safetensors (src/formats/safetensors.cpp) ----
// PATH is a .safetensors file, a model.safetensors.index.json, or a folder holding either.
Result<TensorStore> read_safetensors(const std::string& path, const ParseLimits& limits = {});
// The one safetensors parser, over bytes already in memory (read_safetensors maps the file and calls
// it; the fuzz target calls it directly). NAME is used in errors only; store.path stays empty.
// Tensors point into BYTES (zero copy) and keep it alive.
Result<TensorStore> read_safetensors_memory(std::shared_ptr<const Buffer> bytes, const std::string& name,
                                            const ParseLimits& limits = {});
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

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

// ---- GPTQ / AWQ packed safetensors (src/formats/gptq_awq.cpp) ----
// The layouts of GPTQModel/AutoGPTQ and AutoAWQ, re-stated from their published format:
// GPTQ: <prefix>.qweight int32 (in*bits/32, out): codes packed along in as a little-endian bit
//   stream per column (2/4/8 bits: 32/bits per word; 3 bits: 32 values in 3 words);
//   <prefix>.qzeros int32 (n_groups, out*bits/32) packed the same way along out; v1
//   (AutoGPTQ "gptq") stores zero-1, v2 (GPTQModel "gptq_v2") the zero itself;
//   <prefix>.scales f16 (n_groups, out); <prefix>.g_idx int32 (in).
// AWQ GEMM (4 bits): <prefix>.qweight int32 (in, out/8), each word holds out-columns
//   8c + [0, 2, 4, 6, 1, 3, 5, 7] in nibbles 0..7; qzeros int32 (n_groups, out/8) likewise;
//   scales f16 (n_groups, out); no g_idx (groups are contiguous).
// The reader dequantizes every packed linear to F32 "<prefix>.weight" at load (the engine has no
// packed-int kernels yet), keeping HF names, so LlamaModel binds the store directly.
struct GroupQuantizedLinear;
enum class PackedQuantFormat : uint8_t { GPTQ_V1, GPTQ_V2, AWQ_GEMM };
const char* packed_quant_format_name(PackedQuantFormat f);  // "gptq", "gptq_v2", "awq"

// Tensors "<prefix>.qweight", ".qzeros", ".scales" and (GPTQ) ".g_idx". INVALID_ARGUMENT when the
// shape cannot be packed (in or out not a multiple of the pack width, AWQ with bits != 4 or with
// an act-order g_idx, v1 with an asymmetric zero of 0, which v1 cannot store).
Result<std::vector<Tensor>> pack_quantized_linear(const GroupQuantizedLinear& q, const std::string& prefix,
                                                  PackedQuantFormat format);
// The inverse, from a store holding those tensors; FILE names the source in errors. Every shape
// is checked against in/out/bits/group_size before a byte is read.
Result<GroupQuantizedLinear> unpack_quantized_linear(const TensorStore& store, const std::string& prefix,
                                                     PackedQuantFormat format, int bits, int64_t group_size,
                                                     const std::string& file);

struct PackedFolderOptions {
  PackedQuantFormat format = PackedQuantFormat::GPTQ_V2;
  int bits = 4;
  int64_t group_size = 128;   // -1 = per channel
  bool sym = true;
  bool desc_act = false;
  double damp = 0.01;         // recorded in quantize_config.json
};
// Writes FOLDER/model.safetensors (the packed linears plus every other tensor of REST, which
// must not hold "<prefix>.weight" of a packed linear), FOLDER/config.json (rest.meta
// "hf.config_json" plus "quantization_config") and, for GPTQ, FOLDER/quantize_config.json.
Status write_packed_quant_folder(const TensorStore& rest,
                                 const std::vector<std::pair<std::string, GroupQuantizedLinear>>& linears,
                                 const std::string& folder, const PackedFolderOptions& opts);
// Reads an HF folder whose config.json has a "quantization_config" (or quantize_config.json /
// quant_config.json): every "<prefix>.qweight" is unpacked and dequantized to F32
// "<prefix>.weight"; the other tensors are kept as stored. store.meta gets "quant.method",
// "quant.bits", "quant.group_size", "quant.checkpoint_format".
Result<TensorStore> read_packed_quant_folder(const std::string& folder, const ParseLimits& limits = {});

// ---- registry ----
// Sniffs by magic bytes (files) or contents (folders: config.json + safetensors) and opens.
Result<TensorStore> open_model(const std::string& path);
// Format by name ("gguf", "safetensors") or, when empty, by the extension of path.
Status save_model(const TensorStore& store, const std::string& path, const std::string& format = "");
// "gguf", "safetensors", "hf-folder" or an error naming what the first bytes were.
Result<std::string> sniff_format(const std::string& path);

}  // namespace ss

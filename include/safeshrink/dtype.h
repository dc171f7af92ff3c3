// The dtype table: every element or block type a tensor can hold, with its block size, bytes per
// block, GGUF type id and safetensors name. Architecture facts as data, not as switch statements.
// To add a type: one enum value (before COUNT) and one row in kDTypeTable (src/core/dtype.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "safeshrink/status.h"

namespace ss {

enum class DType : uint8_t {
  F32, F16, BF16, F64,
  I8, I16, I32, I64, U8, BOOL,
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
  Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
  COUNT
};

struct DTypeInfo {
  DType dtype;
  const char* name;              // lower case, as llama.cpp prints it: "f32", "q4_K"
  int64_t block_size;            // elements per block (1 for plain types)
  int64_t type_size;             // bytes per block
  int ggml_type;                 // GGUF/ggml type id, -1 when GGUF has none
  const char* safetensors_name;  // "F32", ... or nullptr when safetensors has none
  bool quantized;                // a block type with scales
};

const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
inline bool dtype_is_quantized(DType t) { return dtype_info(t).quantized; }

std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
std::optional<DType> dtype_from_safetensors(std::string_view name);
// Accepts llama.cpp spellings case-insensitively: "q4_k", "Q4_K", "f16", "bf16".
std::optional<DType> dtype_from_name(std::string_view name);

// Bytes of a row of n elements; an error when n is not a multiple of the block size.
Result<uint64_t> dtype_row_bytes(DType t, int64_t n);
// Bits per weight of the type (e.g. 4.5 for q4_0).
double dtype_bits_per_weight(DType t);

// Block layouts of the GGUF quantized types, byte for byte as in the GGUF spec / ggml-common.h.
// f16 fields are stored as raw uint16_t.
constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
constexpr int QK_K = 256, K_SCALE_SIZE = 12;

#pragma pack(push, 1)
struct BlockQ4_0 { uint16_t d; uint8_t qs[QK4_0 / 2]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[QK4_1 / 2]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[QK8_0]; };
struct BlockQ8_1 { uint16_t d, s; int8_t qs[QK8_1]; };  // s = d * sum(qs)
struct BlockQ2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);

}  // namespace ss

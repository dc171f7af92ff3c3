// The dtype table. One row per DType, in enum order (checked at start-up by a static test).
#include "safeshrink/dtype.h"

#include <array>
#include <cctype>
#include <string>

namespace ss {
namespace {

constexpr std::array<DTypeInfo, static_cast<size_t>(DType::COUNT)> kDTypeTable = {{
    {DType::F32, "f32", 1, 4, 0, "F32", false},
    {DType::F16, "f16", 1, 2, 1, "F16", false},
    {DType::BF16, "bf16", 1, 2, 30, "BF16", false},
    {DType::F64, "f64", 1, 8, 28, "F64", false},
    {DType::I8, "i8", 1, 1, 24, "I8", false},
    {DType::I16, "i16", 1, 2, 25, "I16", false},
    {DType::I32, "i32", 1, 4, 26, "I32", false},
    {DType::I64, "i64", 1, 8, 27, "I64", false},
    {DType::U8, "u8", 1, 1, -1, "U8", false},
    {DType::BOOL, "bool", 1, 1, -1, "BOOL", false},
    {DType::Q4_0, "q4_0", QK4_0, sizeof(BlockQ4_0), 2, nullptr, true},
    {DType::Q4_1, "q4_1", QK4_1, sizeof(BlockQ4_1), 3, nullptr, true},
    {DType::Q5_0, "q5_0", QK5_0, sizeof(BlockQ5_0), 6, nullptr, true},
    {DType::Q5_1, "q5_1", QK5_1, sizeof(BlockQ5_1), 7, nullptr, true},
    {DType::Q8_0, "q8_0", QK8_0, sizeof(BlockQ8_0), 8, nullptr, true},
    {DType::Q8_1, "q8_1", QK8_1, sizeof(BlockQ8_1), 9, nullptr, true},
    {DType::Q2_K, "q2_K", QK_K, sizeof(BlockQ2_K), 10, nullptr, true},
    {DType::Q3_K, "q3_K", QK_K, sizeof(BlockQ3_K), 11, nullptr, true},
    {DType::Q4_K, "q4_K", QK_K, sizeof(BlockQ4_K), 12, nullptr, true},
    {DType::Q5_K, "q5_K", QK_K, sizeof(BlockQ5_K), 13, nullptr, true},
    {DType::Q6_K, "q6_K", QK_K, sizeof(BlockQ6_K), 14, nullptr, true},
    {DType::Q8_K, "q8_K", QK_K, sizeof(BlockQ8_K), 15, nullptr, true},
}};

constexpr bool table_in_enum_order() {
  for (size_t i = 0; i < kDTypeTable.size(); ++i)
    if (static_cast<size_t>(kDTypeTable[i].dtype) != i) return false;
  return true;
}
static_assert(table_in_enum_order(), "kDTypeTable rows must follow the DType enum order");

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

const DTypeInfo& dtype_info(DType t) { return kDTypeTable[static_cast<size_t>(t)]; }

std::optional<DType> dtype_from_ggml(uint32_t ggml_type) {
  for (const auto& row : kDTypeTable)
    if (row.ggml_type >= 0 && static_cast<uint32_t>(row.ggml_type) == ggml_type) return row.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (const auto& row : kDTypeTable)
    if (row.safetensors_name && name == row.safetensors_name) return row.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& row : kDTypeTable)
    if (iequals(name, row.name)) return row.dtype;
  return std::nullopt;
}

Result<uint64_t> dtype_row_bytes(DType t, int64_t n) {
  const DTypeInfo& info = dtype_info(t);
  if (n < 0 || n % info.block_size != 0)
    return invalid_argument("row of " + std::to_string(n) + " elements is not a multiple of the " +
                            info.name + " block size " + std::to_string(info.block_size));
  return static_cast<uint64_t>(n / info.block_size) * static_cast<uint64_t>(info.type_size);
}

double dtype_bits_per_weight(DType t) {
  const DTypeInfo& info = dtype_info(t);
  return 8.0 * static_cast<double>(info.type_size) / static_cast<double>(info.block_size);
}

}  // namespace ss

// Reference quantizers: F32 / F16 / BF16 conversion and ggml's simple block quantizers (Q4_0 Q4_1
// Q5_0 Q5_1 Q8_0 Q8_1 Q8_K), bit-identical to ggml's quantize_row_*_ref: the same choice of scale
// (e.g. Q4_0 keeps the sign of the value with the largest magnitude, d = max / -8), the same
// rounding (truncation of x + 8.5 for Q4_0, roundf for Q8_0, the 1.5*2^23 nearest-int trick for
// Q8_K) and the same order of float operations. The K-quant weight quantizers with their scale
// searches (Q2_K .. Q6_K) live in quantize_kquants_ref.cpp and are listed in kQuantizers here. Float-to-int conversions clamp first, so NaN or
// infinite input gives some code but never undefined behaviour. To add a type: one quantize_<type>
// function and one row in kQuantizers.
#include <array>
#include <cmath>
#include <cstring>

#include "safeshrink/half.h"
#include "kernels/ref/quantize_kquants_ref.h"
#include "safeshrink/kernels.h"

// Bit-exactness needs every a*b+c rounded twice, as ggml's reference C code does: never fused.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ss::kernels {
namespace {

template <class Block>
void store_block(uint8_t* dst, int64_t i, const Block& b) {
  std::memcpy(dst + i * static_cast<int64_t>(sizeof(Block)), &b, sizeof(Block));
}

void store_u32_le(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// (int)v truncated toward zero, clamped to [lo, hi]; NaN gives lo. For v in [lo, hi + 1) this is
// exactly C's (int)v followed by MIN(hi, .), which is what ggml writes.
int truncate_clamped(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// roundf (halves away from zero), clamped to [lo, hi]; NaN gives 0.
int round_clamped(float v, int lo, int hi) {
  if (std::isnan(v)) return 0;
  const float r = std::round(v);
  if (r <= static_cast<float>(lo)) return lo;
  if (r >= static_cast<float>(hi)) return hi;
  return static_cast<int>(r);
}

// ggml's nearest_int: adding 1.5 * 2^23 leaves round-to-nearest-even(fval) in the low mantissa bits.
// Exact for |fval| <= 2^22 - 1; any other input gives a defined (meaningless) integer.
int nearest_int(float fval) {
  const float val = fval + 12582912.f;
  int32_t i;
  std::memcpy(&i, &val, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}

// The value of largest magnitude, keeping its sign (the first one on ties), as max/amax in ggml.
void signed_absmax(const float* x, int n, float* amax_out, float* max_out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  *amax_out = amax;
  *max_out = max;
}

void min_max(const float* x, int n, float* min_out, float* max_out) {
  float min = 3.402823466e+38f, max = -3.402823466e+38f;  // FLT_MAX
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  *min_out = min;
  *max_out = max;
}

// MAX(amax, |x|) over the block, in ggml's operand order.
float abs_max(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = std::fabs(x[j]);
    amax = amax > a ? amax : a;
  }
  return amax;
}

using QuantizeFn = void (*)(const float* x, uint8_t* dst, int64_t count);
// For plain types `count` is the element count; for block types it is the block count.

void quantize_f32(const float* x, uint8_t* dst, int64_t n) {
  if (n > 0) std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
}
void quantize_f16(const float* x, uint8_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(x[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}
void quantize_bf16(const float* x, uint8_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_bf16(x[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

// d = max / -8 (max: the signed value of largest magnitude), q = min(15, trunc(x/d + 8.5)).
void quantize_q4_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
    float amax, max;
    signed_absmax(x, QK4_0, &amax, &max);
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[QK4_0 / 2 + j] * id;
      const int q0 = truncate_clamped(x0 + 8.5f, 0, 15);
      const int q1 = truncate_clamped(x1 + 8.5f, 0, 15);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(dst, i, b);
  }
}

// d = (max - min) / 15, m = min, q = min(15, trunc((x - min)/d + 0.5)).
void quantize_q4_1(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK4_1) {
    float min, max;
    min_max(x, QK4_1, &min, &max);
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_1 b{};
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[QK4_1 / 2 + j] - min) * id;
      const int q0 = truncate_clamped(x0 + 0.5f, 0, 15);
      const int q1 = truncate_clamped(x1 + 0.5f, 0, 15);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(dst, i, b);
  }
}

// d = max / -16, q = min(31, trunc(x/d + 16.5)); bit 4 of element j goes to bit j of qh.
void quantize_q5_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK5_0) {
    float amax, max;
    signed_absmax(x, QK5_0, &amax, &max);
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_0 b{};
    b.d = fp32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const float x0 = x[j] * id;
      const float x1 = x[QK5_0 / 2 + j] * id;
      const int q0 = truncate_clamped(x0 + 16.5f, 0, 31);
      const int q1 = truncate_clamped(x1 + 16.5f, 0, 31);
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + QK5_0 / 2);
    }
    store_u32_le(b.qh, qh);
    store_block(dst, i, b);
  }
}

// d = (max - min) / 31, m = min, q = trunc((x - min)/d + 0.5) (in 0..31 for finite input).
void quantize_q5_1(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK5_1) {
    float min, max;
    min_max(x, QK5_1, &min, &max);
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_1 b{};
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const float x0 = (x[j] - min) * id;
      const float x1 = (x[QK5_1 / 2 + j] - min) * id;
      const int q0 = truncate_clamped(x0 + 0.5f, 0, 31);
      const int q1 = truncate_clamped(x1 + 0.5f, 0, 31);
      b.qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + QK5_1 / 2);
    }
    store_u32_le(b.qh, qh);
    store_block(dst, i, b);
  }
}

// d = amax / 127, q = roundf(x / d).
void quantize_q8_0(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
    const float amax = abs_max(x, QK8_0);
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b{};
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) b.qs[j] = static_cast<int8_t>(round_clamped(x[j] * id, -128, 127));
    store_block(dst, i, b);
  }
}

// As Q8_0, plus s = fp16(d * sum(qs)) with d the unrounded fp32 scale.
void quantize_q8_1(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK8_1) {
    const float amax = abs_max(x, QK8_1);
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_1 b{};
    b.d = fp32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      b.qs[j] = static_cast<int8_t>(round_clamped(x[j] * id, -128, 127));
      sum += b.qs[j];
    }
    b.s = fp32_to_fp16(static_cast<float>(sum) * d);
    store_block(dst, i, b);
  }
}

// iscale = -127 / max (signed max), q = min(127, nearest_int(iscale * x)), d = 1 / iscale (fp32),
// bsums[j] = sum of qs[16j .. 16j+15]. An all-zero block is all zeros (ggml leaves bsums unset).
void quantize_q8_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float amax, max;
    signed_absmax(x, QK_K, &amax, &max);
    BlockQ8_K b{};
    if (amax != 0.0f) {
      const float iscale = -127.f / max;
      for (int j = 0; j < QK_K; ++j) {
        const int v = nearest_int(iscale * x[j]);
        b.qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
      }
      for (int j = 0; j < QK_K / 16; ++j) {
        int sum = 0;
        for (int t = 0; t < 16; ++t) sum += b.qs[16 * j + t];
        b.bsums[j] = static_cast<int16_t>(sum);
      }
      b.d = 1 / iscale;
    }
    store_block(dst, i, b);
  }
}

template <DType kType>
void quantize_kquant(const float* x, uint8_t* dst, int64_t nb) {
  quantize_kquant_ref(kType, x, dst, nb * QK_K, nullptr);
}

struct QuantizerRow {
  DType dtype;
  QuantizeFn fn;  // nullptr: no reference quantizer
};

constexpr std::array<QuantizerRow, static_cast<size_t>(DType::COUNT)> kQuantizers = {{
    {DType::F32, quantize_f32},
    {DType::F16, quantize_f16},
    {DType::BF16, quantize_bf16},
    {DType::F64, nullptr},
    {DType::I8, nullptr},
    {DType::I16, nullptr},
    {DType::I32, nullptr},
    {DType::I64, nullptr},
    {DType::U8, nullptr},
    {DType::BOOL, nullptr},
    {DType::Q4_0, quantize_q4_0},
    {DType::Q4_1, quantize_q4_1},
    {DType::Q5_0, quantize_q5_0},
    {DType::Q5_1, quantize_q5_1},
    {DType::Q8_0, quantize_q8_0},
    {DType::Q8_1, quantize_q8_1},
    {DType::Q2_K, quantize_kquant<DType::Q2_K>},
    {DType::Q3_K, quantize_kquant<DType::Q3_K>},
    {DType::Q4_K, quantize_kquant<DType::Q4_K>},
    {DType::Q5_K, quantize_kquant<DType::Q5_K>},
    {DType::Q6_K, quantize_kquant<DType::Q6_K>},
    {DType::Q8_K, quantize_q8_k},
}};

constexpr bool quantizers_in_enum_order() {
  for (size_t i = 0; i < kQuantizers.size(); ++i)
    if (static_cast<size_t>(kQuantizers[i].dtype) != i) return false;
  return true;
}
static_assert(quantizers_in_enum_order(), "kQuantizers rows must follow the DType enum order");

}  // namespace

bool has_quantize_ref(DType t) {
  const size_t index = static_cast<size_t>(t);
  return index < kQuantizers.size() && kQuantizers[index].fn != nullptr;
}

// n must be a multiple of the block size (a trailing partial block is not written). For a type
// without a reference quantizer the whole blocks of the row are zero-filled.
void quantize_row_ref(DType t, const float* src, void* dst, int64_t n) {
  const size_t index = static_cast<size_t>(t);
  if (index >= kQuantizers.size() || n <= 0) return;
  const DTypeInfo& info = dtype_info(t);
  const int64_t count = n / info.block_size;
  auto* out = static_cast<uint8_t*>(dst);
  if (kQuantizers[index].fn == nullptr) {
    std::memset(out, 0, static_cast<size_t>(count * info.type_size));
    return;
  }
  kQuantizers[index].fn(src, out, count);
}

void quantize_row_weighted_ref(DType t, const float* src, void* dst, int64_t n, const float* importance) {
  if (importance != nullptr && is_kquant_weight_type(t) && n > 0) {
    quantize_kquant_ref(t, src, dst, n - n % QK_K, importance);
    return;
  }
  quantize_row_ref(t, src, dst, n);
}

}  // namespace ss::kernels

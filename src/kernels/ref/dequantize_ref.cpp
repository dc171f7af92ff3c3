// Reference dequantization: one scalar function per DType that turns a row of raw bytes into
// floats, bit-identical to ggml's reference dequantize_row_* (the same float operations in the same
// order: e.g. Q4_K computes d*sc and dmin*m as floats first, then d1*q - m1). Layouts follow the
// GGUF spec / ggml-common.h (block structs in dtype.h). This is the ground truth the fast twins in
// kernels/cpu/ are tested against; it is not fast and does no bounds checking of its own (callers
// size rows with dtype_row_bytes). To add a type: one dequant_<type> function and one row in
// kDequantizers, in DType order.
#include <array>
#include <cstring>

#include "safeshrink/half.h"
#include "safeshrink/kernels.h"

// Bit-exactness needs every a*b+c rounded twice, as ggml's reference C code does: never fused.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ss::kernels {
namespace {

// Blocks are read through a local copy: the source bytes may sit at any address (mmapped files).
template <class Block>
Block load_block(const uint8_t* src, int64_t i) {
  Block b;
  std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return b;
}

template <class T>
T load_scalar(const uint8_t* src, int64_t i) {
  T v;
  std::memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

uint32_t load_u32_le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

// The 6-bit scale and min of sub-block j (0..7) packed in the 12 scale bytes of Q4_K / Q5_K.
void unpack_scale_min_k4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The signed 6-bit scale of sub-block j (0..15) of Q3_K: low 4 bits in bytes 0..7 (low nibbles for
// j < 8, high nibbles after), high 2 bits in bytes 8..11, biased by 32.
int q3_k_scale(const uint8_t* scales, int j) {
  const int low = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

using DequantizeFn = void (*)(const uint8_t* src, float* dst, int64_t count);
// For plain types `count` is the element count; for block types it is the block count.

template <class T>
void dequant_integer(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load_scalar<T>(src, i));
}

void dequant_f32(const uint8_t* src, float* dst, int64_t n) {
  if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void dequant_f16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_scalar<uint16_t>(src, i));
}
void dequant_bf16(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_scalar<uint16_t>(src, i));
}
void dequant_f64(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load_scalar<double>(src, i));
}
void dequant_bool(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i] ? 1.0f : 0.0f;
}

void dequant_q4_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * QK4_0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int lo = (b.qs[j] & 0x0F) - 8;
      const int hi = (b.qs[j] >> 4) - 8;
      y[j] = static_cast<float>(lo) * d;
      y[j + QK4_0 / 2] = static_cast<float>(hi) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    float* y = dst + i * QK4_1;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const int lo = b.qs[j] & 0x0F;
      const int hi = b.qs[j] >> 4;
      y[j] = static_cast<float>(lo) * d + m;
      y[j + QK4_1 / 2] = static_cast<float>(hi) * d + m;
    }
  }
}

void dequant_q5_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ5_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    const uint32_t qh = load_u32_le(b.qh);
    float* y = dst + i * QK5_0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int hi_bit_lo = static_cast<int>((qh >> j) & 1u) << 4;
      const int hi_bit_hi = static_cast<int>((qh >> (j + QK5_0 / 2)) & 1u) << 4;
      const int lo = ((b.qs[j] & 0x0F) | hi_bit_lo) - 16;
      const int hi = ((b.qs[j] >> 4) | hi_bit_hi) - 16;
      y[j] = static_cast<float>(lo) * d;
      y[j + QK5_0 / 2] = static_cast<float>(hi) * d;
    }
  }
}

void dequant_q5_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ5_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    const uint32_t qh = load_u32_le(b.qh);
    float* y = dst + i * QK5_1;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int hi_bit_lo = static_cast<int>((qh >> j) & 1u) << 4;
      const int hi_bit_hi = static_cast<int>((qh >> (j + QK5_1 / 2)) & 1u) << 4;
      const int lo = (b.qs[j] & 0x0F) | hi_bit_lo;
      const int hi = (b.qs[j] >> 4) | hi_bit_hi;
      y[j] = static_cast<float>(lo) * d + m;
      y[j + QK5_1 / 2] = static_cast<float>(hi) * d + m;
    }
  }
}

void dequant_q8_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ8_0>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * QK8_0;
    for (int j = 0; j < QK8_0; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
}

// ggml has no to_float for Q8_1 (it is an activation format); the natural one is qs * d (s unused).
void dequant_q8_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ8_1>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * QK8_1;
    for (int j = 0; j < QK8_1; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
}

// Q2_K: 256 elements as two halves of 128; in a half, element 32*j + l (j = 0..3, l = 0..31) is the
// 2-bit field j of byte l of that half's 32 qs bytes. Sub-block of 16 = element / 16 owns one byte of
// scales: low nibble scales d, high nibble scales dmin.
void dequant_q2_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ2_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + i * QK_K;
    for (int e = 0; e < QK_K; e += 16) {
      const uint8_t sc = b.scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      const int half = e / 128, j = (e % 128) / 32;
      for (int t = 0; t < 16; ++t) {
        const int l = e % 32 + t;
        const int q = (b.qs[32 * half + l] >> (2 * j)) & 3;
        y[e + t] = dl * static_cast<float>(q) - ml;
      }
    }
  }
}

// Q3_K: the low 2 bits are laid out as in Q2_K; the third bit of element 128*h + 32*j + l is bit
// (4*h + j) of hmask[l], and a CLEAR bit subtracts 4. Scales are signed 6-bit (q3_k_scale).
void dequant_q3_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ3_K>(src, i);
    const float d_all = fp16_to_fp32(b.d);
    float* y = dst + i * QK_K;
    for (int e = 0; e < QK_K; e += 16) {
      const float dl = d_all * static_cast<float>(q3_k_scale(b.scales, e / 16));
      const int half = e / 128, j = (e % 128) / 32;
      const uint8_t hbit = static_cast<uint8_t>(1u << (4 * half + j));
      for (int t = 0; t < 16; ++t) {
        const int l = e % 32 + t;
        const int low = (b.qs[32 * half + l] >> (2 * j)) & 3;
        const int q = low - ((b.hmask[l] & hbit) ? 0 : 4);
        y[e + t] = dl * static_cast<float>(q);
      }
    }
  }
}

// Q4_K: four chunks of 64; chunk c uses sub-blocks 2c (low nibbles of qs[32c..32c+31]) and 2c+1
// (high nibbles), each with a 6-bit scale and min.
void dequant_q4_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ4_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + i * QK_K;
    for (int c = 0; c < QK_K / 64; ++c) {
      uint8_t sc, m;
      unpack_scale_min_k4(2 * c, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      unpack_scale_min_k4(2 * c + 1, b.scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      const uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) y[64 * c + l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[64 * c + 32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// Q5_K: Q4_K plus a fifth bit: bit 2c of qh[l] for the low-nibble element, bit 2c+1 for the high.
void dequant_q5_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ5_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    float* y = dst + i * QK_K;
    for (int c = 0; c < QK_K / 64; ++c) {
      uint8_t sc, m;
      unpack_scale_min_k4(2 * c, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      unpack_scale_min_k4(2 * c + 1, b.scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc);
      const float m2 = dmin * static_cast<float>(m);
      const uint8_t* ql = b.qs + 32 * c;
      const uint8_t bit_lo = static_cast<uint8_t>(1u << (2 * c));
      const uint8_t bit_hi = static_cast<uint8_t>(2u << (2 * c));
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] & 0xF) + ((b.qh[l] & bit_lo) ? 16 : 0);
        y[64 * c + l] = d1 * static_cast<float>(q) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] >> 4) + ((b.qh[l] & bit_hi) ? 16 : 0);
        y[64 * c + 32 + l] = d2 * static_cast<float>(q) - m2;
      }
    }
  }
}

// Q6_K: two halves of 128. In half h, for l = 0..31: elements l, l+32, l+64, l+96 take the low
// nibble of ql[64h+l], low of ql[64h+32+l], high of ql[64h+l], high of ql[64h+32+l], and bits
// 0-1, 2-3, 4-5, 6-7 of qh[32h+l] as their top two bits; biased by 32; int8 scale per 16.
// y = (d * scale) * q, in that order.
void dequant_q6_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ6_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    float* y = dst + i * QK_K;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      float* yh = y + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        yh[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        yh[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        yh[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        yh[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void dequant_q8_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const auto b = load_block<BlockQ8_K>(src, i);
    float* y = dst + i * QK_K;
    for (int j = 0; j < QK_K; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
  }
}

struct DequantizerRow {
  DType dtype;
  DequantizeFn fn;
};

constexpr std::array<DequantizerRow, static_cast<size_t>(DType::COUNT)> kDequantizers = {{
    {DType::F32, dequant_f32},
    {DType::F16, dequant_f16},
    {DType::BF16, dequant_bf16},
    {DType::F64, dequant_f64},
    {DType::I8, dequant_integer<int8_t>},
    {DType::I16, dequant_integer<int16_t>},
    {DType::I32, dequant_integer<int32_t>},
    {DType::I64, dequant_integer<int64_t>},
    {DType::U8, dequant_integer<uint8_t>},
    {DType::BOOL, dequant_bool},
    {DType::Q4_0, dequant_q4_0},
    {DType::Q4_1, dequant_q4_1},
    {DType::Q5_0, dequant_q5_0},
    {DType::Q5_1, dequant_q5_1},
    {DType::Q8_0, dequant_q8_0},
    {DType::Q8_1, dequant_q8_1},
    {DType::Q2_K, dequant_q2_k},
    {DType::Q3_K, dequant_q3_k},
    {DType::Q4_K, dequant_q4_k},
    {DType::Q5_K, dequant_q5_k},
    {DType::Q6_K, dequant_q6_k},
    {DType::Q8_K, dequant_q8_k},
}};

constexpr bool dequantizers_in_enum_order() {
  for (size_t i = 0; i < kDequantizers.size(); ++i)
    if (static_cast<size_t>(kDequantizers[i].dtype) != i) return false;
  return true;
}
static_assert(dequantizers_in_enum_order(), "kDequantizers rows must follow the DType enum order");

}  // namespace

// n must be a multiple of the block size; a trailing partial block is left unwritten.
void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n) {
  const size_t index = static_cast<size_t>(t);
  if (index >= kDequantizers.size() || n <= 0) return;
  const int64_t count = n / dtype_info(t).block_size;
  kDequantizers[index].fn(static_cast<const uint8_t*>(src), dst, count);
}

}  // namespace ss::kernels

// AVX2 twins of dequantize_row_ref for F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K, bit for
// bit equal to the reference: each element goes through the same float operations in the same order
// (int -> float, multiply, then add), so this file is compiled without fused multiply-add
// contraction (the pragma below). Not here: dot products (matvec_avx2.cpp). Other types forward to
// the reference. To add a type: one dequantize_<type> function that mirrors the reference formula,
// one case in dequantize_row_avx2_has and in dequantize_row_avx2.
// One exception to bit equality: F16 signalling NaNs come out as quiet NaNs (vcvtph2ps sets the
// quiet bit); they stay NaN.
#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/blocks_avx2.h"
#include "kernels/cpu/dispatch.h"
#include "safeshrink/kernels.h"

namespace ss::kernels::cpu {
namespace {

// 32 signed bytes -> 4 x 8 floats stored at dst[0..32).
inline void store_bytes_as_floats_scaled(__m256i bytes, __m256 scale, float* dst) {
  const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int p = 0; p < 4; ++p) {
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]));
    _mm256_storeu_ps(dst + 8 * p, _mm256_mul_ps(f, scale));
  }
}

// Same, then adds `offset` after the multiply (the *_1 types: q * d + m).
inline void store_bytes_as_floats_scaled_offset(__m256i bytes, __m256 scale, __m256 offset, float* dst) {
  const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int p = 0; p < 4; ++p) {
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]));
    _mm256_storeu_ps(dst + 8 * p, _mm256_add_ps(_mm256_mul_ps(f, scale), offset));
  }
}

void dequantize_f16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

void dequantize_bf16(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
  }
  for (; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

void dequantize_q8_0(const BlockQ8_0* b, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, dst += QK8_0) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs));
    store_bytes_as_floats_scaled(q, _mm256_set1_ps(half_to_float(b[i].d)), dst);
  }
}

void dequantize_q4_0(const BlockQ4_0* b, float* dst, int64_t nb) {
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t i = 0; i < nb; ++i, dst += QK4_0) {
    const __m256i q = _mm256_sub_epi8(nibbles_to_bytes(b[i].qs), eight);
    store_bytes_as_floats_scaled(q, _mm256_set1_ps(half_to_float(b[i].d)), dst);
  }
}

void dequantize_q4_1(const BlockQ4_1* b, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, dst += QK4_1) {
    store_bytes_as_floats_scaled_offset(nibbles_to_bytes(b[i].qs), _mm256_set1_ps(half_to_float(b[i].d)),
                                        _mm256_set1_ps(half_to_float(b[i].m)), dst);
  }
}

void dequantize_q5_0(const BlockQ5_0* b, float* dst, int64_t nb) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  for (int64_t i = 0; i < nb; ++i, dst += QK5_0) {
    const __m256i q5 = _mm256_or_si256(nibbles_to_bytes(b[i].qs), high_bits_to_bytes(b[i].qh));
    store_bytes_as_floats_scaled(_mm256_sub_epi8(q5, sixteen), _mm256_set1_ps(half_to_float(b[i].d)), dst);
  }
}

void dequantize_q5_1(const BlockQ5_1* b, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, dst += QK5_1) {
    const __m256i q5 = _mm256_or_si256(nibbles_to_bytes(b[i].qs), high_bits_to_bytes(b[i].qh));
    store_bytes_as_floats_scaled_offset(q5, _mm256_set1_ps(half_to_float(b[i].d)),
                                        _mm256_set1_ps(half_to_float(b[i].m)), dst);
  }
}

// The 6-bit scales and mins of a Q4_K/Q5_K block (12 bytes) -> 8 scales, 8 mins.
inline void unpack_k4_scales(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 0x0F) | ((s[j] >> 6) << 4));
    mn[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
  }
}

// 32 unsigned bytes (values < 128) -> y = d1 * q - m1 for 32 floats.
inline void store_scaled_minus(__m256i bytes, __m256 d1, __m256 m1, float* dst) {
  const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int p = 0; p < 4; ++p) {
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[p]));
    _mm256_storeu_ps(dst + 8 * p, _mm256_sub_ps(_mm256_mul_ps(d1, f), m1));
  }
}

void dequantize_q4_k(const BlockQ4_K* b, float* dst, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d), dmin = half_to_float(b[i].dmin);
    uint8_t sc[8], mn[8];
    unpack_k4_scales(b[i].scales, sc, mn);
    for (int j = 0; j < 4; ++j, dst += 64) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * j));
      const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const float d1 = d * sc[2 * j], m1 = dmin * mn[2 * j];
      const float d2 = d * sc[2 * j + 1], m2 = dmin * mn[2 * j + 1];
      store_scaled_minus(lo, _mm256_set1_ps(d1), _mm256_set1_ps(m1), dst);
      store_scaled_minus(hi, _mm256_set1_ps(d2), _mm256_set1_ps(m2), dst + 32);
    }
  }
}

// 32 signed bytes -> y = ds * q with a different scale for elements 0..15 and 16..31.
inline void store_bytes_two_scales(__m256i bytes, __m256 ds_lo, __m256 ds_hi, float* dst) {
  const __m128i lo = _mm256_castsi256_si128(bytes), hi = _mm256_extracti128_si256(bytes, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int p = 0; p < 4; ++p) {
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]));
    _mm256_storeu_ps(dst + 8 * p, _mm256_mul_ps(p < 2 ? ds_lo : ds_hi, f));
  }
}

void dequantize_q6_k(const BlockQ6_K* b, float* dst, int64_t nb) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), two_bits = _mm256_set1_epi8(3), bias = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < nb; ++i) {
    const float d = half_to_float(b[i].d);
    for (int h = 0; h < 2; ++h, dst += 128) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
      const __m256i lows[4] = {_mm256_and_si256(qa, low4), _mm256_and_si256(qb, low4),
                               _mm256_and_si256(_mm256_srli_epi16(qa, 4), low4),
                               _mm256_and_si256(_mm256_srli_epi16(qb, 4), low4)};
      for (int t = 0; t < 4; ++t) {
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * t), two_bits);
        const __m256i q = _mm256_sub_epi8(_mm256_or_si256(lows[t], _mm256_slli_epi16(high, 4)), bias);
        store_bytes_two_scales(q, _mm256_set1_ps(d * sc[2 * t]), _mm256_set1_ps(d * sc[2 * t + 1]),
                               dst + 32 * t);
      }
    }
  }
}

}  // namespace

bool dequantize_row_avx2_has(DType t) {
  switch (t) {
    case DType::F16: case DType::BF16: case DType::Q8_0: case DType::Q4_0: case DType::Q4_1:
    case DType::Q5_0: case DType::Q5_1: case DType::Q4_K: case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row_avx2(DType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = n / dtype_info(t).block_size;
  switch (t) {
    case DType::F16: return dequantize_f16(static_cast<const uint16_t*>(src), dst, n);
    case DType::BF16: return dequantize_bf16(static_cast<const uint16_t*>(src), dst, n);
    case DType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::Q4_1: return dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case DType::Q5_0: return dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case DType::Q5_1: return dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case DType::Q4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
    case DType::Q6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
    default: return dequantize_row_ref(t, src, dst, n);
  }
}

}  // namespace ss::kernels::cpu

// AVX2 building blocks shared by the *_avx2.cpp kernels: unpacking the nibbles and high bits of GGUF
// blocks into bytes, half to float, horizontal sums. Include ONLY from files compiled with the AVX2
// flags (names ending in _avx2.cpp); everything here has internal linkage so that files compiled with
// different floating-point pragmas never share a copy. To add a helper: a short inline function in the
// anonymous namespace, used by at least two kernel files (otherwise keep it in its file).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace ss::kernels::cpu {
namespace {

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }
// An fp16 value converted and broadcast to 8 lanes (vpbroadcastw + vcvtph2ps).
inline __m256 half_to_float8(uint16_t h) { return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h))); }

// 16 bytes of packed nibbles -> 32 bytes: low nibbles are elements 0..15, high nibbles 16..31 (the
// element order of Q4_0/Q4_1/Q5_0/Q5_1).
inline __m256i nibbles_to_bytes(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// The 32 bits of a Q5 block's qh -> 32 bytes, byte i = 0x10 when bit i is set, else 0.
inline __m256i high_bits_to_bytes(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i which_byte = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), which_byte);
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hsum(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace
}  // namespace ss::kernels::cpu

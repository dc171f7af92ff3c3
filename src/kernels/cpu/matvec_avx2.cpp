// AVX2 matrix-times-few-vectors: Y (n x m) = X (n x k) * W^T with W in its GGUF block type, for the
// small batches of decoding (n = 1 .. a few dozen). Each weight row is decoded once and dotted with up
// to kMaxRows activation rows at a time; weight rows are split over the thread pool in contiguous
// ranges so each thread streams its own rows. Activations are quantized once per call: to 8-bit blocks
// of 32 with a float scale (for Q8_0 and the *_0/*_1 types: integer dot products with
// _mm256_maddubs_epi16, scaled per block in float) or to 8-bit blocks of 256 with sums per 16 (the
// K-quants); F32/F16/BF16 weights meet F32 activations with FMA. Results therefore differ from
// matmul_ref by the activation rounding (about 1/254 of a block's largest value per element).
// Not here: large batches (matmul_sgemm.cpp), dequantization (dequantize_avx2.cpp).
// To add a weight type: a kernel template `dot_<type><NR>`, a row in kernel_table(), and the
// activation format it needs in activation_format().
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "kernels/cpu/blocks_avx2.h"
#include "kernels/cpu/dispatch.h"
#include "safeshrink/kernels.h"
#include "safeshrink/thread_pool.h"

namespace ss::kernels::cpu {
namespace {

constexpr int kMaxRows = 4;                  // activation rows per pass over a weight row
constexpr int64_t kTileBytes = 128 * 1024;   // weight rows kept hot (L2) while all row groups pass

enum class ActivationFormat { F32, BLOCK32, BLOCK256 };

// Activations quantized once per call. BLOCK32: qs (n x k int8), d and s = d * sum(qs) per 32.
// BLOCK256: qs, d per 256, bsums (sum of qs) per 16.
struct QuantizedActivations {
  int64_t k = 0;
  std::vector<int8_t> qs;
  std::vector<float> d, s;
  std::vector<int16_t> bsums;
};

// Pointers to the activation rows one kernel call dots with the same weight row.
struct ActivationRows {
  const float* x[kMaxRows];
  const int8_t* qs[kMaxRows];
  const float* d[kMaxRows];
  const float* s[kMaxRows];
  const int16_t* bsums[kMaxRows];
};

// ---- activation quantizers ----

// 32 floats -> 32 int8 = round(x * 127 / amax), returns the scale amax / 127 and writes sum(q).
inline float quantize_32(const float* x, int8_t* q, int* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(x + 8 * j);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[j]));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float max_abs = _mm_cvtss_f32(m4);
  const float d = max_abs / 127.0f;
  const __m256 id = _mm256_set1_ps(max_abs > 0.0f ? 127.0f / max_abs : 0.0f);
  __m256i i[4];
  for (int j = 0; j < 4; ++j)
    i[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  *sum = hsum(_mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3])));
  const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
  const __m256i ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
  return d;
}

void quantize_row_block32(const float* x, int64_t k, int8_t* qs, float* d, float* s) {
  for (int64_t b = 0; b < k / 32; ++b) {
    int sum;
    d[b] = quantize_32(x + 32 * b, qs + 32 * b, &sum);
    s[b] = d[b] * static_cast<float>(sum);
  }
}

void quantize_row_block256(const float* x, int64_t k, int8_t* qs, float* d, int16_t* bsums) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < k / 256; ++b) {
    const float* xb = x + 256 * b;
    int8_t* qb = qs + 256 * b;
    __m256 amax = _mm256_setzero_ps();
    for (int j = 0; j < 32; ++j) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + 8 * j)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float max_abs = _mm_cvtss_f32(m4);
    d[b] = max_abs / 127.0f;
    const __m256 id = _mm256_set1_ps(max_abs > 0.0f ? 127.0f / max_abs : 0.0f);
    for (int j = 0; j < 8; ++j) {
      __m256i i[4];
      for (int u = 0; u < 4; ++u)
        i[u] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 32 * j + 8 * u), id),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      bsums[16 * b + 2 * j] = static_cast<int16_t>(hsum(_mm256_add_epi32(i[0], i[1])));
      bsums[16 * b + 2 * j + 1] = static_cast<int16_t>(hsum(_mm256_add_epi32(i[2], i[3])));
      const __m256i packed = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + 32 * j),
                          _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
  }
}

// ---- kernels: out[r] = dot(weight row, activation row r) for r < NR ----

using DotFn = void (*)(const uint8_t* wrow, int64_t k, const ActivationRows& a, float* out);

// Float weights: F32, F16 (vcvtph2ps) and BF16 (shift), 8 at a time, scalar tail for F32 rows.
struct LoadF32 {
  static __m256 load(const uint8_t* w, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i); }
  static float at(const uint8_t* w, int64_t i) { return reinterpret_cast<const float*>(w)[i]; }
};
struct LoadF16 {
  static __m256 load(const uint8_t* w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
  }
  static float at(const uint8_t* w, int64_t i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    return half_to_float(h);
  }
};
struct LoadBF16 {
  static __m256 load(const uint8_t* w, int64_t i) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float at(const uint8_t* w, int64_t i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

template <class Load, int NR>
void dot_float(const uint8_t* w, int64_t k, const ActivationRows& a, float* out) {
  constexpr int U = NR == 1 ? 4 : 2;  // independent accumulators per row (FMA latency)
  __m256 acc[U][NR];
  for (auto& au : acc)
    for (auto& v : au) v = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 * U <= k; i += 8 * U) {
    for (int u = 0; u < U; ++u) {
      const __m256 wv = Load::load(w, i + 8 * u);
      for (int r = 0; r < NR; ++r) acc[u][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x[r] + i + 8 * u), acc[u][r]);
    }
  }
  for (; i + 8 <= k; i += 8) {
    const __m256 wv = Load::load(w, i);
    for (int r = 0; r < NR; ++r) acc[0][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a.x[r] + i), acc[0][r]);
  }
  for (int r = 0; r < NR; ++r) {
    for (int u = 1; u < U; ++u) acc[0][r] = _mm256_add_ps(acc[0][r], acc[u][r]);
    float sum = hsum(acc[0][r]);
    for (int64_t j = i; j < k; ++j) sum += Load::at(w, j) * a.x[r][j];
    out[r] = sum;
  }
}

// Q8_0 blocks (signed codes): dot = sum_b d_w * d_x * sum(q_w * q_x), the signed byte products
// through maddubs with the sign trick (|q_w| times q_x with the sign of q_w).
template <int NR>
void dot_q8_0(const uint8_t* wrow, int64_t k, const ActivationRows& a, float* out) {
  const BlockQ8_0* w = reinterpret_cast<const BlockQ8_0*>(wrow);
  const int64_t nb = k / 32;
  constexpr int U = NR <= 2 ? 2 : 1;  // accumulator sets, so that one row still has two FMA chains
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[U][NR];
  for (auto& au : acc)
    for (auto& v : au) v = _mm256_setzero_ps();
  auto step = [&](int64_t b, int u) {
    const __m256i ws = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
    const __m256i wa = _mm256_sign_epi8(ws, ws);
    const __m256 dw = half_to_float8(w[b].d);
    for (int r = 0; r < NR; ++r) {
      const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs[r] + 32 * b)), ws);
      const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wa, xs), ones));
      acc[u][r] = _mm256_fmadd_ps(_mm256_mul_ps(p, _mm256_broadcast_ss(a.d[r] + b)), dw, acc[u][r]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  for (int r = 0; r < NR; ++r) {
    for (int u = 1; u < U; ++u) acc[0][r] = _mm256_add_ps(acc[0][r], acc[u][r]);
    out[r] = hsum(acc[0][r]);
  }
}

// Blocks of 32 with unsigned codes and a fixed offset: Q4_0 (w = d * (q - 8)), Q5_0 (d * (q - 16)).
// dot = sum_b d_w * (d_x * sum(q * q_x) - offset * s_x) with s_x = d_x * sum(q_x): maddubs takes the
// unsigned codes as they are, and the offset term rides in the same FMA as 8 lanes of offset/8 * s_x.
struct OffsetQ4_0 {
  using Block = BlockQ4_0;
  static constexpr int kOffsetPerLane = 1;  // 8 / 8 lanes
  static __m256i bytes(const Block& b) { return nibbles_to_bytes(b.qs); }
};
struct OffsetQ5_0 {
  using Block = BlockQ5_0;
  static constexpr int kOffsetPerLane = 2;  // 16 / 8 lanes
  static __m256i bytes(const Block& b) { return _mm256_or_si256(nibbles_to_bytes(b.qs), high_bits_to_bytes(b.qh)); }
};

template <class Decode, int NR>
void dot_offset32(const uint8_t* wrow, int64_t k, const ActivationRows& a, float* out) {
  using Block = typename Decode::Block;
  const Block* w = reinterpret_cast<const Block*>(wrow);
  const int64_t nb = k / 32;
  constexpr int U = NR <= 2 ? 2 : 1;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[U][NR];
  for (auto& au : acc)
    for (auto& v : au) v = _mm256_setzero_ps();
  auto step = [&](int64_t b, int u) {
    const __m256i wq = Decode::bytes(w[b]);
    const __m256 dw = half_to_float8(w[b].d);
    for (int r = 0; r < NR; ++r) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs[r] + 32 * b));
      const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones));
      __m256 offset = _mm256_broadcast_ss(a.s[r] + b);
      if constexpr (Decode::kOffsetPerLane == 2) offset = _mm256_add_ps(offset, offset);
      const __m256 t = _mm256_fmsub_ps(p, _mm256_broadcast_ss(a.d[r] + b), offset);
      acc[u][r] = _mm256_fmadd_ps(t, dw, acc[u][r]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  for (int r = 0; r < NR; ++r) {
    for (int u = 1; u < U; ++u) acc[0][r] = _mm256_add_ps(acc[0][r], acc[u][r]);
    out[r] = hsum(acc[0][r]);
  }
}

// Blocks of 32 with a minimum: Q4_1, Q5_1 (w = d * q + m, q unsigned).
// dot = sum_b d_w * d_x * sum(q_w * q_x) + m_w * s_x with s_x = d_x * sum(q_x).
struct UnsignedQ4_1 {
  using Block = BlockQ4_1;
  static __m256i bytes(const Block& b) { return nibbles_to_bytes(b.qs); }
};
struct UnsignedQ5_1 {
  using Block = BlockQ5_1;
  static __m256i bytes(const Block& b) { return _mm256_or_si256(nibbles_to_bytes(b.qs), high_bits_to_bytes(b.qh)); }
};

template <class Decode, int NR>
void dot_unsigned32(const uint8_t* wrow, int64_t k, const ActivationRows& a, float* out) {
  using Block = typename Decode::Block;
  const Block* w = reinterpret_cast<const Block*>(wrow);
  const int64_t nb = k / 32;
  constexpr int U = NR <= 2 ? 2 : 1;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[U][NR], acc_min[U][NR];  // acc_min: 8 lanes of m_w/8 * s_x per block
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < NR; ++r) acc[u][r] = acc_min[u][r] = _mm256_setzero_ps();
  const __m256 eighth = _mm256_set1_ps(0.125f);
  auto step = [&](int64_t b, int u) {
    const __m256i wq = Decode::bytes(w[b]);
    const __m256 dw = half_to_float8(w[b].d);
    const __m256 mw = _mm256_mul_ps(half_to_float8(w[b].m), eighth);
    for (int r = 0; r < NR; ++r) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs[r] + 32 * b));
      const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones));
      acc[u][r] = _mm256_fmadd_ps(_mm256_mul_ps(p, _mm256_broadcast_ss(a.d[r] + b)), dw, acc[u][r]);
      acc_min[u][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a.s[r] + b), mw, acc_min[u][r]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  for (int r = 0; r < NR; ++r) {
    for (int u = 1; u < U; ++u) {
      acc[0][r] = _mm256_add_ps(acc[0][r], acc[u][r]);
      acc_min[0][r] = _mm256_add_ps(acc_min[0][r], acc_min[u][r]);
    }
    out[r] = hsum(_mm256_add_ps(acc[0][r], acc_min[0][r]));
  }
}

// Q4_K: superblocks of 256 = 8 groups of 32 with 6-bit scale and min; w = d * sc * q - dmin * mn.
// dot = d * d_x * sum_j sc_j * sum(q * q_x) - dmin * d_x * sum_j mn_j * bsum32_j, all sums in int32.
template <int NR>
void dot_q4_k(const uint8_t* wrow, int64_t k, const ActivationRows& a, float* out) {
  const BlockQ4_K* w = reinterpret_cast<const BlockQ4_K*>(wrow);
  const int64_t nb = k / 256;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  // shuffles that broadcast the 16-bit scale j of a register holding 8 int16 scales
  const __m256i pick[4][2] = {
      {_mm256_set1_epi16(0x0100), _mm256_set1_epi16(0x0302)}, {_mm256_set1_epi16(0x0504), _mm256_set1_epi16(0x0706)},
      {_mm256_set1_epi16(0x0908), _mm256_set1_epi16(0x0B0A)}, {_mm256_set1_epi16(0x0D0C), _mm256_set1_epi16(0x0F0E)}};
  __m256 acc[NR];
  __m128 acc_min[NR];
  for (int r = 0; r < NR; ++r) {
    acc[r] = _mm256_setzero_ps();
    acc_min[r] = _mm_setzero_ps();
  }
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ4_K& blk = w[i];
    uint32_t u[3];
    std::memcpy(u, blk.scales, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3fu, mn_lo = u[1] & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    const __m128i sc16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(sc_hi), static_cast<int>(sc_lo)));
    const __m128i mn16 = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(mn_hi), static_cast<int>(mn_lo)));
    const __m256i sc_both = _mm256_broadcastsi128_si256(sc16);
    __m256i isum[NR];
    for (int r = 0; r < NR; ++r) isum[r] = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * j));
      const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const __m256i s_lo = _mm256_shuffle_epi8(sc_both, pick[j][0]);
      const __m256i s_hi = _mm256_shuffle_epi8(sc_both, pick[j][1]);
      for (int r = 0; r < NR; ++r) {
        const int8_t* xq = a.qs[r] + 256 * i + 64 * j;
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), s_lo);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), s_hi);
        isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(p0, p1));
      }
    }
    const float d = half_to_float(blk.d), dmin = half_to_float(blk.dmin);
    for (int r = 0; r < NR; ++r) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums[r] + 16 * i));
      const __m128i bs32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
      const __m128i mins = _mm_madd_epi16(mn16, bs32);
      const float dx = a.d[r][i];
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(isum[r]), acc[r]);
      acc_min[r] = _mm_fmadd_ps(_mm_set1_ps(dmin * dx), _mm_cvtepi32_ps(mins), acc_min[r]);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum(acc[r]) - hsum(acc_min[r]);
}

// Byte shuffles that put Q6_K scale (8h + 2t) in the high byte of words 0..7 and scale (8h + 2t + 1)
// in words 8..15 (low bytes zero), so an arithmetic shift by 8 gives the sign-extended 16-bit scales.
struct Q6ScaleShuffles {
  alignas(32) int8_t idx[8][32];
  constexpr Q6ScaleShuffles() : idx{} {
    for (int g = 0; g < 8; ++g)
      for (int byte = 0; byte < 32; ++byte)
        idx[g][byte] = static_cast<int8_t>(byte % 2 == 0 ? -128 : 2 * g + (byte >= 16 ? 1 : 0));
  }
};
constexpr Q6ScaleShuffles kQ6ScaleShuffles;

// Q6_K: superblocks of 256 = 16 groups of 16 with an int8 scale; w = d * sc * (q - 32), q unsigned
// 6-bit. dot = d * d_x * sum_j sc_j * (sum(q * q_x) - 32 * bsum16_j), all sums in int32.
template <int NR>
void dot_q6_k(const uint8_t* wrow, int64_t k, const ActivationRows& a, float* out) {
  const BlockQ6_K* w = reinterpret_cast<const BlockQ6_K*>(wrow);
  const int64_t nb = k / 256;
  const __m256i low4 = _mm256_set1_epi8(0x0F), two_bits = _mm256_set1_epi8(3);
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const BlockQ6_K& blk = w[i];
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales));
    const __m256i sc_both = _mm256_broadcastsi128_si256(sc8);
    __m256i isum[NR];
    for (int r = 0; r < NR; ++r) isum[r] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h));
      const __m256i qb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
      for (int t = 0; t < 4; ++t) {
        const __m256i src = (t % 2 == 0) ? qa : qb;
        const __m256i low = t < 2 ? _mm256_and_si256(src, low4) : _mm256_and_si256(_mm256_srli_epi16(src, 4), low4);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(hb, 2 * t), two_bits);
        const __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
        const __m256i shuffle = _mm256_load_si256(reinterpret_cast<const __m256i*>(kQ6ScaleShuffles.idx[4 * h + t]));
        const __m256i sc = _mm256_srai_epi16(_mm256_shuffle_epi8(sc_both, shuffle), 8);
        for (int r = 0; r < NR; ++r) {
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs[r] + 256 * i + 128 * h + 32 * t));
          isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), sc));
        }
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const float d = half_to_float(blk.d);
    for (int r = 0; r < NR; ++r) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums[r] + 16 * i));
      const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d[r][i]), _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[r], offset)),
                               acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum(acc[r]);
}

// ---- the table: kernel per (type, rows) and the activation format it reads ----

struct TypeKernels {
  ActivationFormat format;
  std::array<DotFn, kMaxRows> by_rows;  // by_rows[nr - 1]
};

template <template <int> class K>
constexpr std::array<DotFn, kMaxRows> all_rows() {
  return {K<1>::fn, K<2>::fn, K<3>::fn, K<4>::fn};
}
template <class L> struct FloatK { template <int NR> struct At { static constexpr DotFn fn = dot_float<L, NR>; }; };
template <class D> struct Offset32K { template <int NR> struct At { static constexpr DotFn fn = dot_offset32<D, NR>; }; };
template <int NR> struct Q8_0K { static constexpr DotFn fn = dot_q8_0<NR>; };
template <class D> struct Unsigned32K { template <int NR> struct At { static constexpr DotFn fn = dot_unsigned32<D, NR>; }; };
template <int NR> struct Q4KK { static constexpr DotFn fn = dot_q4_k<NR>; };
template <int NR> struct Q6KK { static constexpr DotFn fn = dot_q6_k<NR>; };

const TypeKernels* kernels_for(DType wt) {
  static const TypeKernels f32{ActivationFormat::F32, all_rows<FloatK<LoadF32>::At>()};
  static const TypeKernels f16{ActivationFormat::F32, all_rows<FloatK<LoadF16>::At>()};
  static const TypeKernels bf16{ActivationFormat::F32, all_rows<FloatK<LoadBF16>::At>()};
  static const TypeKernels q8_0{ActivationFormat::BLOCK32, all_rows<Q8_0K>()};
  static const TypeKernels q4_0{ActivationFormat::BLOCK32, all_rows<Offset32K<OffsetQ4_0>::At>()};
  static const TypeKernels q5_0{ActivationFormat::BLOCK32, all_rows<Offset32K<OffsetQ5_0>::At>()};
  static const TypeKernels q4_1{ActivationFormat::BLOCK32, all_rows<Unsigned32K<UnsignedQ4_1>::At>()};
  static const TypeKernels q5_1{ActivationFormat::BLOCK32, all_rows<Unsigned32K<UnsignedQ5_1>::At>()};
  static const TypeKernels q4_k{ActivationFormat::BLOCK256, all_rows<Q4KK>()};
  static const TypeKernels q6_k{ActivationFormat::BLOCK256, all_rows<Q6KK>()};
  switch (wt) {
    case DType::F32: return &f32;
    case DType::F16: return &f16;
    case DType::BF16: return &bf16;
    case DType::Q8_0: return &q8_0;
    case DType::Q4_0: return &q4_0;
    case DType::Q5_0: return &q5_0;
    case DType::Q4_1: return &q4_1;
    case DType::Q5_1: return &q5_1;
    case DType::Q4_K: return &q4_k;
    case DType::Q6_K: return &q6_k;
    default: return nullptr;
  }
}

QuantizedActivations quantize_activations(ActivationFormat format, const float* x, int64_t n, int64_t k,
                                          ThreadPool& pool) {
  QuantizedActivations q;
  q.k = k;
  if (format == ActivationFormat::F32) return q;
  q.qs.resize(static_cast<size_t>(n * k));
  if (format == ActivationFormat::BLOCK32) {
    q.d.resize(static_cast<size_t>(n * (k / 32)));
    q.s.resize(q.d.size());
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r)
        quantize_row_block32(x + r * k, k, q.qs.data() + r * k, q.d.data() + r * (k / 32), q.s.data() + r * (k / 32));
    });
  } else {
    q.d.resize(static_cast<size_t>(n * (k / 256)));
    q.bsums.resize(static_cast<size_t>(n * (k / 16)));
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r)
        quantize_row_block256(x + r * k, k, q.qs.data() + r * k, q.d.data() + r * (k / 256),
                              q.bsums.data() + r * (k / 16));
    });
  }
  return q;
}

ActivationRows rows_at(ActivationFormat format, const QuantizedActivations& q, const float* x, int64_t first, int nr) {
  ActivationRows a{};
  const int64_t k = q.k;
  for (int r = 0; r < nr; ++r) {
    const int64_t row = first + r;
    if (format == ActivationFormat::F32) {
      a.x[r] = x + row * k;
    } else if (format == ActivationFormat::BLOCK32) {
      a.qs[r] = q.qs.data() + row * k;
      a.d[r] = q.d.data() + row * (k / 32);
      a.s[r] = q.s.data() + row * (k / 32);
    } else {
      a.qs[r] = q.qs.data() + row * k;
      a.d[r] = q.d.data() + row * (k / 256);
      a.bsums[r] = q.bsums.data() + row * (k / 16);
    }
  }
  return a;
}

}  // namespace

bool matvec_avx2_supported(DType wt) { return kernels_for(wt) != nullptr; }

void matvec_avx2(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y,
                 ThreadPool& pool) {
  const TypeKernels* native = kernels_for(wt);
  // Types without a kernel of their own are dequantized tile by tile and dotted as F32.
  const TypeKernels* kernels = native ? native : kernels_for(DType::F32);
  const ActivationFormat format = kernels->format;
  const int64_t row_bytes = static_cast<int64_t>(dtype_info(wt).type_size) * (k / dtype_info(wt).block_size);
  const int64_t tile_bytes = native ? row_bytes : k * static_cast<int64_t>(sizeof(float));
  const int64_t tile_rows = std::max<int64_t>(1, kTileBytes / std::max<int64_t>(1, tile_bytes));
  const QuantizedActivations q = quantize_activations(format, x, n, k, pool);
  const uint8_t* wbytes = static_cast<const uint8_t*>(w);

  pool.parallel_for(m, [&](int64_t begin, int64_t end, int) {
    std::vector<float> dequantized;
    if (!native) dequantized.resize(static_cast<size_t>(std::min(tile_rows, end - begin) * k));
    float out[kMaxRows];
    for (int64_t t0 = begin; t0 < end; t0 += tile_rows) {
      const int64_t t1 = std::min(end, t0 + tile_rows);
      const uint8_t* tile = wbytes + t0 * row_bytes;
      int64_t stride = row_bytes;
      if (!native) {
        for (int64_t i = t0; i < t1; ++i)
          dequantize_row_avx2(wt, wbytes + i * row_bytes, dequantized.data() + (i - t0) * k, k);
        tile = reinterpret_cast<const uint8_t*>(dequantized.data());
        stride = tile_bytes;
      }
      for (int64_t g = 0; g < n; g += kMaxRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kMaxRows, n - g));
        const ActivationRows a = rows_at(format, q, x, g, nr);
        const DotFn dot = kernels->by_rows[static_cast<size_t>(nr - 1)];
        for (int64_t i = t0; i < t1; ++i) {
          dot(tile + (i - t0) * stride, k, a, out);
          for (int r = 0; r < nr; ++r) y[(g + r) * m + i] = out[r];
        }
      }
    }
  });
}

}  // namespace ss::kernels::cpu

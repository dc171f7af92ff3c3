// Reference quantizers of the K types (Q2_K Q3_K Q4_K Q5_K Q6_K), written from the algorithms of
// ggml's quantize_row_<type>_ref (plain) and quantize_row_<type>_impl (importance-weighted) so that
// the same float operations in the same order give the same bytes as llama-quantize: per sub-block
// scale searches (make_qkx2_quants for the min/scale types Q2_K Q4_K Q5_K, make_q3_quants for Q3_K,
// make_qx_quants for Q6_K), 4/6/8-bit super-block scale codes, then a requantization of every
// element against the decoded scales. The weighted variants take one importance per column of the
// row (the imatrix: mean of x^2 of the layer input) and use make_qkx3/make_qp searches as llama.cpp
// does. Not here: the simple block types (quantize_ref.cpp), plans and tensors (compress/quant/).
// To add a type: one quantize_<type>_blocks function and one case in quantize_kquant_ref().
#include <cmath>
#include <cstring>

#include "kernels/ref/quantize_kquants_ref.h"
#include "safeshrink/half.h"

// Bit-exactness needs every a*b+c rounded twice, as ggml's reference C code does: never fused.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ss::kernels {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // a group whose largest |x| is below this is all zero

// round-to-nearest-even through the 1.5*2^23 trick (ggml's nearest_int); |v| must be < 2^22 to be
// meaningful, and any input gives a defined integer.
int nearest_int(float v) {
  if (!(std::fabs(v) <= 4194303.f)) v = std::isnan(v) ? 0.f : (v > 0 ? 4194303.f : -4194303.f);
  const float shifted = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }


// Symmetric codes l in [-nmax, nmax-1] for n values with a scale search over 19 candidate inverse
// scales around -nmax/max, minimising sum w (x - scale*l)^2 (w = x^2 or the given weights).
// L receives l + nmax. Returns the scale.
float symmetric_scale_search(int n, int nmax, const float* x, int8_t* L, const float* weights) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto weight = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = weight(i);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(nmax + 0.1f * step) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = weight(i);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = static_cast<int8_t>(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's sub-block search: start from -nmax/max, then up to 5 passes of coordinate descent on each
// code with weights x^2. L receives l + nmax.
float q3_scale_search(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric codes l in [0, nmax] with x ~ scale*l - min (min >= 0 returned in *the_min): start from
// the range, then nstep+1 candidate inverse scales (rmin + rdelta*is + nmax)/(max - min), each
// refitted by weighted least squares; keeps the candidate of lowest weighted error (|diff| when
// use_mad). `weights` may be nullptr (weights x^2) only when `null_weights_are_x2`.
float min_scale_search(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad, bool strict_range) {
  auto weight = [&](int i) { return weights ? weights[i] : x[i] * x[i]; };
  float min = x[0], max = x[0];
  float sum_w = weight(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weight(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (strict_range ? max <= min : max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(clamp_int(l, 0, nmax));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weight(i) * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * step + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weight(i);
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        error += weight(i) * diff;
      }
      if (error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Codes in [0, nmax] for non-negative values (the sub-block scales or mins of a super-block) under
// weights: 9 candidate scales, then coordinate descent. Returns the super-block scale.
float positive_scale_search(int n, int nmax, const float* x, uint8_t* L, const float* weights) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best_mse += weights[i] * diff * diff;
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_step = (0.1f * step + nmax) / max;
    const float scale_step = 1 / iscale_step;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale_step * x[i]);
      l = l < nmax ? l : nmax;
      const float diff = x[i] - scale_step * l;
      mse += weights[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_step;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = l < nmax ? l : nmax;
    L[i] = static_cast<uint8_t>(l);
    const float w = weights[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = weights[i];
      float slx = sumlx - w * x[i] * L[i];
      float sl2 = suml2 - w * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = new_l < nmax ? new_l : nmax;
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The 12-byte packing of eight 6-bit scales and eight 6-bit mins (Q4_K, Q5_K).
void pack_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* scales) {
  if (j < 4) {
    scales[j] = ls;
    scales[j + 4] = lm;
  } else {
    scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
    scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
  }
}

void unpack_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// Packs 2-bit codes: byte l of each 32-byte group holds elements l, l+32, l+64, l+96 of 128.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// ---------------------------------------------------------------- Q2_K
void finish_q2_k(const float* x, BlockQ2_K& b, uint8_t* L) {
  const float d_all = fp16_to_fp32(b.d), m_all = fp16_to_fp32(b.dmin);
  for (int j = 0; j < QK_K / 16; ++j) {
    const float d = d_all * (b.scales[j] & 0xF);
    if (!d) continue;
    const float dm = m_all * (b.scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
  }
  pack_2bit(L, b.qs);
}

void quantize_q2_k_block(const float* x, BlockQ2_K& b) {
  uint8_t L[QK_K], Laux[16];
  float weights[16], mins[QK_K / 16], scales[QK_K / 16];
  const float q4scale = 15.f;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = min_scale_search(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    b.d = fp32_to_fp16(max_scale / q4scale);
  } else {
    for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = 0;
    b.d = fp32_to_fp16(0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < QK_K / 16; ++j) b.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
    b.dmin = fp32_to_fp16(max_min / q4scale);
  } else {
    b.dmin = fp32_to_fp16(0.f);
  }
  finish_q2_k(x, b, L);
}

void quantize_q2_k_block_weighted(const float* x, const float* qw, BlockQ2_K& b) {
  uint8_t L[QK_K], Laux[16], Ls[QK_K / 16], Lm[QK_K / 16];
  float mins[QK_K / 16], scales[QK_K / 16], sw[QK_K / 16], weight[16];
  float sumx2 = 0;
  for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = sumx2 / QK_K;
  for (int j = 0; j < QK_K / 16; ++j) {
    sw[j] = 0;
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    for (int l = 0; l < 16; ++l) sw[j] += weight[l];
    scales[j] = min_scale_search(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, true);
  }
  const float dm = positive_scale_search(QK_K / 16, 15, scales, Ls, sw);
  const float mm = positive_scale_search(QK_K / 16, 15, mins, Lm, sw);
  b.d = fp32_to_fp16(dm);
  b.dmin = fp32_to_fp16(mm);
  for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
  finish_q2_k(x, b, L);
}

// ---------------------------------------------------------------- Q3_K
// Stores sixteen 6-bit scale codes (0..63, bias 32) in 12 bytes.
void pack_q3_scales(const int* codes, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < QK_K / 16; ++j) {
    int l = codes[j];
    if (j < 8) scales[j] = static_cast<uint8_t>(l & 0xF);
    else scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
  }
}

void finish_q3_k(const float* x, BlockQ3_K& b, int8_t* L) {
  const float d_all = fp16_to_fp32(b.d);
  for (int j = 0; j < QK_K / 16; ++j) {
    int sc = j < 8 ? b.scales[j] & 0xF : b.scales[j - 8] >> 4;
    sc = (sc | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    const float d = d_all * sc;
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
  }
  std::memset(b.hmask, 0, QK_K / 8);
  int m = 0;
  uint8_t hm = 1;
  uint8_t low[QK_K];
  for (int j = 0; j < QK_K; ++j) {
    int v = L[j];
    if (v > 3) {
      b.hmask[m] |= hm;
      v -= 4;
    }
    low[j] = static_cast<uint8_t>(v);
    if (++m == QK_K / 8) {
      m = 0;
      hm = static_cast<uint8_t>(hm << 1);
    }
  }
  pack_2bit(low, b.qs);
}

void quantize_q3_k_block(const float* x, BlockQ3_K& b) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < QK_K / 16; ++j) {
    scales[j] = q3_scale_search(16, 4, x + 16 * j, L + 16 * j);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  int codes[QK_K / 16] = {};
  if (max_scale) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < QK_K / 16; ++j) {
      const int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));  // int8 as ggml stores it
      codes[j] = clamp_int(l, -32, 31) + 32;
    }
    pack_q3_scales(codes, b.scales);
    b.d = fp32_to_fp16(1 / iscale);
  } else {
    std::memset(b.scales, 0, 12);
    b.d = fp32_to_fp16(0.f);
  }
  finish_q3_k(x, b, L);
}

void quantize_q3_k_block_weighted(const float* x, const float* qw, BlockQ3_K& b) {
  int8_t L[QK_K], Ls[QK_K / 16];
  float scales[QK_K / 16], weight[16], sw[QK_K / 16];
  float sumx2 = 0;
  for (int j = 0; j < QK_K; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = 2 * sumx2 / QK_K;
  for (int j = 0; j < QK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 16; ++l) sumw += weight[l];
    sw[j] = sumw;
    scales[j] = symmetric_scale_search(16, 4, x + 16 * j, L + 16 * j, weight);
  }
  const float d_block = symmetric_scale_search(QK_K / 16, 32, scales, Ls, sw);
  int codes[QK_K / 16];
  for (int j = 0; j < QK_K / 16; ++j) codes[j] = Ls[j];
  pack_q3_scales(codes, b.scales);
  b.d = fp32_to_fp16(d_block);
  finish_q3_k(x, b, L);
}

// ---------------------------------------------------------------- Q4_K / Q5_K
// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): sub-blocks of 32 with a 6-bit scale and min each.
void requantize_min_scale(const float* x, uint16_t d16, uint16_t dmin16, const uint8_t* packed, int nmax, uint8_t* L) {
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    unpack_scale_min_k4(j, packed, &sc, &m);
    const float d = fp16_to_fp32(d16) * sc;
    if (!d) continue;
    const float dm = fp16_to_fp32(dmin16) * m;
    for (int ii = 0; ii < 32; ++ii)
      L[32 * j + ii] = static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
  }
}

// Plain: per-sub-block search with weights av_x + |x|, then 6-bit codes against the largest.
void min_scale_codes_plain(const float* x, int nmax, float rmin, float rdelta, int nstep, uint8_t* L, uint8_t* packed,
                           uint16_t* d16, uint16_t* dmin16) {
  uint8_t Laux[32];
  float weights[32], mins[QK_K / 32], scales[QK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = min_scale_search(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false,
                                 false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(packed, 0, K_SCALE_SIZE);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));  // uint8 as ggml stores it
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    pack_scale_min_k4(j, ls, lm, packed);
  }
  *d16 = fp32_to_fp16(max_scale / 63.f);
  *dmin16 = fp32_to_fp16(max_min / 63.f);
  requantize_min_scale(x, *d16, *dmin16, packed, nmax, L);
}

// Weighted: weights qw * sqrt(sigma2 + x^2), make_qkx3-style search, scales and mins coded by the
// weighted positive search.
void min_scale_codes_weighted(const float* x, const float* qw, int nmax, uint8_t* L, uint8_t* packed, uint16_t* d16,
                              uint16_t* dmin16) {
  uint8_t Laux[32], Ls[QK_K / 32], Lm[QK_K / 32];
  float weights[32], sw[QK_K / 32], mins[QK_K / 32], scales[QK_K / 32];
  float sum_x2 = 0;
  for (int l = 0; l < QK_K; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / QK_K;
  for (int j = 0; j < QK_K / 32; ++j) {
    for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = min_scale_search(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, true);
  }
  const float d_block = positive_scale_search(QK_K / 32, 63, scales, Ls, sw);
  const float m_block = positive_scale_search(QK_K / 32, 63, mins, Lm, sw);
  std::memset(packed, 0, K_SCALE_SIZE);
  for (int j = 0; j < QK_K / 32; ++j) {
    const uint8_t ls = Ls[j] < 63 ? Ls[j] : 63;
    const uint8_t lm = Lm[j] < 63 ? Lm[j] : 63;
    pack_scale_min_k4(j, ls, lm, packed);
  }
  *d16 = fp32_to_fp16(d_block);
  *dmin16 = fp32_to_fp16(m_block);
  requantize_min_scale(x, *d16, *dmin16, packed, nmax, L);
}

void pack_q4_k(const uint8_t* L, BlockQ4_K& b) {
  uint8_t* q = b.qs;
  for (int j = 0; j < QK_K; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}

void pack_q5_k(const uint8_t* L, BlockQ5_K& b) {
  std::memset(b.qh, 0, QK_K / 8);
  uint8_t* ql = b.qs;
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < QK_K; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        b.qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        b.qh[j] |= m2;
      }
      ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
    m1 = static_cast<uint8_t>(m1 << 2);
    m2 = static_cast<uint8_t>(m2 << 2);
    ql += 32;
  }
}

// ---------------------------------------------------------------- Q6_K
void quantize_q6_k_block(const float* x, const float* qw, BlockQ6_K& b) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < QK_K / 16; ++ib) {
    const float scale = symmetric_scale_search(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(&b, 0, sizeof b);
    return;
  }
  const float iscale = -128.f / max_scale;
  b.d = fp32_to_fp16(1 / iscale);
  for (int ib = 0; ib < QK_K / 16; ++ib) {
    const int v = nearest_int(iscale * scales[ib]);
    b.scales[ib] = static_cast<int8_t>(v < 127 ? v : 127);
  }
  const float d_all = fp16_to_fp32(b.d);
  for (int j = 0; j < QK_K / 16; ++j) {
    const float d = d_all * b.scales[j];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii)
      L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
  }
  uint8_t* ql = b.ql;
  uint8_t* qh = b.qh;
  for (int j = 0; j < QK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
      const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
      ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                   ((L[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

template <class Block>
void store(uint8_t* dst, int64_t i, const Block& b) {
  std::memcpy(dst + i * static_cast<int64_t>(sizeof(Block)), &b, sizeof(Block));
}

}  // namespace

bool is_kquant_weight_type(DType t) {
  return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}

void quantize_kquant_ref(DType t, const float* x, void* dst, int64_t n, const float* importance) {
  auto* out = static_cast<uint8_t*>(dst);
  const int64_t nb = n / QK_K;
  for (int64_t i = 0; i < nb; ++i) {
    const float* xb = x + i * QK_K;
    const float* qw = importance ? importance + i * QK_K : nullptr;
    switch (t) {
      case DType::Q2_K: {
        BlockQ2_K b{};
        if (qw) quantize_q2_k_block_weighted(xb, qw, b);
        else quantize_q2_k_block(xb, b);
        store(out, i, b);
        break;
      }
      case DType::Q3_K: {
        BlockQ3_K b{};
        if (qw) quantize_q3_k_block_weighted(xb, qw, b);
        else quantize_q3_k_block(xb, b);
        store(out, i, b);
        break;
      }
      case DType::Q4_K: {
        BlockQ4_K b{};
        uint8_t L[QK_K] = {};
        if (qw) min_scale_codes_weighted(xb, qw, 15, L, b.scales, &b.d, &b.dmin);
        else min_scale_codes_plain(xb, 15, -1.f, 0.1f, 20, L, b.scales, &b.d, &b.dmin);
        pack_q4_k(L, b);
        store(out, i, b);
        break;
      }
      case DType::Q5_K: {
        BlockQ5_K b{};
        uint8_t L[QK_K] = {};
        if (qw) min_scale_codes_weighted(xb, qw, 31, L, b.scales, &b.d, &b.dmin);
        else min_scale_codes_plain(xb, 31, -0.5f, 0.1f, 15, L, b.scales, &b.d, &b.dmin);
        pack_q5_k(L, b);
        store(out, i, b);
        break;
      }
      case DType::Q6_K: {
        BlockQ6_K b{};
        quantize_q6_k_block(xb, qw, b);
        store(out, i, b);
        break;
      }
      default:
        return;
    }
  }
}

}  // namespace ss::kernels

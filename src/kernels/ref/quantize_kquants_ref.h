// Internal entry of the K-type reference quantizers (quantize_kquants_ref.cpp), used by the
// reference dispatch in quantize_ref.cpp. Callers outside kernels/ use kernels.h
// (quantize_row_ref / quantize_row_weighted_ref).
#pragma once

#include <cstdint>

#include "safeshrink/dtype.h"

namespace ss::kernels {

// Q2_K Q3_K Q4_K Q5_K Q6_K.
bool is_kquant_weight_type(DType t);
// n: a multiple of 256. importance: nullptr (llama.cpp's quantize_row_<t>_ref) or n weights, one
// per element (llama.cpp's quantize_row_<t>_impl with quant_weights).
void quantize_kquant_ref(DType t, const float* x, void* dst, int64_t n, const float* importance);

}  // namespace ss::kernels

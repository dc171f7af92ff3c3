// The fast twins of the kernels in safeshrink/kernels.h, one entry point per instruction-set level,
// and the choice between them. The public functions (dequantize_row, matmul, ...) call the *_at()
// functions below with simd_level(); tests and benches call them with an explicit level to compare
// twins in one process. Not a public header: include it only from src/kernels/cpu/, tests and benches.
// To add a level (e.g. AVX-512): add its entry points here, a *_avx512.cpp file that defines them,
// and one case in each switch of kernels_dispatch.cpp.
#pragma once

#include <cstdint>

#include "safeshrink/cpu_features.h"
#include "safeshrink/dtype.h"

namespace ss {
class ThreadPool;
}

namespace ss::kernels::cpu {

using DequantizeRowFn = void (*)(DType t, const void* src, float* dst, int64_t n);

// ---- per-level entry points (level must not exceed what the CPU runs: see level_available) ----
bool level_available(SimdLevel level);
void dequantize_row_at(SimdLevel level, DType t, const void* src, float* dst, int64_t n);
void matmul_at(SimdLevel level, DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n,
               float* y, ThreadPool& pool);
const char* matmul_impl_name_at(SimdLevel level, DType wt, int64_t n);
// Batch size from which matmul_at() switches from the matvec kernels to SGEMM on dequantized panels.
int64_t sgemm_min_rows(SimdLevel level, DType wt);

// ---- AVX2 twins (dequantize_avx2.cpp, matvec_avx2.cpp); call only when the CPU has AVX2+FMA+F16C ----
// Types with an AVX2 dequantizer, bit-identical to dequantize_row_ref.
bool dequantize_row_avx2_has(DType t);
// Dequantizes t with AVX2 when dequantize_row_avx2_has(t), otherwise with dequantize_row_ref.
void dequantize_row_avx2(DType t, const void* src, float* dst, int64_t n);
// Weight types with an AVX2 matvec kernel (activations stay F32 for F32/F16/BF16, are quantized to
// 8-bit blocks of 32 for the *_0/*_1 types and to 8-bit blocks of 256 for the K-quants).
bool matvec_avx2_supported(DType wt);
// Y (n x m) = X (n x k) * W^T for any n, weight rows split over the pool; types that are not
// matvec_avx2_supported are dequantized tile by tile and run through the F32 kernel.
void matvec_avx2(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y,
                 ThreadPool& pool);

// ---- level-independent (matmul_sgemm.cpp) ----
// Y = X * W^T with OpenBLAS sgemm: F32 weights directly, any other type through F32 panels of W
// dequantized with `dequantize` (in parallel on the pool).
void matmul_sgemm_panels(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y,
                         ThreadPool& pool, DequantizeRowFn dequantize);

}  // namespace ss::kernels::cpu

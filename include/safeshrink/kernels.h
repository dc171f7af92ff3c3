// Numeric kernels over raw rows of any dtype. Every kernel exists twice: a scalar reference
// (`*_ref`, src/kernels/ref/, the ground truth tests compare against) and a fast twin chosen at run
// time from cpu_features() (src/kernels/cpu/, AVX2 and AVX-512). Callers use the plain names.
// Kernels know nothing of models or files. Rows are contiguous; n/k must be multiples of the block
// size of the type (callers check with dtype_row_bytes).
#pragma once

#include <cstdint>
#include <vector>

#include "safeshrink/dtype.h"
#include "safeshrink/status.h"
#include "safeshrink/tensor.h"

namespace ss {
class ThreadPool;
}

namespace ss::kernels {

// ---- reference twins (scalar, exact, slow) ----
// Every DType dequantizes (integers convert to float, BOOL to 0/1).
void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n);
// Types with a reference quantizer: F32 F16 BF16 Q8_0 Q8_1 Q4_0 Q4_1 Q5_0 Q5_1 Q8_K (the
// activation formats and ggml's simple quantizers) and Q2_K Q3_K Q4_K Q5_K Q6_K (llama.cpp's
// quantize_row_<t>_ref with its scale searches).
bool has_quantize_ref(DType t);
void quantize_row_ref(DType t, const float* src, void* dst, int64_t n);
// Importance-weighted quantization (llama.cpp's quantize_row_<t>_impl with quant_weights, the
// imatrix idea): importance holds n non-negative weights, one per element of the row (typically
// the mean of x^2 of the input column). Q2_K..Q6_K use it; other types, or importance == nullptr,
// give quantize_row_ref.
void quantize_row_weighted_ref(DType t, const float* src, void* dst, int64_t n, const float* importance);
// sum_i dequant(w)[i] * x[i], accumulated in double.
float vec_dot_ref(DType wt, const void* w_row, const float* x, int64_t k);
// Y (n x m, row-major) = X (n x k) * W^T, W is m rows of k elements of type wt.
void matmul_ref(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y);

// ---- dispatched twins ----
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Weight types matmul() runs natively (others: dequantize first).
bool matmul_supported(DType wt);
// Same contract as matmul_ref. pool == nullptr uses default_pool(). Picks matvec kernels for small n
// and SGEMM (OpenBLAS) on dequantized panels for large n.
void matmul(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y,
            ThreadPool* pool = nullptr);
// Name of the implementation matmul() uses for (wt, n) on this CPU, for benches and logs.
const char* matmul_impl_name(DType wt, int64_t n);

// Whole tensor to F32 (row-major, numel() floats).
Result<std::vector<float>> dequantize(const Tensor& t);

}  // namespace ss::kernels

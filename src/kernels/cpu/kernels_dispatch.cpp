// The dispatched kernels of safeshrink/kernels.h (dequantize_row, matmul, ...) and their per-level
// entry points (kernels/cpu/dispatch.h): which twin runs for a level, a weight type and a batch size.
// Plain x86-64 code: it only calls into the *_avx2.cpp files after checking the CPU. The scalar level
// uses the reference dequantizers and OpenBLAS (which picks its own instructions). AVX-512 CPUs run
// the AVX2 twins: there are no AVX-512 twins yet (the machine they were tuned on has no AVX-512 to
// test them with).
// Not here: the kernels themselves. To add a level or a strategy: one case per switch below, with a
// bench/kernels.cpp measurement that justifies the threshold it uses.
#include <cmath>
#include <cstdlib>
#include <limits>

#include "kernels/cpu/dispatch.h"
#include "safeshrink/kernels.h"
#include "safeshrink/thread_pool.h"

namespace ss::kernels {
namespace cpu {
namespace {

bool uses_avx2(SimdLevel level) { return level == SimdLevel::AVX2 || level == SimdLevel::AVX512; }

}  // namespace

bool level_available(SimdLevel level) {
  switch (level) {
    case SimdLevel::SCALAR: return true;
    case SimdLevel::AVX2: return cpu_features().has_avx2_level();
    case SimdLevel::AVX512: return cpu_features().has_avx512_level();
  }
  return false;
}

void dequantize_row_at(SimdLevel level, DType t, const void* src, float* dst, int64_t n) {
  if (uses_avx2(level)) return dequantize_row_avx2(t, src, dst, n);
  dequantize_row_ref(t, src, dst, n);
}

int64_t sgemm_min_rows(SimdLevel level, DType wt) {
  if (!uses_avx2(level)) return 1;  // the scalar level always goes through OpenBLAS
  if (const char* e = std::getenv("SS_SGEMM_MIN")) return std::atoll(e);
  // Measured with bench/kernels (m = 4096, k = 14336, 2 threads): below these batch sizes the
  // matvec kernels beat dequantize + sgemm.
  switch (wt) {
    case DType::F32: return 8;
    case DType::F16: case DType::BF16: return 8;
    default: return 32;
  }
}

const char* matmul_impl_name_at(SimdLevel level, DType wt, int64_t n) {
  if (n >= sgemm_min_rows(level, wt)) {
    if (wt == DType::F32) return "openblas sgemm";
    return uses_avx2(level) ? (dequantize_row_avx2_has(wt) ? "avx2 dequantize + openblas sgemm"
                                                           : "ref dequantize + openblas sgemm")
                            : "ref dequantize + openblas sgemm";
  }
  switch (wt) {
    case DType::F32: return "avx2 matvec f32";
    case DType::F16: return "avx2 matvec f16 (f16c)";
    case DType::BF16: return "avx2 matvec bf16";
    case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: case DType::Q4_1: case DType::Q5_1:
      return "avx2 matvec int8 (activations q8, blocks of 32)";
    case DType::Q4_K: case DType::Q6_K: return "avx2 matvec int8 (activations q8, blocks of 256)";
    default: return "avx2 matvec f32 on dequantized tiles";
  }
}

void matmul_at(SimdLevel level, DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n,
               float* y, ThreadPool& pool) {
  if (n >= sgemm_min_rows(level, wt)) {
    return matmul_sgemm_panels(wt, w, m, k, x, n, y, pool,
                               uses_avx2(level) ? &dequantize_row_avx2 : &dequantize_row_ref);
  }
  matvec_avx2(wt, w, m, k, x, n, y, pool);
}

}  // namespace cpu

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  cpu::dequantize_row_at(simd_level(), t, src, dst, n);
}

bool matmul_supported(DType wt) {
  switch (wt) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::Q8_0: case DType::Q4_0:
    case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q4_K: case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

void matmul(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y, ThreadPool* pool) {
  if (m <= 0 || n <= 0) return;
  const int64_t block = wt < DType::COUNT ? dtype_info(wt).block_size : 0;
  if (block == 0 || k < 0 || k % block != 0) {
    // Outside the contract (callers check dtype_row_bytes): NaN, never a read past the rows.
    for (int64_t i = 0; i < n * m; ++i) y[i] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  if (k == 0) {
    for (int64_t i = 0; i < n * m; ++i) y[i] = 0.0f;
    return;
  }
  cpu::matmul_at(simd_level(), wt, w, m, k, x, n, y, pool ? *pool : default_pool());
}

const char* matmul_impl_name(DType wt, int64_t n) { return cpu::matmul_impl_name_at(simd_level(), wt, n); }

}  // namespace ss::kernels

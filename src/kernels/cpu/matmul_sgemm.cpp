// Large-batch matmul through OpenBLAS: Y (n x m) = X (n x k) * W^T. Each thread of our pool takes a
// contiguous range of W rows and runs single-threaded cblas_sgemm on it: F32 weights directly, every
// other type through F32 panels of its rows dequantized by that thread (with the fastest dequantizer
// of the level). Measured on 2 cores (bench/kernels, n = 512): this beats one multi-threaded sgemm
// per shared panel (no hand-over between our threads and OpenBLAS's, whose idle threads spin), e.g.
// q4_0 ~125 vs ~100 GFLOP/s. Worth it once n is large enough that dequantizing (O(m k)) is small next
// to the product (O(n m k)). Not here: the choice of when to use it (kernels_dispatch.cpp) and the
// small-batch kernels. To add a strategy: a function next to this one and a bench measurement that
// shows it wins.
#include <cblas.h>

#include <algorithm>
#include <memory>

#include "kernels/cpu/dispatch.h"
#include "safeshrink/thread_pool.h"

namespace ss::kernels::cpu {
namespace {

// Bytes of one thread's F32 panel of dequantized weight rows (~290 rows at k = 14336): big enough
// that sgemm's packing of X (once per call) costs a few percent of the product, small next to the
// F32 size of the weights (panels of 64 MB were not faster, 4 MB were slower).
constexpr int64_t kPanelBytes = 16ll << 20;

// OpenBLAS keeps one process-wide thread count. Our threads each call it single-threaded for the
// duration of the product and the previous count is restored after. (Concurrent matmul calls from
// different threads of the caller all want 1 here, so they do not fight over it.)
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
    if (previous_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous_ != 1) openblas_set_num_threads(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

void sgemm_xwt(const float* x, int64_t n, int64_t k, const float* w, int64_t rows, float* y, int64_t ldy) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), static_cast<blasint>(rows),
              static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(k), w, static_cast<blasint>(k), 0.0f, y,
              static_cast<blasint>(ldy));
}

}  // namespace

void matmul_sgemm_panels(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y,
                         ThreadPool& pool, DequantizeRowFn dequantize) {
  SingleThreadedBlas single;
  if (wt == DType::F32) {
    pool.parallel_for(m, [&](int64_t b, int64_t e, int) {
      sgemm_xwt(x, n, k, static_cast<const float*>(w) + b * k, e - b, y + b, m);
    }, 8);
    return;
  }
  const DTypeInfo& info = dtype_info(wt);
  const int64_t row_bytes = info.type_size * (k / info.block_size);
  const uint8_t* wbytes = static_cast<const uint8_t*>(w);
  const int64_t panel_rows = std::max<int64_t>(8, kPanelBytes / (k * static_cast<int64_t>(sizeof(float))));
  pool.parallel_for(m, [&](int64_t b, int64_t e, int) {
    const int64_t rows_here = std::min(panel_rows, e - b);
    std::unique_ptr<float[]> panel(new float[static_cast<size_t>(rows_here * k)]);
    for (int64_t p0 = b; p0 < e; p0 += rows_here) {
      const int64_t rows = std::min(rows_here, e - p0);
      for (int64_t i = 0; i < rows; ++i) dequantize(wt, wbytes + (p0 + i) * row_bytes, panel.get() + i * k, k);
      sgemm_xwt(x, n, k, panel.get(), rows, y + p0, m);
    }
  }, 8);
}

}  // namespace ss::kernels::cpu

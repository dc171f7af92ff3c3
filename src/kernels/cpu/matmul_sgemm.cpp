// Large-batch matmul through OpenBLAS: Y (n x m) = X (n x k) * W^T as one cblas_sgemm for F32
// weights, and for every other weight type as a sequence of sgemm calls on panels of W rows
// dequantized to F32 (in parallel on our pool, with the fastest dequantizer of the level). Worth it
// once n is large enough that the dequantization (O(m k)) is small next to the product (O(n m k)).
// Not here: the choice of when to use it (kernels_dispatch.cpp) and the small-batch kernels.
// To add a strategy: a function next to these and a measurement in bench/kernels.cpp showing it wins.
#include <cblas.h>

#include <algorithm>
#include <memory>
#include <vector>
#include <cstdlib>
#include <string>

#include "kernels/cpu/dispatch.h"
#include "safeshrink/thread_pool.h"

namespace ss::kernels::cpu {
namespace {

// Bytes of one F32 panel of dequantized weight rows: large enough that sgemm runs at full speed,
// small enough to stay a fraction of the F32 weights.
const int64_t kPanelBytes = (std::getenv("SS_PANEL_MB") ? std::atoll(std::getenv("SS_PANEL_MB")) : 16) << 20;

// OpenBLAS keeps one process-wide thread count; match it to our pool for the call, restore after.
class BlasThreads {
 public:
  explicit BlasThreads(int n) : previous_(openblas_get_num_threads()) {
    if (previous_ != n) openblas_set_num_threads(n);
  }
  ~BlasThreads() {
    if (openblas_get_num_threads() != previous_) openblas_set_num_threads(previous_);
  }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

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
  const DTypeInfo& info = dtype_info(wt);
  const int64_t row_bytes = info.type_size * (k / info.block_size);
  const uint8_t* wbytes = static_cast<const uint8_t*>(w);
  const char* mode = std::getenv("SS_SGEMM_MODE");
  if (mode && std::string(mode) == "perthread") {
    BlasThreads one(1);
    const int64_t panel_rows = std::clamp<int64_t>(std::atoll(std::getenv("SS_PANEL_ROWS") ? std::getenv("SS_PANEL_ROWS") : "512"), 8, m);
    pool.parallel_for(m, [&](int64_t b, int64_t e, int) {
      if (wt == DType::F32) {
        sgemm_xwt(x, n, k, static_cast<const float*>(w) + b * k, e - b, y + b, m);
        return;
      }
      std::unique_ptr<float[]> panel(new float[static_cast<size_t>(panel_rows * k)]);
      for (int64_t p0 = b; p0 < e; p0 += panel_rows) {
        const int64_t rows = std::min(panel_rows, e - p0);
        for (int64_t i = 0; i < rows; ++i) dequantize(wt, wbytes + (p0 + i) * row_bytes, panel.get() + i * k, k);
        sgemm_xwt(x, n, k, panel.get(), rows, y + p0, m);
      }
    }, 8);
    return;
  }
  BlasThreads threads(pool.size());
  if (wt == DType::F32) {
    sgemm_xwt(x, n, k, static_cast<const float*>(w), m, y, m);
    return;
  }
  const int64_t panel_rows = std::clamp<int64_t>(kPanelBytes / (k * 4), 16, m);
  std::unique_ptr<float[]> panel(new float[static_cast<size_t>(panel_rows * k)]);
  for (int64_t p0 = 0; p0 < m; p0 += panel_rows) {
    const int64_t rows = std::min(panel_rows, m - p0);
    pool.parallel_for(rows, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) dequantize(wt, wbytes + (p0 + i) * row_bytes, panel.get() + i * k, k);
    });
    sgemm_xwt(x, n, k, panel.get(), rows, y + p0, m);
  }
}

}  // namespace ss::kernels::cpu

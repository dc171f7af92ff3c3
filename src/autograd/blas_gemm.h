// Row-major GEMM for the autograd ops, over OpenBLAS (sgemm for float, dgemm for double):
//   C (M, N) = alpha * op(A) op(B) + beta * C,  op(X) = X or X^T.
// gemm() splits the rows of C over the pool (each thread runs single-threaded BLAS on its rows,
// the scheme kernels/cpu/matmul_sgemm.cpp measured fastest on this machine); gemm_serial() is one
// single-threaded call, for use inside a parallel_for. Not here: quantized weights (kernels/).
#pragma once

#include <cstdint>

namespace ss {
class ThreadPool;
}

namespace ss::ag {

template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
template <class T>
void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Keeps OpenBLAS single-threaded for its lifetime (our pool provides the threads), then restores.
class SingleThreadedBlasScope {
 public:
  SingleThreadedBlasScope();
  ~SingleThreadedBlasScope();
  SingleThreadedBlasScope(const SingleThreadedBlasScope&) = delete;
  SingleThreadedBlasScope& operator=(const SingleThreadedBlasScope&) = delete;

 private:
  int previous_;
};

}  // namespace ss::ag

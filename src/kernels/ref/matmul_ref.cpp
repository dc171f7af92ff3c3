// Reference dot product and matrix product over weight rows of any dtype, and whole-tensor
// dequantization. The dot product dequantizes the weight row exactly (dequantize_row_ref) and
// accumulates in double, so it is the ground truth for the fast matmul twins, not a copy of
// ggml's quantized-activation arithmetic. matmul_ref is plain loops over vec_dot_ref: slow on
// purpose. To add another reference product (e.g. a batched one), build it from vec_dot_ref here.
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "safeshrink/kernels.h"

namespace ss::kernels {

float vec_dot_ref(DType wt, const void* w_row, const float* x, int64_t k) {
  if (k <= 0) return 0.0f;
  std::vector<float> w(static_cast<size_t>(k));
  dequantize_row_ref(wt, w_row, w.data(), k);
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) sum += static_cast<double>(w[i]) * static_cast<double>(x[i]);
  return static_cast<float>(sum);
}

// A k that does not fit the block size of wt breaks the caller's contract; Y is then all NaN.
void matmul_ref(DType wt, const void* w, int64_t m, int64_t k, const float* x, int64_t n, float* y) {
  if (m <= 0 || n <= 0) return;
  const auto row_bytes = dtype_row_bytes(wt, k);
  if (!row_bytes.ok()) {
    for (int64_t i = 0; i < n * m; ++i) y[i] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const auto* wb = static_cast<const uint8_t*>(w);
  for (int64_t i = 0; i < n; ++i)      // rows of X and Y
    for (int64_t j = 0; j < m; ++j)    // rows of W = columns of Y
      y[i * m + j] = vec_dot_ref(wt, wb + static_cast<uint64_t>(j) * *row_bytes, x + i * k, k);
}

Result<std::vector<float>> dequantize(const Tensor& t) {
  const std::string who = "dequantize " + (t.name.empty() ? std::string("<unnamed>") : t.name);
  int64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d < 0) return invalid_argument(who + ": negative dimension in shape " + t.shape_string());
    if (d != 0 && numel > std::numeric_limits<int64_t>::max() / d)
      return invalid_argument(who + ": element count of shape " + t.shape_string() + " overflows");
    numel *= d;
  }
  const auto need = tensor_nbytes(t.dtype, t.shape);
  if (!need.ok()) return need.status().with_context(who);
  if (t.nbytes != *need)
    return invalid_argument(who + ": " + std::to_string(t.nbytes) + " bytes, but " + dtype_name(t.dtype) + " " +
                            t.shape_string() + " needs " + std::to_string(*need));
  if (numel > 0 && !t.buffer) return invalid_argument(who + ": tensor has no bytes");
  if (t.buffer && (t.offset > t.buffer->size() || t.nbytes > t.buffer->size() - t.offset))
    return invalid_argument(who + ": bytes [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                            ") run past the end of its buffer of " + std::to_string(t.buffer->size()));
  if (static_cast<uint64_t>(numel) > std::numeric_limits<size_t>::max() / sizeof(float))
    return invalid_argument(who + ": too many elements for this machine");

  std::vector<float> out(static_cast<size_t>(numel));
  if (numel == 0) return out;
  const int64_t cols = t.cols();
  const int64_t rows = numel / cols;
  const uint64_t row_bytes = t.row_bytes();
  const uint8_t* src = t.data();
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row_ref(t.dtype, src + static_cast<uint64_t>(r) * row_bytes, out.data() + r * cols, cols);
  return out;
}

}  // namespace ss::kernels

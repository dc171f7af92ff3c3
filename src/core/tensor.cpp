// Tensor helpers: sizes, views and heap construction.
#include "safeshrink/tensor.h"

#include <cstring>
#include <limits>

namespace ss {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

uint64_t Tensor::row_bytes() const {
  auto r = dtype_row_bytes(dtype, cols());
  return r.ok() ? *r : 0;
}

uint8_t* Tensor::mutable_data() const {
  if (!buffer) return nullptr;
  uint8_t* base = const_cast<Buffer*>(buffer.get())->mutable_data();
  return base ? base + offset : nullptr;
}

Result<Tensor> Tensor::slice_rows(int64_t begin, int64_t end) const {
  if (begin < 0 || end < begin || end > rows())
    return invalid_argument(name + ": rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") out of range 0.." + std::to_string(rows()));
  Tensor t = *this;
  t.shape = {end - begin, cols()};
  t.offset = offset + static_cast<uint64_t>(begin) * row_bytes();
  t.nbytes = static_cast<uint64_t>(end - begin) * row_bytes();
  return t;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Result<uint64_t> tensor_nbytes(DType dtype, const std::vector<int64_t>& shape) {
  const int64_t cols = shape.empty() ? 1 : shape.back();
  for (int64_t d : shape)
    if (d < 0) return invalid_argument("negative dimension in shape");
  SS_ASSIGN_OR_RETURN(uint64_t row, dtype_row_bytes(dtype, cols));
  uint64_t total = row;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    const uint64_t d = static_cast<uint64_t>(shape[i]);
    if (d != 0 && total > std::numeric_limits<uint64_t>::max() / d)
      return invalid_argument("tensor byte size overflows 64 bits");
    total *= d;
  }
  return total;
}

Result<Tensor> Tensor::zeros(std::string name, DType dtype, std::vector<int64_t> shape) {
  SS_ASSIGN_OR_RETURN(uint64_t n, tensor_nbytes(dtype, shape));
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.buffer = std::make_shared<OwnedBuffer>(static_cast<size_t>(n));
  t.nbytes = n;
  return t;
}

Result<Tensor> Tensor::from_bytes(std::string name, DType dtype, std::vector<int64_t> shape, const void* bytes,
                                  uint64_t nbytes) {
  SS_ASSIGN_OR_RETURN(Tensor t, zeros(std::move(name), dtype, std::move(shape)));
  if (t.nbytes != nbytes)
    return invalid_argument(t.name + ": " + std::to_string(nbytes) + " bytes given, dtype x shape needs " +
                            std::to_string(t.nbytes));
  if (nbytes) std::memcpy(t.mutable_data(), bytes, nbytes);
  return t;
}

}  // namespace ss

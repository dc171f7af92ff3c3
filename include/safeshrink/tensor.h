// Tensor: a named, typed, shaped view over bytes owned by a Buffer (heap or mmapped file).
// Shapes are row-major (numpy/PyTorch order): shape.back() is the contiguous dimension and, for
// block types, the dimension that is cut into blocks. GGUF's ne[] is the reverse of this.
// A Tensor is a cheap value (a shared_ptr and a few numbers); copying shares the bytes.
// Not here: arithmetic (kernels/), names of model tensors (model/).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safeshrink/buffer.h"
#include "safeshrink/dtype.h"
#include "safeshrink/status.h"

namespace ss {

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;              // row-major; empty = scalar
  std::shared_ptr<const Buffer> buffer;    // keeps the bytes alive
  uint64_t offset = 0;                     // byte offset of element 0 in buffer
  uint64_t nbytes = 0;                     // bytes of the (contiguous) tensor

  int64_t numel() const;
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
  uint64_t row_bytes() const;              // bytes of one row (last dimension)
  const uint8_t* data() const { return buffer ? buffer->data() + offset : nullptr; }
  template <class T>
  const T* data_as() const { return reinterpret_cast<const T*>(data()); }
  // Writable pointer when the tensor owns heap bytes; nullptr for mapped files.
  uint8_t* mutable_data() const;
  template <class T>
  T* mutable_data_as() const { return reinterpret_cast<T*>(mutable_data()); }

  // A view of rows [begin, end) of the tensor flattened to 2-D (rows() x cols()).
  Result<Tensor> slice_rows(int64_t begin, int64_t end) const;
  std::string shape_string() const;        // "[128, 256]"

  // A zero-filled tensor on the heap. Errors if the last dimension does not fit the block size.
  static Result<Tensor> zeros(std::string name, DType dtype, std::vector<int64_t> shape);
  // Copies bytes into a new heap tensor (checks that the byte count matches dtype x shape).
  static Result<Tensor> from_bytes(std::string name, DType dtype, std::vector<int64_t> shape, const void* bytes,
                                   uint64_t nbytes);
};

// Bytes that dtype x shape needs; an error on overflow or a last dimension that does not fit blocks.
Result<uint64_t> tensor_nbytes(DType dtype, const std::vector<int64_t>& shape);

}  // namespace ss

// Bytes that tensors point into: owned heap memory or a read-only memory-mapped file.
// A Buffer is immutable once shared, except an OwnedBuffer written by its creator before sharing.
// Thread-safety: reading is safe from any thread; a MappedFile is unmapped when its last owner goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safeshrink/status.h"

namespace ss {

class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  // nullptr for read-only buffers (mapped files).
  virtual uint8_t* mutable_data() { return nullptr; }
};

class OwnedBuffer final : public Buffer {
 public:
  explicit OwnedBuffer(size_t n) : bytes_(n) {}
  explicit OwnedBuffer(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  const uint8_t* data() const override { return bytes_.data(); }
  size_t size() const override { return bytes_.size(); }
  uint8_t* mutable_data() override { return bytes_.data(); }

 private:
  std::vector<uint8_t> bytes_;
};

class MappedFile final : public Buffer {
 public:
  // Maps the whole file read-only. An empty file maps to a zero-size buffer.
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile() override;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file, e.g. a JSON config. Caps the size to guard against surprises.
Result<std::string> read_text_file(const std::string& path, size_t max_bytes = 64u << 20);
// Writes atomically: to PATH.tmp, then rename.
Status write_file_atomic(const std::string& path, const void* data, size_t n);

}  // namespace ss

// IDX image/label files (LeCun's MNIST format, also Fashion-MNIST's) into an ImageSet, and where
// Fashion-MNIST lives. An IDX file is: two zero bytes, a type byte (0x08 = unsigned byte, the only
// type images and labels use), the number of dimensions, one big-endian uint32 per dimension, then
// the row-major data. Files may be gzipped (read_file_maybe_gzip). Nothing in a header is trusted:
// every dimension is checked against the bytes left, so a truncated file or an oversized dimension
// is CORRUPT naming the file, the offset, the expected and the actual size; image and label counts
// must agree, and trailing bytes are refused.
// Not here: models and training (the rest of src/model/vision/), gzip itself (formats/gzip.cpp).
// To read one more dataset in IDX form: a loader like load_fashion_mnist that names its files and
// its Debian package; load_idx does the rest.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "safeshrink/status.h"
#include "safeshrink/vision.h"

namespace ss {
namespace {

constexpr uint8_t kIdxTypeUbyte = 0x08;
constexpr int64_t kMaxIdxDim = int64_t(1) << 31;  // per dimension

// An IDX file of unsigned bytes with the expected number of dimensions: its dims and where the
// data start.
struct IdxHeader {
  std::vector<int64_t> dims;
  size_t data_offset = 0;
};

Result<IdxHeader> parse_idx_header(const std::string& bytes, const std::string& file, int want_dims) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n < 4) return corrupt(file, 0, "IDX magic", "4 bytes", std::to_string(n) + " bytes");
  if (p[0] != 0 || p[1] != 0)
    return corrupt(file, 0, "IDX magic", "00 00 <type> <ndims>", "first bytes " + std::to_string(p[0]) + " " + std::to_string(p[1]));
  if (p[2] != kIdxTypeUbyte)
    return corrupt(file, 2, "IDX data type", "8 (0x08, unsigned byte)", std::to_string(p[2]));
  if (p[3] != want_dims)
    return corrupt(file, 3, "IDX dimension count", std::to_string(want_dims), std::to_string(p[3]));
  IdxHeader h;
  h.data_offset = 4 + 4 * size_t(want_dims);
  if (n < h.data_offset)
    return corrupt(file, n, "IDX dimensions", std::to_string(h.data_offset) + " header bytes", std::to_string(n) + " bytes (truncated)");
  uint64_t total = 1;
  std::string dims_text;
  const uint64_t data_bytes = n - h.data_offset;
  for (int d = 0; d < want_dims; ++d) {
    const uint8_t* q = p + 4 + 4 * d;
    const int64_t dim = int64_t(uint32_t(q[0]) << 24 | uint32_t(q[1]) << 16 | uint32_t(q[2]) << 8 | q[3]);
    if (dim <= 0 || dim >= kMaxIdxDim)
      return corrupt(file, 4 + 4 * d, "IDX dimension " + std::to_string(d), "1.." + std::to_string(kMaxIdxDim - 1),
                     std::to_string(dim));
    if (__builtin_mul_overflow(total, uint64_t(dim), &total))
      return corrupt(file, 4 + 4 * d, "IDX dimension " + std::to_string(d), "a product of dimensions below 2^64",
                     "an overflowing product");
    dims_text += (d ? " x " : "") + std::to_string(dim);
    h.dims.push_back(dim);
  }
  // Truncated data and oversized dimensions both show here: the header promises `total` bytes.
  if (total != data_bytes)
    return corrupt(file, h.data_offset + std::min(total, data_bytes), "IDX data",
                   std::to_string(total) + " bytes (" + dims_text + ")", std::to_string(data_bytes) + " bytes");
  return h;
}

// The name errors use: offsets in a gzipped file count bytes of its decompressed data.
std::string error_name(const std::string& path) {
  unsigned char magic[2] = {0, 0};
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    const size_t got = std::fread(magic, 1, 2, f);
    std::fclose(f);
    if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return path + " (decompressed)";
  }
  return path;
}

}  // namespace

ImageSet ImageSet::slice(int64_t begin, int64_t end) const {
  // Clamped to [0, n]; an empty range gives an empty set of the same shape.
  begin = std::clamp<int64_t>(begin, 0, n);
  end = std::clamp<int64_t>(end, begin, n);
  ImageSet s;
  s.n = end - begin;
  s.channels = channels;
  s.height = height;
  s.width = width;
  s.source = source;
  const int64_t size = image_size();
  s.pixels.assign(pixels.begin() + begin * size, pixels.begin() + end * size);
  s.labels.assign(labels.begin() + begin, labels.begin() + end);
  return s;
}

Result<ImageSet> load_idx(const std::string& images_path, const std::string& labels_path, int64_t limit) {
  if (limit < 0) return invalid_argument("load_idx: limit must be >= 0 (0 = all images), got " + std::to_string(limit));
  SS_ASSIGN_OR_RETURN(const std::string image_bytes, read_file_maybe_gzip(images_path));
  SS_ASSIGN_OR_RETURN(const IdxHeader ih, parse_idx_header(image_bytes, error_name(images_path), 3));
  SS_ASSIGN_OR_RETURN(const std::string label_bytes, read_file_maybe_gzip(labels_path));
  SS_ASSIGN_OR_RETURN(const IdxHeader lh, parse_idx_header(label_bytes, error_name(labels_path), 1));
  if (lh.dims[0] != ih.dims[0])
    return corrupt(error_name(labels_path), 4, "IDX label count",
                   std::to_string(ih.dims[0]) + " (the image count of " + images_path + ")", std::to_string(lh.dims[0]));
  ImageSet set;
  set.n = limit > 0 ? std::min(limit, ih.dims[0]) : ih.dims[0];
  set.channels = 1;
  set.height = ih.dims[1];
  set.width = ih.dims[2];
  set.source = images_path;
  const int64_t count = set.n * set.image_size();
  set.pixels.resize(size_t(count));  // (n, 1, rows, cols)
  const auto* src = reinterpret_cast<const uint8_t*>(image_bytes.data()) + ih.data_offset;
  for (int64_t i = 0; i < count; ++i) set.pixels[size_t(i)] = float(src[i]) / 255.0f;
  set.labels.resize(size_t(set.n));  // (n)
  const auto* lab = reinterpret_cast<const uint8_t*>(label_bytes.data()) + lh.data_offset;
  for (int64_t i = 0; i < set.n; ++i) set.labels[size_t(i)] = lab[i];
  return set;
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("SAFESHRINK_FASHION_MNIST");
  if (env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";  // where the Debian package dataset-fashion-mnist installs it
}

Result<ImageSet> load_fashion_mnist(const std::string& split, int64_t limit, const std::string& dir) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test") {
    prefix = "t10k";
  } else {
    return invalid_argument("load_fashion_mnist: split must be \"train\" or \"test\", got \"" + split + "\"");
  }
  const std::string folder = dir.empty() ? fashion_mnist_dir() : dir;
  // The package ships the files gzipped; an unpacked copy is read as well.
  auto find = [&](const std::string& stem) -> Result<std::string> {
    const std::string base = folder + "/" + stem;
    std::error_code ec;
    if (std::filesystem::is_regular_file(base + ".gz", ec)) return base + ".gz";
    if (std::filesystem::is_regular_file(base, ec)) return base;
    return not_found(base + ".gz: no such file (Fashion-MNIST " + split +
                     " split): install the Debian package dataset-fashion-mnist (scripts/setup) or set "
                     "SAFESHRINK_FASHION_MNIST to a folder holding the IDX files");
  };
  SS_ASSIGN_OR_RETURN(const std::string images, find(prefix + "-images-idx3-ubyte"));
  SS_ASSIGN_OR_RETURN(const std::string labels, find(prefix + "-labels-idx1-ubyte"));
  SS_ASSIGN_OR_RETURN(ImageSet set, load_idx(images, labels, limit));
  const int64_t n_classes = int64_t(fashion_mnist_class_names().size());
  for (int64_t i = 0; i < set.n; ++i)
    if (set.labels[size_t(i)] >= n_classes)
      return corrupt(error_name(labels), 8 + uint64_t(i), "Fashion-MNIST label", "0.." + std::to_string(n_classes - 1),
                     std::to_string(set.labels[size_t(i)]));
  return set;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  // Zalando's label order (fashion-mnist README).
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace ss

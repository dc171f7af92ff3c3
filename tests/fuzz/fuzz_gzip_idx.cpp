// libFuzzer entry point for the gzip/DEFLATE decoder (gunzip, inflate_raw in src/formats/gzip.cpp)
// and the IDX loader (load_idx in src/model/vision/idx.cpp). The first input byte picks the parser:
// 0 gunzip, 1 inflate_raw, 2 load_idx (the rest is split into an image file and a label file at a
// point given by the second byte, written to a temporary folder, since load_idx reads paths).
// Every input must give a Status or a result that keeps the contract: output within the cap,
// `consumed` within the input, pixels in [0, 1] and as many labels as images.
// Not here: the CMake wiring (tests/fuzz is built only with SAFESHRINK_FUZZ=ON and clang).
// To fuzz one more parser: one more file like this one, named fuzz_<format>.cpp.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "safeshrink/vision.h"

namespace {

constexpr uint64_t kMaxOutput = 1u << 24;  // keep single runs fast; the logic is the same at any cap

void write_file(const std::string& path, const uint8_t* data, size_t n) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (n && std::fwrite(data, 1, n, f) != n) std::abort();
  std::fclose(f);
}

const std::string& scratch_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/fuzz_gzip_idx_XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    return std::string(tmpl);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 3;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 0) {
    auto out = ss::gunzip(body, "fuzz.gz", kMaxOutput);
    if (out.ok() && out->size() > kMaxOutput) std::abort();
  } else if (mode == 1) {
    uint64_t consumed = 0;
    auto out = ss::inflate_raw(body, "fuzz.deflate", kMaxOutput, &consumed);
    if (out.ok() && (out->size() > kMaxOutput || consumed > body.size())) std::abort();
  } else {
    if (body.empty()) return 0;
    const size_t split = std::min<size_t>(size_t(uint8_t(body[0])) * 4, body.size() - 1);
    const auto* rest = reinterpret_cast<const uint8_t*>(body.data()) + 1;
    const std::string images = scratch_dir() + "/images", labels = scratch_dir() + "/labels";
    write_file(images, rest, split);
    write_file(labels, rest + split, body.size() - 1 - split);
    auto set = ss::load_idx(images, labels);
    if (set.ok()) {
      if (set->labels.size() != size_t(set->n) || set->pixels.size() != size_t(set->n * set->image_size()))
        std::abort();
      for (float p : set->pixels)
        if (!(p >= 0.0f && p <= 1.0f)) std::abort();
    }
  }
  return 0;
}

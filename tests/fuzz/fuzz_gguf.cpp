// libFuzzer entry point for the GGUF reader: parses the input as a whole GGUF file through
// read_gguf_memory (the same parser read_gguf runs over a mapped file), then reads every tensor byte
// and every KV, so that a reader that lets an offset escape the buffer is caught by ASan. When the
// parse succeeds it also writes the store back and reads it again: what we accept, we can write.
// Not a test with expected values (those are tests/unit/test_gguf.cpp). Seeds: any .gguf, e.g.
// ../shared/fixtures/stories260K/*.gguf. To fuzz one more parser, add a sibling fuzz_<format>.cpp.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "safeshrink/formats.h"

namespace {

// Touches every byte so that ASan sees an out-of-bounds tensor; the sum keeps the loop alive.
uint64_t touch(const ss::TensorStore& store) {
  uint64_t sum = 0;
  for (const ss::Tensor& t : store.tensors)
    for (uint64_t k = 0; k < t.nbytes; ++k) sum += t.data()[k];
  for (const auto& [key, value] : store.meta.entries()) sum += key.size() + value.summary().size();
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<ss::OwnedBuffer>(std::vector<uint8_t>(data, data + size));
  ss::Result<ss::TensorStore> store = ss::read_gguf_memory(bytes, "fuzz.gguf");
  if (!store.ok()) return 0;
  volatile uint64_t sink = touch(*store);
  (void)sink;
  // Round trip through a file (small inputs only: the fuzzer's inputs are small anyway).
  if (size > (1u << 20)) return 0;
  const auto alignment = store->meta.get_int("general.alignment");
  if (alignment && *alignment > 4096) return 0;  // valid, but padding to it would fill the disk
  const std::string path = "/tmp/fuzz_gguf." + std::to_string(getpid()) + ".gguf";
  if (ss::write_gguf(*store, path).ok()) {
    ss::Result<ss::TensorStore> again = ss::read_gguf(path);
    if (!again.ok() || again->tensors.size() != store->tensors.size() || again->meta.size() != store->meta.size())
      __builtin_trap();  // we wrote something we cannot read back
    std::remove(path.c_str());
  }
  return 0;
}

// libFuzzer entry point for the safetensors parser (read_safetensors_memory, the one parser that
// read_safetensors also uses). Every input must give a Status or a store whose tensors all lie
// inside the input; touching every tensor byte lets AddressSanitizer catch a view that does not.
// Not here: the CMake wiring (tests/fuzz is built only with SAFESHRINK_FUZZ=ON and clang).
// To fuzz one more parser: one more file like this one, named fuzz_<format>.cpp.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "safeshrink/formats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ss::ParseLimits limits;
  limits.max_header = 1u << 20;  // keep single runs fast; the logic is the same at any cap
  auto bytes = std::make_shared<ss::OwnedBuffer>(std::vector<uint8_t>(data, data + size));
  auto store = ss::read_safetensors_memory(bytes, "fuzz.safetensors", limits);
  if (!store.ok()) return 0;
  uint64_t sum = 0;
  for (const auto& t : store->tensors) {
    if (t.offset > size || t.nbytes > size - t.offset) std::abort();  // a view outside the input
    for (uint64_t k = 0; k < t.nbytes; ++k) sum += t.data()[k];
  }
  volatile uint64_t sink = sum;
  (void)sink;
  return 0;
}

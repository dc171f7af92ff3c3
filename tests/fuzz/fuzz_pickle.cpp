// libFuzzer entry point for the pickle scanner and the zip reader behind it (scan_pickle_bytes,
// scan_pytorch_zip_bytes): any input must give findings, never a crash, a hang or a read outside
// the input (AddressSanitizer checks the last). Findings must name a known severity.
// Not here: the CMake wiring (tests/fuzz/CMakeLists.txt globs fuzz_*.cpp).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "safeshrink/integrity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A heap copy of exactly SIZE bytes, so that ASan sees any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  ss::PickleScan p = ss::scan_pickle_bytes(bytes.data(), bytes.size(), "fuzz.pkl");
  for (const auto& f : p.findings)
    if (f.severity > ss::Severity::CRITICAL || f.offset > size) std::abort();
  auto z = ss::scan_pytorch_zip_bytes(bytes.data(), bytes.size(), "fuzz.pt");
  for (const auto& f : z)
    if (f.severity > ss::Severity::CRITICAL) std::abort();
  return 0;
}

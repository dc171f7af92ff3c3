// libFuzzer entry point for the Hugging Face tokenizer.json loader (Tokenizer::from_hf_json,
// src/tokenizer/tokenizer_hf.cpp): any input must give a Status or a tokenizer that can encode and
// decode a short text without crashing. The first byte chooses whether the input is tokenizer.json
// alone or tokenizer.json + tokenizer_config.json split at the first NUL byte.
// Not here: the CMake wiring (tests/fuzz/CMakeLists.txt globs fuzz_*.cpp).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "safeshrink/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::string_view tj = all, cfg;
  const size_t nul = all.find('\0');
  if (nul != std::string_view::npos) {
    tj = all.substr(0, nul);
    cfg = all.substr(nul + 1);
  }
  ss::TokenizerLimits limits;
  limits.max_vocab = 1u << 16;  // keep single runs fast; the checks are the same at any cap
  limits.max_merges = 1u << 16;
  const std::string tj_copy(tj), cfg_copy(cfg);  // exact-size heap copies for ASan
  auto t = ss::Tokenizer::from_hf_json(tj_copy, cfg_copy, "fuzz.json", limits);
  if (!t.ok()) return 0;
  auto ids = t->encode("Hello world, \xE2\x98\x95 <s> 123", true, true);
  if (ids.ok()) (void)t->decode(*ids);
  return 0;
}

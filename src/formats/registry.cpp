// Format registry and sniffing. One row per format; open_model dispatches on sniff_format.
#include <filesystem>

#include "safeshrink/formats.h"

namespace ss {

const std::vector<FormatInfo>& format_registry() {
  static const std::vector<FormatInfo> kFormats = {
      {"gguf", "GGUF v2/v3 (llama.cpp): metadata KVs and tensors in any GGUF type", ".gguf",
       "github.com/ggml-org/ggml docs/gguf.md", true, true},
      {"safetensors", "Hugging Face safetensors, single file or sharded with an index", ".safetensors",
       "github.com/huggingface/safetensors", true, true},
      {"hf-folder", "Hugging Face model folder: config.json + safetensors (+ tokenizer)", "(folder)",
       "huggingface.co/docs/transformers", true, false},
  };
  return kFormats;
}

}  // namespace ss

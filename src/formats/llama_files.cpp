// save_llama_model (include/safeshrink/llama_layout.h): one writer for every command that outputs a
// Llama-family model (quantize, prune, train, distill), so a GGUF is always in GGUF layout and an
// HF folder always has its config.json and tokenizer files next to the weights.
#include <filesystem>

#include "safeshrink/buffer.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"

namespace ss {
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Status copy_text(const std::string& from, const std::string& to) {
  SS_ASSIGN_OR_RETURN(std::string text, read_text_file(from, 1ull << 30));
  return write_file_atomic(to, text.data(), text.size());
}

}  // namespace

Status save_llama_model(const TensorStore& in, const std::string& path, const Metadata& extra) {
  if (has_suffix(path, ".gguf")) {
    if (!llama_config_from_store(in).ok()) {  // not a Llama-family store: written as it is
      TensorStore s = in;
      for (const auto& [key, value] : extra.entries()) s.meta.set(key, value);
      return write_gguf(s, path);
    }
    SS_ASSIGN_OR_RETURN(TensorStore g, llama_to_gguf_layout(in));
    for (const auto& [key, value] : extra.entries()) g.meta.set(key, value);
    return write_gguf(g, path);
  }
  if (has_suffix(path, ".safetensors")) {
    TensorStore s = in;
    for (const auto& [key, value] : extra.entries()) s.meta.set(key, value);
    return write_safetensors(s, path);
  }
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return io_error(path + ": cannot create the output folder: " + ec.message());
  SS_ASSIGN_OR_RETURN(TensorStore hf, llama_to_hf_layout(in));
  for (const auto& [key, value] : extra.entries()) hf.meta.set(key, value);
  const std::string config = *hf.meta.get_string("hf.config_json");
  SS_RETURN_IF_ERROR(write_safetensors(hf, path + "/model.safetensors"));
  SS_RETURN_IF_ERROR(write_file_atomic(path + "/config.json", config.data(), config.size()));
  if (auto tj = in.meta.get_string("hf.tokenizer_json_path"))
    SS_RETURN_IF_ERROR(copy_text(*tj, path + "/tokenizer.json"));
  if (auto tc = in.meta.get_string("hf.tokenizer_config_path"); tc && std::filesystem::exists(*tc))
    SS_RETURN_IF_ERROR(copy_text(*tc, path + "/tokenizer_config.json"));
  return Status();
}

}  // namespace ss

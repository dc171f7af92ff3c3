// Format registry, sniffing and dispatch: one row per format in format_registry(); sniff_format
// tells a path's format from its magic bytes (files) or contents (folders); open_model and
// save_model dispatch on it. Not here: parsing or writing any format (gguf.cpp, safetensors.cpp).
// To add a format: one row below, one sniffing rule in sniff_file, one branch in open_model /
// save_model.
#include <cstdio>
#include <filesystem>

#include "safeshrink/formats.h"

namespace ss {
namespace {

namespace fs = std::filesystem;

constexpr size_t kSniffBytes = 16;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string known_formats() {
  return "known: gguf (magic \"GGUF\"), safetensors (u64 little-endian header length, then '{'), "
         "model.safetensors.index.json, hf-folder (a folder with *.safetensors and config.json)";
}

std::string hex_bytes(const unsigned char* p, size_t n) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    if (i) out += ' ';
    out += buf;
  }
  return out;
}

Result<std::string> sniff_folder(const std::string& path) {
  std::error_code ec;
  const fs::path dir(path);
  bool weights = fs::is_regular_file(dir / "model.safetensors.index.json", ec);
  for (fs::directory_iterator it(dir, ec), end; !weights && !ec && it != end; it.increment(ec))
    weights = it->is_regular_file(ec) && ends_with(it->path().filename().string(), ".safetensors");
  if (ec) return io_error(path + ": cannot list the folder: " + ec.message());
  if (weights) return std::string("hf-folder");
  return unsupported(path + ": a folder without *.safetensors or model.safetensors.index.json (" + known_formats() + ")");
}

Result<std::string> sniff_file(const std::string& path, uint64_t size) {
  if (ends_with(path, ".safetensors.index.json")) return std::string("safetensors");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return io_error(path + ": cannot open to read its first bytes");
  unsigned char head[kSniffBytes] = {};
  const size_t n = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  if (n >= 4 && head[0] == 'G' && head[1] == 'G' && head[2] == 'U' && head[3] == 'F') return std::string("gguf");
  if (n >= 9 && head[8] == '{') {
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = header << 8 | head[i];
    if (header <= size - 8) return std::string("safetensors");
  }
  std::string hint;
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4)
    hint = "; this is a zip archive, e.g. a PyTorch .pt/.bin checkpoint, whose pickles are never loaded here";
  else if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    hint = "; this looks like a raw Python pickle, which is never loaded here";
  return unsupported(path + ": unknown format: first bytes " + (n ? hex_bytes(head, n) : std::string("(empty file)")) +
                     " (" + known_formats() + ")" + hint);
}

}  // namespace

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

Result<std::string> sniff_format(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return not_found(path + ": no such file or folder");
  if (fs::is_directory(st)) return sniff_folder(path);
  if (!fs::is_regular_file(st)) return invalid_argument(path + ": neither a regular file nor a folder");
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return io_error(path + ": cannot read its size: " + ec.message());
  return sniff_file(path, size);
}

Result<TensorStore> open_model(const std::string& path) {
  SS_ASSIGN_OR_RETURN(std::string format, sniff_format(path));
  if (format == "gguf") {
    SS_ASSIGN_OR_RETURN(TensorStore store, read_gguf(path));
    if (store.path.empty()) store.path = path;
    return store;
  }
  SS_ASSIGN_OR_RETURN(TensorStore store, read_safetensors(path));  // "safetensors" and "hf-folder"
  // GPTQ / AWQ packed folders (qweight, qzeros, scales): unpacked and dequantized at load.
  if (format == "hf-folder")
    for (const Tensor& t : store.tensors)
      if (ends_with(t.name, ".qweight")) return read_packed_quant_folder(path);
  return store;
}

Status save_model(const TensorStore& store, const std::string& path, const std::string& format) {
  std::string name = format;
  if (name.empty()) {
    if (ends_with(path, ".gguf")) name = "gguf";
    else if (ends_with(path, ".safetensors")) name = "safetensors";
    else return invalid_argument(path + ": cannot tell the format from the extension; name one (gguf, safetensors) "
                                 "or use .gguf / .safetensors");
  }
  if (name == "gguf") return write_gguf(store, path);
  if (name == "safetensors") return write_safetensors(store, path);
  std::string writable;
  for (const auto& f : format_registry()) {
    if (name == f.name && !f.can_write) return unsupported("format '" + name + "' can be read but not written");
    if (f.can_write) writable += (writable.empty() ? "" : ", ") + std::string(f.name);
  }
  return invalid_argument("unknown format '" + name + "' (writable: " + writable + ")");
}

}  // namespace ss

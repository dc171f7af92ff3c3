// open_tokenizer: the one call the CLI needs. A path is a GGUF file (read with read_gguf, its
// tokenizer.ggml.* metadata used), a tokenizer.json (its folder's tokenizer_config.json is read
// too), or a folder holding tokenizer.json. Kept apart from tokenizer.cpp so that programs which
// never open files do not link the GGUF reader. To accept one more kind of path: one branch here.
#include <filesystem>
#include <fstream>
#include <string>

#include "safeshrink/formats.h"
#include "safeshrink/tokenizer.h"

namespace ss {

namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F';
}

}  // namespace

Result<Tokenizer> open_tokenizer(const std::string& path, const TokenizerLimits& limits) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "tokenizer.json", ec)) return Tokenizer::from_hf_folder(path, limits);
    return not_found(path + ": folder has no tokenizer.json");
  }
  if (!fs::exists(path, ec)) return not_found(path + ": no such file or folder");
  if (fs::path(path).filename() == "tokenizer.json") {
    const std::string folder = fs::path(path).parent_path().string();
    return Tokenizer::from_hf_folder(folder.empty() ? "." : folder, limits);
  }
  if (has_gguf_magic(path)) {
    SS_ASSIGN_OR_RETURN(TensorStore store, read_gguf(path));
    return Tokenizer::from_store(store, limits);
  }
  return unsupported(path + ": not a GGUF file, a tokenizer.json or a folder holding one");
}

}  // namespace ss

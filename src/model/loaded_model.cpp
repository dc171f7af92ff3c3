// load_model_with_tokenizer: a path to a ready model (see include/safeshrink/model.h).
#include <filesystem>

#include "safeshrink/formats.h"
#include "safeshrink/model.h"

namespace ss {

Result<LoadedModel> load_model_with_tokenizer(const std::string& path, const LoadOptions& opts) {
  SS_ASSIGN_OR_RETURN(TensorStore store, open_model(path));
  LoadedModel lm;
  lm.store = std::make_shared<const TensorStore>(std::move(store));
  SS_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::load(lm.store, opts));
  lm.model = std::make_shared<const LlamaModel>(std::move(model));
  if (lm.store->meta.find("tokenizer.ggml.model")) {
    SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_store(*lm.store));
    lm.tokenizer = std::make_shared<const Tokenizer>(std::move(tok));
  } else {
    const std::filesystem::path p(path);
    const std::string folder = std::filesystem::is_directory(p) ? path : p.parent_path().string();
    auto tok = Tokenizer::from_hf_folder(folder.empty() ? "." : folder);
    if (!tok.ok()) return tok.status().with_context(path + ": no usable tokenizer");
    lm.tokenizer = std::make_shared<const Tokenizer>(std::move(tok).value());
  }
  if (static_cast<int64_t>(lm.tokenizer->vocab_size()) > lm.model->config().vocab_size)
    return invalid_argument(path + ": tokenizer has " + std::to_string(lm.tokenizer->vocab_size()) +
                            " tokens but the model's embedding has " + std::to_string(lm.model->config().vocab_size));
  return lm;
}

}  // namespace ss

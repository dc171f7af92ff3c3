// Tokenizer from GGUF metadata: reads tokenizer.ggml.* (model, tokens, scores, token_type, merges,
// pre, special ids, add_* flags) and tokenizer.chat_template with the defaults llama.cpp's
// llama_vocab::impl::load applies per model ("llama" -> SPM by score, "gpt2" -> byte-level BPE by
// rank, "bert" -> WordPiece). Every array is checked against the limits and against each other
// before use; a wrong type, a short array, a duplicate token or a merge naming an unknown token
// is an error naming the key. Not here: reading the GGUF file (formats/gguf.cpp).
// To support one more tokenizer.ggml.model: a branch in from_gguf_metadata setting its defaults.
#include <string>
#include <vector>

#include "safeshrink/tokenizer.h"
#include "tokenizer/tokenizer_model.h"

namespace ss {

namespace {

constexpr const char* kModelKey = "tokenizer.ggml.model";
constexpr const char* kTokensKey = "tokenizer.ggml.tokens";
constexpr const char* kScoresKey = "tokenizer.ggml.scores";
constexpr const char* kTypesKey = "tokenizer.ggml.token_type";
constexpr const char* kMergesKey = "tokenizer.ggml.merges";
constexpr const char* kPreKey = "tokenizer.ggml.pre";

std::string describe_type(const MetaValue& v) {
  if (v.type == MetaType::ARRAY) return std::string("array of ") + meta_type_name(v.elem);
  return meta_type_name(v.type);
}

// An optional bool key; wrong type is an error.
Status read_bool(const Metadata& meta, const std::string& source, const char* key, bool* value) {
  const MetaValue* v = meta.find(key);
  if (!v) return ok_status();
  if (v->type != MetaType::BOOL) return vocab_corrupt(source, key, "bool", describe_type(*v));
  *value = v->u != 0;
  return ok_status();
}

// An optional token id key. Out-of-range ids (e.g. 4294967295 for "none") keep the default, as
// llama.cpp does, and leave a note.
Status read_token_id(const Metadata& meta, TokenizerModel* m, const char* key, int32_t* id) {
  const MetaValue* v = meta.find(key);
  if (!v) return ok_status();
  if (!v->is_integer() || v->type == MetaType::BOOL) return vocab_corrupt(m->source, key, "an integer", describe_type(*v));
  const int64_t raw = *v->as_int();
  if (raw < 0 || static_cast<uint64_t>(raw) >= m->tokens.size()) {
    m->notes.push_back(std::string(key) + " = " + std::to_string(raw) + " is outside the vocabulary; ignored");
    return ok_status();
  }
  *id = static_cast<int32_t>(raw);
  return ok_status();
}

// A numeric array with at least N elements (llama.cpp accepts longer ones).
Status check_numeric_array(const MetaValue& v, const std::string& source, const char* key, size_t n, bool integer) {
  if (v.type != MetaType::ARRAY) return vocab_corrupt(source, key, "an array", describe_type(v));
  const bool ok_elem = integer ? (v.elem != MetaType::F32 && v.elem != MetaType::F64 && meta_type_size(v.elem) > 0 &&
                                  v.elem != MetaType::BOOL)
                               : (v.elem == MetaType::F32 || v.elem == MetaType::F64 || v.elem == MetaType::I32);
  if (!ok_elem) return vocab_corrupt(source, key, integer ? "an integer array" : "an f32 array", describe_type(v));
  if (v.count < n) return vocab_corrupt(source, key, ">= " + std::to_string(n) + " elements", std::to_string(v.count));
  const size_t elem = meta_type_size(v.elem);
  if (v.packed.size() / elem < v.count)
    return vocab_corrupt(source, key, std::to_string(v.count) + " packed elements",
                         std::to_string(v.packed.size() / elem));
  return ok_status();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf_metadata(const Metadata& meta, const std::string& source,
                                                const TokenizerLimits& limits) {
  auto m = std::make_shared<TokenizerModel>();
  m->source = source;

  const MetaValue* model_v = meta.find(kModelKey);
  if (!model_v) return not_found(source + ": no " + std::string(kModelKey) + " (the file carries no vocabulary)");
  if (model_v->type != MetaType::STRING) return vocab_corrupt(source, kModelKey, "a string", describe_type(*model_v));
  m->model_name = model_v->s;
  if (const MetaValue* pre = meta.find(kPreKey)) {
    if (pre->type != MetaType::STRING) return vocab_corrupt(source, kPreKey, "a string", describe_type(*pre));
    m->pre_name = pre->s;
  }

  // ---- tokens, scores, types ----
  const MetaValue* tokens_v = meta.find(kTokensKey);
  if (!tokens_v) return not_found(source + ": no " + std::string(kTokensKey));
  if (tokens_v->type != MetaType::ARRAY || tokens_v->elem != MetaType::STRING)
    return vocab_corrupt(source, kTokensKey, "an array of strings", describe_type(*tokens_v));
  if (tokens_v->count > limits.max_vocab)
    return vocab_corrupt(source, kTokensKey, "<= " + std::to_string(limits.max_vocab) + " tokens",
                         std::to_string(tokens_v->count));
  if (tokens_v->strings.size() != tokens_v->count)
    return vocab_corrupt(source, kTokensKey, std::to_string(tokens_v->count) + " strings",
                         std::to_string(tokens_v->strings.size()));
  if (tokens_v->count == 0) return vocab_corrupt(source, kTokensKey, "at least one token", "0");
  const size_t n = tokens_v->strings.size();

  const MetaValue* scores_v = meta.find(kScoresKey);
  if (scores_v) SS_RETURN_IF_ERROR(check_numeric_array(*scores_v, source, kScoresKey, n, false));
  const MetaValue* types_v = meta.find(kTypesKey);
  if (types_v) SS_RETURN_IF_ERROR(check_numeric_array(*types_v, source, kTypesKey, n, true));

  m->tokens.resize(n);
  for (size_t i = 0; i < n; ++i) {
    TokenEntry& t = m->tokens[i];
    t.text = tokens_v->strings[i];
    if (t.text.size() > limits.max_token_bytes)
      return vocab_corrupt(source, std::string(kTokensKey) + "[" + std::to_string(i) + "]",
                           "<= " + std::to_string(limits.max_token_bytes) + " bytes", std::to_string(t.text.size()));
    if (scores_v) t.score = static_cast<float>(*scores_v->element_double(i));
    if (types_v) {
      const int64_t raw = *types_v->element_int(i);
      if (raw < 0 || raw > 6)
        return vocab_corrupt(source, std::string(kTypesKey) + "[" + std::to_string(i) + "]", "a token type 0..6",
                             std::to_string(raw));
      t.type = static_cast<TokenType>(raw);
    }
    t.attr = token_attr_from_type(t.type);
  }

  // ---- per-model defaults (llama.cpp llama_vocab::impl::load) ----
  SpecialTokenIds& sp = m->special;
  if (m->model_name == "llama") {
    m->algorithm = TokenizerAlgorithm::SPM_SCORES;
    sp.bos = 1;
    sp.eos = 2;
    sp.unk = 0;
    m->add_space_prefix = true;
    m->add_bos = true;
    m->metaspace_decode = true;
  } else if (m->model_name == "gpt2") {
    m->algorithm = TokenizerAlgorithm::BPE_RANKS;
    sp.bos = 11;
    sp.eos = 11;
    m->byte_level_decode = true;
    SS_ASSIGN_OR_RETURN(GgufPreTokenizer pre, gguf_pre_tokenizer(m->pre_name));
    if (m->pre_name.empty()) m->notes.push_back("no tokenizer.ggml.pre: llama.cpp's default pre-tokenizer used");
    for (const auto& r : pre.regexes) {
      SS_ASSIGN_OR_RETURN(auto re, compile_split_regex(r));
      PreTokenizeStep step;
      step.kind = PreTokenizeKind::SPLIT;
      step.regex = std::move(re);
      step.behavior = SplitBehavior::ISOLATED;
      m->pre_tokenizers.push_back(std::move(step));
    }
    PreTokenizeStep bytes;
    bytes.kind = PreTokenizeKind::BYTE_LEVEL;
    m->pre_tokenizers.push_back(std::move(bytes));
    m->clean_spaces = pre.clean_spaces;
    m->ignore_merges = pre.ignore_merges;
    m->add_bos = pre.force_add_bos;
  } else if (m->model_name == "bert") {
    m->algorithm = TokenizerAlgorithm::WORDPIECE;
    sp.bos = 101;
    sp.unk = 100;
    sp.sep = 102;
    sp.pad = 0;
    sp.mask = 103;
    m->add_bos = true;
    m->add_sep = true;
    m->clean_spaces = true;
    m->metaspace_decode = true;
    m->lowercase = true;
  } else if (m->model_name == "no_vocab" || m->model_name == "none") {
    return unsupported(source + ": " + kModelKey + " = '" + m->model_name + "': the model has no vocabulary");
  } else {
    return unsupported(source + ": " + kModelKey + " = '" + m->model_name +
                       "' is not supported (supported: llama, gpt2, bert)");
  }
  for (int32_t* id : {&sp.bos, &sp.eos, &sp.unk, &sp.sep, &sp.pad, &sp.mask})
    if (*id >= 0 && static_cast<size_t>(*id) >= n) *id = kNoToken;

  SS_RETURN_IF_ERROR(read_bool(meta, source, "tokenizer.ggml.add_space_prefix", &m->add_space_prefix));
  m->strip_leading_space = m->add_space_prefix;

  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.bos_token_id", &sp.bos));
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.cls_token_id", &sp.bos));  // older BERT files
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.eos_token_id", &sp.eos));
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.eot_token_id", &sp.eot));
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.unknown_token_id", &sp.unk));
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.seperator_token_id", &sp.sep));
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.padding_token_id", &sp.pad));
  SS_RETURN_IF_ERROR(read_token_id(meta, m.get(), "tokenizer.ggml.mask_token_id", &sp.mask));
  SS_RETURN_IF_ERROR(read_bool(meta, source, "tokenizer.ggml.add_bos_token", &m->add_bos));
  SS_RETURN_IF_ERROR(read_bool(meta, source, "tokenizer.ggml.add_eos_token", &m->add_eos));
  SS_RETURN_IF_ERROR(read_bool(meta, source, "tokenizer.ggml.add_sep_token", &m->add_sep));
  if (m->algorithm == TokenizerAlgorithm::WORDPIECE) {
    SS_RETURN_IF_ERROR(read_bool(meta, source, "tokenizer.ggml.normalizer.lowercase", &m->lowercase));
    m->strip_accents = m->lowercase;
    SS_RETURN_IF_ERROR(read_bool(meta, source, "tokenizer.ggml.normalizer.strip_accents", &m->strip_accents));
  }

  if (const MetaValue* tpl = meta.find("tokenizer.chat_template")) {
    if (tpl->type != MetaType::STRING)
      return vocab_corrupt(source, "tokenizer.chat_template", "a string", describe_type(*tpl));
    if (tpl->s.size() > limits.max_template_bytes)
      return vocab_corrupt(source, "tokenizer.chat_template", "<= " + std::to_string(limits.max_template_bytes) + " bytes",
                           std::to_string(tpl->s.size()));
    m->chat_template = tpl->s;
  }

  // llama.cpp marks Phi-3's special tokens rstrip by model name (its per-token attributes are not
  // in the GGUF file); we follow it so the test vectors agree.
  if (auto name = meta.get_string("general.name")) {
    std::string lower = *name;
    for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    if (lower.find("phi-3") != std::string::npos || lower.find("phi3") != std::string::npos) {
      for (auto& t : m->tokens)
        if (t.attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED | TOKEN_ATTR_UNKNOWN)) t.attr |= TOKEN_ATTR_RSTRIP;
      for (auto& t : m->tokens) {
        if (t.text == "</s>") t.attr |= TOKEN_ATTR_RSTRIP;
        if (t.text == "<unk>" || t.text == "<s>" || t.text == "<|endoftext|>")
          t.attr = static_cast<uint16_t>(t.attr & ~TOKEN_ATTR_RSTRIP);
      }
    }
  }

  SS_RETURN_IF_ERROR(finalize_tokenizer_model(m.get()));

  // ---- merges (after the id map exists, so that each rule can be checked) ----
  if (m->algorithm == TokenizerAlgorithm::BPE_RANKS) {
    const MetaValue* merges_v = meta.find(kMergesKey);
    if (!merges_v) return not_found(source + ": no " + std::string(kMergesKey) + " (required for a gpt2 tokenizer)");
    if (merges_v->type != MetaType::ARRAY || merges_v->elem != MetaType::STRING)
      return vocab_corrupt(source, kMergesKey, "an array of strings", describe_type(*merges_v));
    if (merges_v->count > limits.max_merges || merges_v->strings.size() > limits.max_merges)
      return vocab_corrupt(source, kMergesKey, "<= " + std::to_string(limits.max_merges) + " merges",
                           std::to_string(merges_v->count));
    if (merges_v->strings.size() != merges_v->count)
      return vocab_corrupt(source, kMergesKey, std::to_string(merges_v->count) + " strings",
                           std::to_string(merges_v->strings.size()));
    m->merge_rank.reserve(merges_v->strings.size());
    for (size_t i = 0; i < merges_v->strings.size(); ++i) {
      const std::string& rule = merges_v->strings[i];
      const size_t space = rule.size() > 1 ? rule.find(' ', 1) : std::string::npos;
      if (space == std::string::npos)
        return vocab_corrupt(source, std::string(kMergesKey) + "[" + std::to_string(i) + "]", "'left right'",
                             quote_token(rule));
      SS_RETURN_IF_ERROR(add_merge(m.get(), std::string_view(rule).substr(0, space),
                                   std::string_view(rule).substr(space + 1), static_cast<int32_t>(i), i));
    }
  }
  return Tokenizer(std::move(m));
}

Result<Tokenizer> Tokenizer::from_store(const TensorStore& store, const TokenizerLimits& limits) {
  return from_gguf_metadata(store.meta, store.path.empty() ? std::string("gguf") : store.path, limits);
}

}  // namespace ss

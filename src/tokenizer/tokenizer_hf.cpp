// Tokenizer from a Hugging Face folder: tokenizer.json (model.type "BPE": vocab, merges in either
// "a b" or ["a", "b"] form, byte_fallback, fuse_unk, ignore_merges; normalizers Prepend /
// Replace / Lowercase / Strip / NFC (identity, noted) / Sequence; pre-tokenizers ByteLevel /
// Metaspace / Split / Digits / Sequence; decoders ByteLevel / Metaspace / the SentencePiece-style
// Replace+ByteFallback+Fuse+Strip sequence; added_tokens with special, lstrip, rstrip) and
// tokenizer_config.json (chat_template, bos/eos/unk/pad tokens as strings or objects,
// add_bos_token, add_eos_token). JSON comes from strangers: sizes, nesting, ids and every type
// are checked; nlohmann exceptions are caught here and become CORRUPT statuses.
// Not here: WordPiece/Unigram tokenizer.json models (refused as UNSUPPORTED).
// To support one more pre-tokenizer or normalizer type: one branch in parse_pre_tokenizer /
// parse_normalizer producing a PreTokenizeStep / NormalizeStep.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "safeshrink/buffer.h"
#include "safeshrink/tokenizer.h"
#include "tokenizer/tokenizer_model.h"

namespace ss {

namespace {

using json = nlohmann::json;

constexpr int kMaxJsonNesting = 256;

// Deepest nesting of [ and { outside strings (nlohmann's destructor recurses).
int json_nesting(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

Result<json> parse_json(std::string_view text, const std::string& source, const TokenizerLimits& limits) {
  if (text.size() > limits.max_json_bytes)
    return corrupt(source, 0, "JSON size", "<= " + std::to_string(limits.max_json_bytes) + " bytes",
                   std::to_string(text.size()));
  const int depth = json_nesting(text);
  if (depth > kMaxJsonNesting)
    return corrupt(source, 0, "JSON nesting", "<= " + std::to_string(kMaxJsonNesting), std::to_string(depth));
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return corrupt(source, 0, "JSON", "a valid JSON document", "a parse error");
  return j;
}

// A token given as "text" or {"content": "text", ...}; "" when absent or null.
std::string token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

Result<std::shared_ptr<const SplitRegex>> regex_of_pattern(const json& pattern, std::string* literal,
                                                           const std::string& source, const std::string& where) {
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
    return compile_split_regex(pattern["Regex"].get<std::string>());
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
    *literal = pattern["String"].get<std::string>();
    return std::shared_ptr<const SplitRegex>();
  }
  return vocab_corrupt(source, where + ".pattern", "{\"Regex\": ...} or {\"String\": ...}", pattern.dump().substr(0, 80));
}

Status parse_normalizer(const json& n, TokenizerModel* m, const std::string& where) {
  if (n.is_null()) return ok_status();
  if (!n.is_object() || !n.contains("type") || !n["type"].is_string())
    return vocab_corrupt(m->source, where, "an object with a type", n.dump().substr(0, 80));
  const std::string type = n["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = n.value("normalizers", json::array());
    if (!list.is_array()) return vocab_corrupt(m->source, where + ".normalizers", "an array", list.type_name());
    for (size_t i = 0; i < list.size(); ++i)
      SS_RETURN_IF_ERROR(parse_normalizer(list[i], m, where + ".normalizers[" + std::to_string(i) + "]"));
    return ok_status();
  }
  NormalizeStep step;
  if (type == "Prepend") {
    step.kind = NormalizeKind::PREPEND;
    step.a = n.value("prepend", std::string());
  } else if (type == "Replace") {
    step.kind = NormalizeKind::REPLACE;
    std::string literal;
    SS_ASSIGN_OR_RETURN(step.regex, regex_of_pattern(n.value("pattern", json()), &literal, m->source, where));
    step.a = literal;
    step.b = n.value("content", std::string());
    if (!step.regex && step.a.empty()) return ok_status();
  } else if (type == "Lowercase") {
    step.kind = NormalizeKind::LOWERCASE;
  } else if (type == "Strip") {
    step.kind = NormalizeKind::STRIP;
    step.left = n.value("strip_left", true);
    step.right = n.value("strip_right", true);
  } else if (type == "NFC" || type == "NFKC") {
    m->notes.push_back("normalizer " + type + " is not applied: text is assumed to be in " + type + " already");
    return ok_status();
  } else {
    return unsupported(m->source + ": " + where + ": normalizer type '" + type + "' is not supported");
  }
  m->normalizers.push_back(std::move(step));
  return ok_status();
}

Result<SplitBehavior> parse_behavior(const json& b, const std::string& source, const std::string& where) {
  const std::string s = b.is_string() ? b.get<std::string>() : "";
  if (s == "Isolated") return SplitBehavior::ISOLATED;
  if (s == "Removed") return SplitBehavior::REMOVED;
  if (s == "MergedWithPrevious") return SplitBehavior::MERGED_WITH_PREVIOUS;
  if (s == "MergedWithNext") return SplitBehavior::MERGED_WITH_NEXT;
  if (s == "Contiguous") return SplitBehavior::CONTIGUOUS;
  return vocab_corrupt(source, where + ".behavior", "Isolated, Removed, MergedWithPrevious, MergedWithNext or Contiguous",
                       b.dump().substr(0, 40));
}

constexpr const char* kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Status parse_pre_tokenizer(const json& p, TokenizerModel* m, const std::string& where) {
  if (p.is_null()) return ok_status();
  if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
    return vocab_corrupt(m->source, where, "an object with a type", p.dump().substr(0, 80));
  const std::string type = p["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = p.value("pretokenizers", json::array());
    if (!list.is_array()) return vocab_corrupt(m->source, where + ".pretokenizers", "an array", list.type_name());
    for (size_t i = 0; i < list.size(); ++i)
      SS_RETURN_IF_ERROR(parse_pre_tokenizer(list[i], m, where + ".pretokenizers[" + std::to_string(i) + "]"));
    return ok_status();
  }
  PreTokenizeStep step;
  if (type == "ByteLevel") {
    step.kind = PreTokenizeKind::BYTE_LEVEL;
    step.add_prefix_space = p.value("add_prefix_space", false);
    if (p.value("use_regex", true)) {
      SS_ASSIGN_OR_RETURN(step.regex, compile_split_regex(kByteLevelRegex));
    }
    step.behavior = SplitBehavior::ISOLATED;
    m->byte_level_decode = true;
  } else if (type == "Split") {
    step.kind = PreTokenizeKind::SPLIT;
    SS_ASSIGN_OR_RETURN(step.regex, regex_of_pattern(p.value("pattern", json()), &step.literal, m->source, where));
    SS_ASSIGN_OR_RETURN(step.behavior, parse_behavior(p.value("behavior", json()), m->source, where));
    step.invert = p.value("invert", false);
  } else if (type == "Metaspace") {
    step.kind = PreTokenizeKind::METASPACE;
    step.replacement = p.value("replacement", std::string(kMetaspace));
    if (step.replacement.empty()) return vocab_corrupt(m->source, where + ".replacement", "a non-empty string", "\"\"");
    const std::string scheme = p.value("prepend_scheme", std::string());
    if (scheme == "always") step.prepend = MetaspacePrepend::ALWAYS;
    else if (scheme == "first") step.prepend = MetaspacePrepend::FIRST;
    else if (scheme == "never") step.prepend = MetaspacePrepend::NEVER;
    else step.prepend = p.value("add_prefix_space", true) ? MetaspacePrepend::ALWAYS : MetaspacePrepend::NEVER;
    step.split = p.value("split", true);
    m->metaspace_decode = true;
    m->strip_leading_space = step.prepend != MetaspacePrepend::NEVER;
  } else if (type == "Digits") {
    step.kind = PreTokenizeKind::DIGITS;
    step.individual_digits = p.value("individual_digits", false);
    SS_ASSIGN_OR_RETURN(step.regex, compile_split_regex(step.individual_digits ? R"(\p{N})" : R"(\p{N}+)"));
    step.behavior = SplitBehavior::ISOLATED;
  } else {
    return unsupported(m->source + ": " + where + ": pre-tokenizer type '" + type + "' is not supported");
  }
  m->pre_tokenizers.push_back(std::move(step));
  return ok_status();
}

// Decoders only choose how pieces are rendered; the pre-tokenizer usually already did.
Status parse_decoder(const json& d, TokenizerModel* m, const std::string& where) {
  if (d.is_null()) return ok_status();
  if (!d.is_object() || !d.contains("type") || !d["type"].is_string())
    return vocab_corrupt(m->source, where, "an object with a type", d.dump().substr(0, 80));
  const std::string type = d["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = d.value("decoders", json::array());
    if (!list.is_array()) return vocab_corrupt(m->source, where + ".decoders", "an array", list.type_name());
    for (size_t i = 0; i < list.size(); ++i)
      SS_RETURN_IF_ERROR(parse_decoder(list[i], m, where + ".decoders[" + std::to_string(i) + "]"));
  } else if (type == "ByteLevel") {
    m->byte_level_decode = true;
  } else if (type == "Metaspace") {
    m->metaspace_decode = true;
    m->strip_leading_space = d.value("prepend_scheme", std::string("always")) != "never" && d.value("add_prefix_space", true);
  } else if (type == "Replace") {
    std::string literal;
    SS_ASSIGN_OR_RETURN(auto re, regex_of_pattern(d.value("pattern", json()), &literal, m->source, where));
    if (!re && literal == kMetaspace && d.value("content", std::string()) == " ") m->metaspace_decode = true;
  } else if (type == "Strip") {
    if (d.value("content", std::string()) == " " && d.value("start", 0) >= 1) m->strip_leading_space = true;
  } else if (type == "ByteFallback" || type == "Fuse") {
    // <0xXX> tokens are typed BYTE and decoded to their byte; pieces are concatenated anyway
  } else {
    m->notes.push_back("decoder '" + type + "' is not modelled; pieces are concatenated as they are");
  }
  return ok_status();
}

// BOS/EOS addition from a TemplateProcessing post-processor ("single": [<bos>, $A, <eos>]).
void parse_post_processor(const json& p, TokenizerModel* m, bool* bos, bool* eos) {
  if (!p.is_object()) return;
  const std::string type = p.value("type", std::string());
  if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const auto& q : p["processors"]) parse_post_processor(q, m, bos, eos);
    return;
  }
  if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array()) return;
  bool seen_sequence = false;
  for (const auto& piece : p["single"]) {
    if (!piece.is_object()) continue;
    if (piece.contains("Sequence")) {
      seen_sequence = true;
    } else if (piece.contains("SpecialToken") && piece["SpecialToken"].is_object()) {
      const std::string id = piece["SpecialToken"].value("id", std::string());
      const int32_t tok = m->find(id);
      if (tok == kNoToken) continue;
      if (!seen_sequence) {
        *bos = true;
        if (m->special.bos == kNoToken) m->special.bos = tok;
      } else {
        *eos = true;
        if (m->special.eos == kNoToken) m->special.eos = tok;
      }
    }
  }
}

Result<Tokenizer> build_from_json(const json& tj, const json& cfg, const std::string& source,
                                  const TokenizerLimits& limits) {
  auto m = std::make_shared<TokenizerModel>();
  m->source = source;
  m->model_name = "hf-bpe";
  m->pre_name = "hf";
  m->algorithm = TokenizerAlgorithm::BPE_RANKS;
  m->hf_fallback = true;

  if (!tj.is_object()) return vocab_corrupt(source, "document", "a JSON object", tj.type_name());
  if (!tj.contains("model") || !tj["model"].is_object())
    return vocab_corrupt(source, "model", "an object", tj.contains("model") ? tj["model"].type_name() : "nothing");
  const json& model = tj["model"];
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE")
    return unsupported(source + ": model.type '" + type + "' is not supported (only BPE)");
  if (!model.value("continuing_subword_prefix", json()).is_null() || !model.value("end_of_word_suffix", json()).is_null()) {
    const json prefix = model.value("continuing_subword_prefix", json());
    const json suffix = model.value("end_of_word_suffix", json());
    if ((prefix.is_string() && !prefix.get<std::string>().empty()) || (suffix.is_string() && !suffix.get<std::string>().empty()))
      return unsupported(source + ": BPE with continuing_subword_prefix / end_of_word_suffix is not supported");
  }
  m->byte_fallback = model.value("byte_fallback", false);
  m->fuse_unk = model.value("fuse_unk", false);
  m->ignore_merges = model.value("ignore_merges", false);
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() > 0)
    m->notes.push_back("BPE dropout is ignored: encoding is deterministic");

  // ---- vocabulary: model.vocab plus added_tokens ----
  if (!model.contains("vocab") || !model["vocab"].is_object())
    return vocab_corrupt(source, "model.vocab", "an object {token: id}", model.contains("vocab") ? model["vocab"].type_name() : "nothing");
  const json& vocab = model["vocab"];
  if (vocab.size() > limits.max_vocab)
    return vocab_corrupt(source, "model.vocab", "<= " + std::to_string(limits.max_vocab) + " tokens", std::to_string(vocab.size()));
  const json added = tj.value("added_tokens", json::array());
  if (!added.is_array()) return vocab_corrupt(source, "added_tokens", "an array", added.type_name());
  if (added.size() > limits.max_vocab)
    return vocab_corrupt(source, "added_tokens", "<= " + std::to_string(limits.max_vocab) + " tokens", std::to_string(added.size()));

  // Ids are dense in real files; a little slack for gaps, but a 20-byte file must not make us
  // allocate a 4M-entry table.
  const uint64_t id_bound = std::min<uint64_t>(limits.max_vocab, vocab.size() + added.size() + 65536);
  auto check_id = [&](const json& v, const std::string& what) -> Result<int32_t> {
    if (!v.is_number_integer()) return vocab_corrupt(source, what, "an integer id", v.type_name());
    const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                           ? INT64_MAX
                           : v.get<int64_t>();
    if (id < 0 || static_cast<uint64_t>(id) >= id_bound)
      return vocab_corrupt(source, what, "an id in [0, " + std::to_string(id_bound) + ")", std::to_string(id));
    return static_cast<int32_t>(id);
  };
  std::vector<char> filled;
  auto place = [&](int32_t id, const std::string& text, const std::string& what) -> Status {
    if (text.size() > limits.max_token_bytes)
      return vocab_corrupt(source, what, "<= " + std::to_string(limits.max_token_bytes) + " bytes", std::to_string(text.size()));
    if (static_cast<size_t>(id) >= m->tokens.size()) {
      m->tokens.resize(static_cast<size_t>(id) + 1);
      filled.resize(static_cast<size_t>(id) + 1, 0);
    }
    if (filled[id] && m->tokens[id].text != text)
      return vocab_corrupt(source, what, "one text per id", "id " + std::to_string(id) + " for " +
                                                               quote_token(m->tokens[id].text) + " and " + quote_token(text));
    m->tokens[id].text = text;
    filled[id] = 1;
    return ok_status();
  };
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string what = "model.vocab[" + quote_token(it.key()) + "]";
    SS_ASSIGN_OR_RETURN(int32_t id, check_id(it.value(), what));
    SS_RETURN_IF_ERROR(place(id, it.key(), what));
    m->tokens[id].type = TokenType::NORMAL;
  }
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    const std::string what = "added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string())
      return vocab_corrupt(source, what, "an object with id and content", a.type_name());
    SS_ASSIGN_OR_RETURN(int32_t id, check_id(a.value("id", json()), what + ".id"));
    SS_RETURN_IF_ERROR(place(id, a["content"].get<std::string>(), what));
    TokenEntry& t = m->tokens[id];
    t.type = a.value("special", false) ? TokenType::CONTROL : TokenType::USER_DEFINED;
    t.attr = token_attr_from_type(t.type);
    if (a.value("lstrip", false)) t.attr |= TOKEN_ATTR_LSTRIP;
    if (a.value("rstrip", false)) t.attr |= TOKEN_ATTR_RSTRIP;
    if (a.value("single_word", false))
      m->notes.push_back("added token " + quote_token(t.text) + ": single_word is not honoured (matched anywhere)");
  }
  if (m->tokens.empty()) return vocab_corrupt(source, "model.vocab", "at least one token", "0");
  size_t gaps = 0;
  for (size_t i = 0; i < m->tokens.size(); ++i) {
    TokenEntry& t = m->tokens[i];
    if (!filled[i]) {
      t.type = TokenType::UNDEFINED;
      ++gaps;
    } else if (t.type == TokenType::NORMAL && m->byte_fallback && parse_byte_token(t.text) >= 0) {
      t.type = TokenType::BYTE;
    }
    if (t.type == TokenType::NORMAL || t.type == TokenType::BYTE || t.type == TokenType::UNDEFINED)
      t.attr = token_attr_from_type(t.type);
  }
  if (gaps) m->notes.push_back(std::to_string(gaps) + " ids have no token (gaps in the vocabulary)");

  const std::string unk = model.value("unk_token", json()).is_string() ? model["unk_token"].get<std::string>() : "";
  if (!unk.empty()) {
    m->special.unk = kNoToken;
    for (size_t i = 0; i < m->tokens.size(); ++i)
      if (filled[i] && m->tokens[i].text == unk) m->special.unk = static_cast<int32_t>(i);
    if (m->special.unk == kNoToken)
      return vocab_corrupt(source, "model.unk_token", "a token of the vocabulary", quote_token(unk));
    TokenEntry& t = m->tokens[m->special.unk];
    t.type = TokenType::UNKNOWN;
    t.attr = static_cast<uint16_t>((t.attr & (TOKEN_ATTR_LSTRIP | TOKEN_ATTR_RSTRIP)) | TOKEN_ATTR_UNKNOWN);
  }

  // ---- pipeline ----
  SS_RETURN_IF_ERROR(parse_normalizer(tj.value("normalizer", json()), m.get(), "normalizer"));
  SS_RETURN_IF_ERROR(parse_pre_tokenizer(tj.value("pre_tokenizer", json()), m.get(), "pre_tokenizer"));
  SS_RETURN_IF_ERROR(parse_decoder(tj.value("decoder", json()), m.get(), "decoder"));
  // A normalizer that prepends "▁" (Llama/Mistral style) strips that space again when decoding.
  for (const auto& n : m->normalizers)
    if (n.kind == NormalizeKind::PREPEND && n.a == kMetaspace) m->strip_leading_space = true;

  // ---- special tokens from tokenizer_config.json ----
  if (cfg.is_object()) {
    auto lookup = [&](const char* key, int32_t* id) -> Status {
      if (!cfg.contains(key) || cfg[key].is_null()) return ok_status();
      const std::string text = token_content(cfg[key]);
      if (text.empty()) return ok_status();
      const int32_t found = m->find(text);
      if (found == kNoToken) {
        // finalize has not run yet: search the table directly
        for (size_t i = 0; i < m->tokens.size(); ++i)
          if (m->tokens[i].text == text) {
            *id = static_cast<int32_t>(i);
            return ok_status();
          }
        return vocab_corrupt(source, std::string("tokenizer_config.json ") + key, "a token of the vocabulary", quote_token(text));
      }
      *id = found;
      return ok_status();
    };
    SS_RETURN_IF_ERROR(lookup("bos_token", &m->special.bos));
    SS_RETURN_IF_ERROR(lookup("eos_token", &m->special.eos));
    SS_RETURN_IF_ERROR(lookup("pad_token", &m->special.pad));
    if (m->special.unk == kNoToken) SS_RETURN_IF_ERROR(lookup("unk_token", &m->special.unk));
    if (cfg.contains("chat_template")) {
      const json& t = cfg["chat_template"];
      if (t.is_string()) {
        m->chat_template = t.get<std::string>();
      } else if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const auto& e : t)
          if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template") && e["template"].is_string())
            m->chat_template = e["template"].get<std::string>();
      }
      if (m->chat_template.size() > limits.max_template_bytes)
        return vocab_corrupt(source, "chat_template", "<= " + std::to_string(limits.max_template_bytes) + " bytes",
                             std::to_string(m->chat_template.size()));
    }
  }

  SS_RETURN_IF_ERROR(finalize_tokenizer_model(m.get()));

  bool bos = false, eos = false;
  parse_post_processor(tj.value("post_processor", json()), m.get(), &bos, &eos);
  m->add_bos = bos;
  m->add_eos = eos;
  if (cfg.is_object()) {
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) m->add_bos = cfg["add_bos_token"].get<bool>();
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) m->add_eos = cfg["add_eos_token"].get<bool>();
  }
  if (m->special.eos != kNoToken) m->end_of_generation.insert(m->special.eos);

  // ---- merges ----
  const json merges = model.value("merges", json::array());
  if (!merges.is_array()) return vocab_corrupt(source, "model.merges", "an array", merges.type_name());
  if (merges.size() > limits.max_merges)
    return vocab_corrupt(source, "model.merges", "<= " + std::to_string(limits.max_merges) + " merges", std::to_string(merges.size()));
  m->merge_rank.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& r = merges[i];
    if (r.is_string()) {
      const std::string rule = r.get<std::string>();
      const size_t space = rule.size() > 1 ? rule.find(' ', 1) : std::string::npos;
      if (space == std::string::npos)
        return vocab_corrupt(source, "model.merges[" + std::to_string(i) + "]", "'left right'", quote_token(rule));
      SS_RETURN_IF_ERROR(add_merge(m.get(), std::string_view(rule).substr(0, space), std::string_view(rule).substr(space + 1),
                                   static_cast<int32_t>(i), i));
    } else if (r.is_array() && r.size() == 2 && r[0].is_string() && r[1].is_string()) {
      SS_RETURN_IF_ERROR(add_merge(m.get(), r[0].get<std::string>(), r[1].get<std::string>(), static_cast<int32_t>(i), i));
    } else {
      return vocab_corrupt(source, "model.merges[" + std::to_string(i) + "]", "\"a b\" or [\"a\", \"b\"]",
                           r.dump().substr(0, 60));
    }
  }
  return Tokenizer(std::move(m));
}

}  // namespace

Result<Tokenizer> Tokenizer::from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                          const std::string& source, const TokenizerLimits& limits) {
  try {
    SS_ASSIGN_OR_RETURN(json tj, parse_json(tokenizer_json, source, limits));
    json cfg;
    if (!tokenizer_config_json.empty()) {
      SS_ASSIGN_OR_RETURN(cfg, parse_json(tokenizer_config_json, source + " (tokenizer_config.json)", limits));
    }
    return build_from_json(tj, cfg, source, limits);
  } catch (const std::exception& e) {  // nlohmann type errors on hostile JSON
    return vocab_corrupt(source, "JSON", "the tokenizer.json schema", e.what());
  }
}

Result<Tokenizer> Tokenizer::from_hf_folder(const std::string& folder, const TokenizerLimits& limits) {
  namespace fs = std::filesystem;
  const std::string tj_path = (fs::path(folder) / "tokenizer.json").string();
  SS_ASSIGN_OR_RETURN(std::string tj, read_text_file(tj_path, limits.max_json_bytes));
  std::string cfg;
  const fs::path cfg_path = fs::path(folder) / "tokenizer_config.json";
  std::error_code ec;
  if (fs::exists(cfg_path, ec)) {
    SS_ASSIGN_OR_RETURN(cfg, read_text_file(cfg_path.string(), limits.max_json_bytes));
  }
  SS_ASSIGN_OR_RETURN(Tokenizer tok, from_hf_json(tj, cfg, tj_path, limits));
  const fs::path jinja = fs::path(folder) / "chat_template.jinja";
  if (tok.chat_template().empty() && fs::exists(jinja, ec)) {
    SS_ASSIGN_OR_RETURN(std::string tpl, read_text_file(jinja.string(), limits.max_template_bytes));
    auto m = std::make_shared<TokenizerModel>(*tok.model_);
    m->chat_template = std::move(tpl);
    return Tokenizer(std::move(m));
  }
  return tok;
}

}  // namespace ss

// Byte-level BPE training and the writers of a trained vocabulary: HF tokenizer.json /
// tokenizer_config.json and the GGUF tokenizer.ggml.* keys, both read back by our own Tokenizer.
// Training counts the words that the GPT-2 byte-level regex cuts out of the texts, then merges the
// most frequent adjacent pair (ties: smallest raw bytes of left, then right) until the vocabulary
// is full; pair counts are updated only for the words a merge touches. Not here: encoding with the
// trained vocabulary (bpe_ranks.cpp does it, through the reader), SentencePiece or WordPiece
// training. To write one more format: a function taking a TrainedBpe, declared in tokenizer.h.
#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "safeshrink/buffer.h"
#include "safeshrink/tokenizer.h"
#include "tokenizer/tokenizer_model.h"

namespace ss {
namespace {

// The HF ByteLevel pre-tokenizer's regex (the same text as in tokenizer_hf.cpp).
constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Word {
  std::vector<int32_t> symbols;
  int64_t count = 0;
};

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

void add_pairs(const Word& w, int64_t sign, std::unordered_map<uint64_t, int64_t>* counts) {
  for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
    auto& c = (*counts)[pair_key(w.symbols[i], w.symbols[i + 1])];
    c += sign * w.count;
  }
}

// Cuts TEXT at every occurrence of a special token's text; appends the pieces between them.
void split_at_specials(std::string_view text, const std::vector<std::string>& specials, std::vector<std::string_view>* out) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    for (const auto& s : specials) {
      if (s.empty()) continue;
      const size_t at = text.find(s, pos);
      if (at != std::string_view::npos && (at < best || (at == best && s.size() > best_len))) {
        best = at;
        best_len = s.size();
      }
    }
    if (best == std::string_view::npos) {
      if (pos < text.size()) out->push_back(text.substr(pos));
      return;
    }
    if (best > pos) out->push_back(text.substr(pos, best - pos));
    pos = best + best_len;
  }
}

Status validate_config(const BpeTrainConfig& c) {
  std::set<std::string> seen;
  for (const auto& s : c.special_tokens) {
    if (s.empty()) return invalid_argument("BpeTrainConfig.special_tokens: an empty token");
    if (!seen.insert(s).second) return invalid_argument("BpeTrainConfig.special_tokens: '" + s + "' listed twice");
    if (utf8_first_invalid(s) != std::string::npos) return invalid_argument("BpeTrainConfig.special_tokens: invalid UTF-8");
  }
  const int64_t base = 256 + static_cast<int64_t>(c.special_tokens.size());
  if (c.vocab_size < base || c.vocab_size > (1 << 22))
    return invalid_argument("BpeTrainConfig.vocab_size: expected " + std::to_string(base) + ".." +
                            std::to_string(1 << 22) + " (256 bytes + special tokens at least), got " +
                            std::to_string(c.vocab_size));
  if (c.min_pair_count < 1) return invalid_argument("BpeTrainConfig.min_pair_count: expected >= 1");
  for (const std::string* named : {&c.bos_token, &c.eos_token, &c.pad_token})
    if (!named->empty() && !seen.count(*named))
      return invalid_argument("BpeTrainConfig: '" + *named + "' (bos/eos/pad) is not one of special_tokens");
  return ok_status();
}

}  // namespace

const std::string& chatml_jinja_template() {
  static const std::string t =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
      "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  return t;
}

Result<TrainedBpe> train_bpe(const std::vector<std::string>& texts, const BpeTrainConfig& config) {
  SS_RETURN_IF_ERROR(validate_config(config));
  uint64_t total = 0;
  for (const auto& t : texts) {
    total += t.size();
    if (total > config.max_total_bytes)
      return invalid_argument("train_bpe: the texts exceed max_total_bytes (" + std::to_string(config.max_total_bytes) + ")");
  }
  SS_ASSIGN_OR_RETURN(auto regex, compile_split_regex(kGpt2Regex));

  // ---- word counts ----
  std::unordered_map<std::string, int64_t> word_counts;
  std::vector<std::string_view> pieces;
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t t = 0; t < texts.size(); ++t) {
    const size_t bad = utf8_first_invalid(texts[t]);
    if (bad != std::string::npos)
      return invalid_argument("train_bpe: text " + std::to_string(t) + " is not valid UTF-8 at byte " + std::to_string(bad));
    pieces.clear();
    split_at_specials(texts[t], config.special_tokens, &pieces);
    for (std::string_view piece : pieces) {
      matches.clear();
      SS_RETURN_IF_ERROR(regex_find_all(*regex, piece, &matches));
      for (const auto& [b, e] : matches)
        if (e > b) ++word_counts[std::string(piece.substr(b, e - b))];
    }
  }

  TrainedBpe out;
  std::vector<std::string> raw;  // raw bytes of each token, by id (specials: their text)
  for (const auto& s : config.special_tokens) {
    out.tokens.push_back(s);
    out.special.push_back(true);
    raw.push_back(s);
  }
  const int32_t first_byte = static_cast<int32_t>(out.tokens.size());
  std::unordered_map<std::string, int32_t> raw_to_id;
  for (int b = 0; b < 256; ++b) {
    const std::string r(1, static_cast<char>(b));
    raw_to_id[r] = static_cast<int32_t>(out.tokens.size());
    out.tokens.push_back(byte_level_char(static_cast<uint8_t>(b)));
    out.special.push_back(false);
    raw.push_back(r);
  }

  // Sorted so that every later loop is in a deterministic order.
  std::vector<std::pair<std::string, int64_t>> sorted_words(word_counts.begin(), word_counts.end());
  word_counts.clear();
  std::sort(sorted_words.begin(), sorted_words.end());
  std::vector<Word> words;
  words.reserve(sorted_words.size());
  for (const auto& [text, count] : sorted_words) {
    Word w;
    w.count = count;
    for (unsigned char c : text) w.symbols.push_back(first_byte + c);
    words.push_back(std::move(w));
  }
  sorted_words.clear();

  std::unordered_map<uint64_t, int64_t> pair_counts;
  for (const auto& w : words) add_pairs(w, +1, &pair_counts);
  std::set<uint64_t> merged_pairs;

  while (static_cast<int64_t>(out.tokens.size()) < config.vocab_size) {
    // ---- the best pair: highest count, then smallest (raw left, raw right) ----
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [key, count] : pair_counts) {
      if (count <= 0) continue;
      bool better = count > best_count;
      if (!better && count == best_count) {
        const int32_t a = static_cast<int32_t>(key >> 32), b = static_cast<int32_t>(key & 0xffffffffu);
        const int32_t ba = static_cast<int32_t>(best >> 32), bb = static_cast<int32_t>(best & 0xffffffffu);
        const int c = raw[a].compare(raw[ba]);
        better = c < 0 || (c == 0 && raw[b].compare(raw[bb]) < 0);
      }
      if (better) {
        best = key;
        best_count = count;
      }
    }
    if (best_count < config.min_pair_count || best_count == 0) break;
    const int32_t a = static_cast<int32_t>(best >> 32), b = static_cast<int32_t>(best & 0xffffffffu);
    const std::string merged_raw = raw[a] + raw[b];
    int32_t merged;
    auto found = raw_to_id.find(merged_raw);
    if (found != raw_to_id.end()) {
      merged = found->second;  // the string exists already (made by another pair): reuse its id
    } else {
      merged = static_cast<int32_t>(out.tokens.size());
      raw_to_id.emplace(merged_raw, merged);
      out.tokens.push_back(byte_level_encode(merged_raw));
      out.special.push_back(false);
      raw.push_back(merged_raw);
    }
    if (merged_pairs.insert(best).second) out.merges.emplace_back(out.tokens[a], out.tokens[b]);

    // ---- apply to the words holding the pair (left to right, non-overlapping) ----
    for (auto& w : words) {
      bool has = false;
      for (size_t i = 0; i + 1 < w.symbols.size() && !has; ++i) has = w.symbols[i] == a && w.symbols[i + 1] == b;
      if (!has) continue;
      add_pairs(w, -1, &pair_counts);
      std::vector<int32_t> next;
      next.reserve(w.symbols.size());
      for (size_t i = 0; i < w.symbols.size(); ++i) {
        if (i + 1 < w.symbols.size() && w.symbols[i] == a && w.symbols[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(w.symbols[i]);
        }
      }
      w.symbols = std::move(next);
      add_pairs(w, +1, &pair_counts);
    }
    for (auto it = pair_counts.begin(); it != pair_counts.end();) it = it->second <= 0 ? pair_counts.erase(it) : std::next(it);
  }

  auto id_of = [&](const std::string& text) -> int32_t {
    for (size_t i = 0; i < config.special_tokens.size(); ++i)
      if (config.special_tokens[i] == text) return static_cast<int32_t>(i);
    return kNoToken;
  };
  out.bos = id_of(config.bos_token);
  out.eos = id_of(config.eos_token);
  out.pad = id_of(config.pad_token);
  out.chat_template = chatml_jinja_template();
  return out;
}

std::string bpe_tokenizer_json(const TrainedBpe& bpe) {
  using ojson = nlohmann::ordered_json;
  ojson added = ojson::array();
  for (size_t i = 0; i < bpe.tokens.size(); ++i) {
    if (!bpe.special[i]) continue;
    added.push_back(ojson{{"id", i},           {"content", bpe.tokens[i]}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false},   {"normalized", false},      {"special", true}});
  }
  ojson vocab = ojson::object();
  for (size_t i = 0; i < bpe.tokens.size(); ++i) vocab[bpe.tokens[i]] = i;
  ojson merges = ojson::array();
  for (const auto& [l, r] : bpe.merges) merges.push_back(ojson::array({l, r}));
  const ojson byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  ojson doc = {{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", added},
               {"normalizer", nullptr},
               {"pre_tokenizer", byte_level},
               {"post_processor", byte_level},
               {"decoder", byte_level},
               {"model",
                {{"type", "BPE"},
                 {"dropout", nullptr},
                 {"unk_token", nullptr},
                 {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr},
                 {"fuse_unk", false},
                 {"byte_fallback", false},
                 {"ignore_merges", false},
                 {"vocab", vocab},
                 {"merges", merges}}}};
  return doc.dump(1) + "\n";
}

std::string bpe_tokenizer_config_json(const TrainedBpe& bpe) {
  using ojson = nlohmann::ordered_json;
  auto text = [&](int32_t id) -> ojson {
    if (id < 0 || static_cast<size_t>(id) >= bpe.tokens.size()) return nullptr;
    return bpe.tokens[id];
  };
  ojson doc = {{"add_bos_token", false},
               {"add_eos_token", false},
               {"bos_token", text(bpe.bos)},
               {"eos_token", text(bpe.eos)},
               {"pad_token", text(bpe.pad)},
               {"unk_token", nullptr},
               {"clean_up_tokenization_spaces", false},
               {"model_max_length", 2048},
               {"tokenizer_class", "PreTrainedTokenizerFast"},
               {"chat_template", bpe.chat_template}};
  return doc.dump(1) + "\n";
}

Metadata bpe_gguf_metadata(const TrainedBpe& bpe) {
  Metadata m;
  m.set("tokenizer.ggml.model", MetaValue::of_string("gpt2"));
  m.set("tokenizer.ggml.pre", MetaValue::of_string("gpt-2"));
  m.set("tokenizer.ggml.tokens", MetaValue::of_strings(bpe.tokens));
  std::vector<int32_t> types(bpe.tokens.size());
  for (size_t i = 0; i < types.size(); ++i)
    types[i] = static_cast<int32_t>(bpe.special[i] ? TokenType::CONTROL : TokenType::NORMAL);
  m.set("tokenizer.ggml.token_type", MetaValue::of_array(MetaType::I32, types));
  std::vector<std::string> merges;
  merges.reserve(bpe.merges.size());
  for (const auto& [l, r] : bpe.merges) merges.push_back(l + " " + r);
  m.set("tokenizer.ggml.merges", MetaValue::of_strings(std::move(merges)));
  if (bpe.bos != kNoToken) m.set("tokenizer.ggml.bos_token_id", MetaValue::of_u32(static_cast<uint32_t>(bpe.bos)));
  if (bpe.eos != kNoToken) m.set("tokenizer.ggml.eos_token_id", MetaValue::of_u32(static_cast<uint32_t>(bpe.eos)));
  if (bpe.pad != kNoToken) m.set("tokenizer.ggml.padding_token_id", MetaValue::of_u32(static_cast<uint32_t>(bpe.pad)));
  m.set("tokenizer.ggml.add_bos_token", MetaValue::of_bool(false));
  m.set("tokenizer.ggml.add_eos_token", MetaValue::of_bool(false));
  m.set("tokenizer.chat_template", MetaValue::of_string(bpe.chat_template));
  return m;
}

Status write_bpe_tokenizer_folder(const TrainedBpe& bpe, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create the folder: " + ec.message());
  const std::string tj = bpe_tokenizer_json(bpe);
  const std::string cfg = bpe_tokenizer_config_json(bpe);
  SS_RETURN_IF_ERROR(write_file_atomic((fs::path(dir) / "tokenizer.json").string(), tj.data(), tj.size()));
  return write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), cfg.data(), cfg.size());
}

Result<Tokenizer> train_bpe_tokenizer(const std::vector<std::string>& texts, const BpeTrainConfig& config) {
  SS_ASSIGN_OR_RETURN(TrainedBpe bpe, train_bpe(texts, config));
  return Tokenizer::from_hf_json(bpe_tokenizer_json(bpe), bpe_tokenizer_config_json(bpe), "trained tokenizer.json");
}

}  // namespace ss

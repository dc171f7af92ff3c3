// Tokenizer: text <-> token ids for the models we load, built from a GGUF file's vocabulary
// metadata (tokenizer.ggml.*) or from a Hugging Face folder (tokenizer.json + tokenizer_config.json).
// Three algorithms: SentencePiece-style BPE by token score ("llama" in GGUF), byte-level or
// byte-fallback BPE by merge rank ("gpt2" in GGUF, model.type "BPE" in tokenizer.json) and
// WordPiece ("bert" in GGUF). Behaviour follows llama.cpp's llama-vocab.cpp for GGUF vocabularies
// (checked against its test vectors in ../shared/fixtures/tokenizers) and the HF tokenizers
// library for tokenizer.json. Not here: chat-template rendering (templates are matched, never
// executed), the model, the CLI. A Tokenizer is immutable after construction and safe to share
// between threads; copies share one vocabulary.
// To add a GGUF pre-tokenizer: one row in the table in src/tokenizer/pretokenizer_regex.cpp.
// To add an algorithm: a TokenizerAlgorithm value, its encoder in src/tokenizer/, one case in
// Tokenizer::encode.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "safeshrink/metadata.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
};
const char* token_type_name(TokenType t);

enum class TokenizerAlgorithm : uint8_t {
  SPM_SCORES,  // GGUF "llama": merge the adjacent pair whose merged piece scores highest
  BPE_RANKS,   // GGUF "gpt2", HF "BPE": merge the adjacent pair with the lowest merge rank
  WORDPIECE,   // GGUF "bert": greedy longest match per word
};
const char* tokenizer_algorithm_name(TokenizerAlgorithm a);

inline constexpr int32_t kNoToken = -1;

// Hard caps on a vocabulary read from an untrusted file.
struct TokenizerLimits {
  uint64_t max_vocab = 1u << 22;          // 4,194,304 tokens
  uint64_t max_merges = 1u << 23;         // 8,388,608 merge rules
  uint64_t max_token_bytes = 1u << 16;    // bytes of one token's text
  uint64_t max_template_bytes = 1u << 22; // bytes of the chat template
  uint64_t max_json_bytes = 1ull << 30;   // bytes of tokenizer.json
};

// Ids of the special tokens; kNoToken when the vocabulary has none.
struct SpecialTokenIds {
  int32_t bos = kNoToken;
  int32_t eos = kNoToken;
  int32_t eot = kNoToken;  // end of turn (<|eot_id|>, <|im_end|>, <|end|>, ...)
  int32_t unk = kNoToken;
  int32_t pad = kNoToken;
  int32_t sep = kNoToken;
  int32_t mask = kNoToken;
};

struct DecodeOptions {
  // Render control and unknown tokens as their text ("<s>"); false renders them as "".
  // User-defined tokens are always rendered (as llama.cpp does).
  bool print_special = false;
  // Drop a leading BOS / trailing EOS that encode(add_special = true) would have added.
  bool remove_added_special = false;
  // Apply the model's clean-up of spaces before punctuation (" ," -> ","), when the model asks
  // for it (GGUF byte-level BPE except deepseek/qwen2/...). false gives a lossless round trip.
  bool clean_up_spaces = true;
};

struct TokenizerModel;  // the vocabulary and its rules (src/tokenizer/tokenizer_model.h)

class Tokenizer {
 public:
  // From GGUF key/values (tokenizer.ggml.model, .tokens, .scores, .token_type, .merges, .pre,
  // special ids, add_bos/add_eos/add_space_prefix, tokenizer.chat_template). SOURCE names the
  // file in error messages.
  static Result<Tokenizer> from_gguf_metadata(const Metadata& meta, const std::string& source = "gguf",
                                               const TokenizerLimits& limits = {});
  static Result<Tokenizer> from_store(const TensorStore& store, const TokenizerLimits& limits = {});
  // From the texts of tokenizer.json and tokenizer_config.json (the latter may be empty).
  static Result<Tokenizer> from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                        const std::string& source = "tokenizer.json",
                                        const TokenizerLimits& limits = {});
  // FOLDER holds tokenizer.json and optionally tokenizer_config.json / chat_template.jinja.
  static Result<Tokenizer> from_hf_folder(const std::string& folder, const TokenizerLimits& limits = {});

  // ADD_SPECIAL adds BOS/EOS (or CLS/SEP) as the vocabulary asks. PARSE_SPECIAL matches the text
  // of control tokens in TEXT as single tokens (longest first); user-defined tokens are always
  // matched. TEXT must be valid UTF-8.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special, bool parse_special) const;
  Result<std::string> decode(const std::vector<int32_t>& ids, const DecodeOptions& opts = {}) const;
  // The bytes one token stands for (byte tokens give one raw byte, "▁" becomes a space, byte-level
  // characters become their bytes). Control/unknown tokens give "" unless PRINT_SPECIAL.
  Result<std::string> token_to_piece(int32_t id, bool print_special = false) const;

  size_t vocab_size() const;
  // The token's text as stored in the vocabulary ("▁the", "Ġthe", "<0x0A>"); empty if out of range.
  std::string_view token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;  // UNDEFINED if out of range
  float token_score(int32_t id) const;     // 0 if out of range or the vocabulary has no scores
  int32_t token_id(std::string_view text) const;  // kNoToken if absent

  const SpecialTokenIds& special_ids() const;
  bool add_bos() const;
  bool add_eos() const;
  // True for EOS, EOT and the other tokens that end a generation (<|im_end|>, <|endoftext|>, ...).
  bool is_end_of_generation(int32_t id) const;

  TokenizerAlgorithm algorithm() const;
  const std::string& model_name() const;          // "llama", "gpt2", "bert", "hf-bpe"
  const std::string& pre_tokenizer_name() const;  // GGUF tokenizer.ggml.pre, or "" / "hf"
  const std::string& chat_template() const;       // empty when the model has none
  // Where this tokenizer knowingly differs from the reference (e.g. "normalizer NFC not applied").
  const std::vector<std::string>& notes() const;

  explicit Tokenizer(std::shared_ptr<const TokenizerModel> model);

 private:
  std::shared_ptr<const TokenizerModel> model_;
};

// For the CLI: PATH is a .gguf file, a tokenizer.json, or a folder holding tokenizer.json (or a
// single .gguf). Nothing more than the Tokenizer API.
Result<Tokenizer> open_tokenizer(const std::string& path, const TokenizerLimits& limits = {});


// ---- Training a byte-level BPE vocabulary (src/tokenizer/bpe_train.cpp) ----
// Our own trainer for the built-in model's vocabulary: texts are split by the GPT-2 byte-level
// regex (the HF ByteLevel pre-tokenizer), every byte is a base token, and the most frequent adjacent
// pair is merged until the vocabulary holds vocab_size tokens. Ties are broken by byte order (the
// pair whose left token's raw bytes, then right token's raw bytes, compare smallest), so training is
// deterministic. Ids: the special tokens first (in config order), then the 256 bytes in byte order,
// then one token per merge that makes a new string.
struct BpeTrainConfig {
  int32_t vocab_size = 2048;      // total, special tokens and the 256 bytes included
  int64_t min_pair_count = 2;     // stop early when the best pair occurs fewer times
  // <|endoftext|> is BOS (not added by default), <|im_end|> is EOS/end of turn, <pad> is padding.
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"};
  std::string bos_token = "<|endoftext|>", eos_token = "<|im_end|>", pad_token = "<pad>";
  uint64_t max_total_bytes = 1ull << 31;  // refuse larger training sets
};

struct TrainedBpe {
  std::vector<std::string> tokens;  // by id; byte-level spelling ("Ġthe"); specials verbatim
  std::vector<bool> special;        // by id
  std::vector<std::pair<std::string, std::string>> merges;  // by rank, byte-level spelling
  int32_t bos = kNoToken, eos = kNoToken, pad = kNoToken;
  std::string chat_template;        // ChatML (detected as the "chatml" family)
};

// The ChatML Jinja template written into trained vocabularies.
const std::string& chatml_jinja_template();

// Special-token texts occurring in TEXTS are cut out before counting (they never merge).
Result<TrainedBpe> train_bpe(const std::vector<std::string>& texts, const BpeTrainConfig& config = {});
// HF tokenizer.json (model BPE, ByteLevel pre-tokenizer/decoder, added special tokens) and
// tokenizer_config.json (bos/eos/pad, chat_template, add_bos_token false).
std::string bpe_tokenizer_json(const TrainedBpe& bpe);
std::string bpe_tokenizer_config_json(const TrainedBpe& bpe);
// GGUF keys: tokenizer.ggml.model = "gpt2", .pre = "gpt-2", .tokens, .token_type, .merges,
// .bos/.eos/.padding_token_id, .add_bos_token = false, tokenizer.chat_template.
Metadata bpe_gguf_metadata(const TrainedBpe& bpe);
// Writes DIR/tokenizer.json and DIR/tokenizer_config.json (DIR is created).
Status write_bpe_tokenizer_folder(const TrainedBpe& bpe, const std::string& dir);
// train_bpe, then our reader on its tokenizer.json.
Result<Tokenizer> train_bpe_tokenizer(const std::vector<std::string>& texts, const BpeTrainConfig& config = {});

}  // namespace ss

// TokenizerModel: the data behind a Tokenizer (vocabulary, merge ranks, pre-tokenizer steps,
// special-token rules) and the internal functions of the tokenizer room. Builders
// (tokenizer_gguf.cpp, tokenizer_hf.cpp) fill one and call finalize_tokenizer_model(); encoders
// (spm_scores.cpp, bpe_ranks.cpp, wordpiece.cpp) only read it. Not a public API: include only from
// src/tokenizer/. To add a pre-tokenizer step: a PreTokenizeKind value and one case in
// pre_tokenize() (pretokenizer_regex.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "safeshrink/status.h"
#include "safeshrink/tokenizer.h"

namespace ss {

// Token attributes, a bit set (llama.cpp's llama_token_attr, restricted to what we use).
enum TokenAttr : uint16_t {
  TOKEN_ATTR_NORMAL = 1u << 0,
  TOKEN_ATTR_UNKNOWN = 1u << 1,
  TOKEN_ATTR_CONTROL = 1u << 2,
  TOKEN_ATTR_USER_DEFINED = 1u << 3,
  TOKEN_ATTR_UNUSED = 1u << 4,
  TOKEN_ATTR_BYTE = 1u << 5,
  TOKEN_ATTR_LSTRIP = 1u << 6,  // when matched in text, eat the whitespace to its left
  TOKEN_ATTR_RSTRIP = 1u << 7,  // ... and to its right
};
uint16_t token_attr_from_type(TokenType t);

struct TokenEntry {
  std::string text;
  float score = 0.0f;
  TokenType type = TokenType::NORMAL;
  uint16_t attr = TOKEN_ATTR_NORMAL;
};

// Hash for unordered_map<std::string, ...> that also finds by string_view without a copy.
struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, TransparentStringHash, std::equal_to<>>;

// ---- UTF-8 (unicode_text.cpp) ----
// Byte length of the UTF-8 sequence starting at S[0] (1 for a stray continuation byte).
size_t utf8_sequence_length(unsigned char lead);
// Offset of the first invalid byte, or npos when TEXT is valid UTF-8 (no overlongs, surrogates
// or code points above U+10FFFF).
size_t utf8_first_invalid(std::string_view text);
// Decodes the code point at TEXT[*pos] (which must be valid UTF-8) and advances *pos.
uint32_t utf8_decode_at(std::string_view text, size_t* pos);
void utf8_append(uint32_t cp, std::string* out);
// Unicode White_Space (Python's and llama.cpp's \s): \t-\r, space, U+0085, U+00A0, U+1680, ...
bool is_white_space(uint32_t cp);
// Simple lowercase mapping (glibc's C.UTF-8 tables; ASCII only if that locale is missing).
uint32_t unicode_to_lower(uint32_t cp);
// GPT-2's byte <-> printable code point mapping ("Ġ" for ' ', "Ċ" for '\n', ...).
const std::string& byte_level_char(uint8_t byte);          // UTF-8 of the code point for BYTE
int byte_level_byte(uint32_t code_point);                  // the byte, or -1 if not in the map
std::string byte_level_encode(std::string_view raw);       // every byte -> its code point
std::string byte_level_decode(std::string_view mapped);    // inverse; unknown chars pass through
// "<0x0A>" -> 10; -1 when TEXT is not of that form.
int parse_byte_token(std::string_view text);
// Replaces every occurrence of FROM (non-empty) by TO.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);
inline constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// ---- regular expressions (pretokenizer_regex.cpp), PCRE2 with UTF + UCP ----
class SplitRegex;
// Compiles PATTERN; \s and \S mean Unicode White_Space as in llama.cpp's tables and Python.
Result<std::shared_ptr<const SplitRegex>> compile_split_regex(const std::string& pattern);
// Byte ranges [begin, end) of the matches of RE in TEXT, left to right, non-overlapping.
Status regex_find_all(const SplitRegex& re, std::string_view text, std::vector<std::pair<size_t, size_t>>* matches);

struct GgufPreTokenizer {
  std::vector<std::string> regexes;  // applied in sequence, each splitting the previous pieces
  bool clean_spaces = true;
  bool ignore_merges = false;
  bool force_add_bos = false;
};
// The llama.cpp pre-tokenizer for tokenizer.ggml.pre = NAME ("" means llama.cpp's default).
Result<GgufPreTokenizer> gguf_pre_tokenizer(const std::string& name);

// ---- pipeline for BPE_RANKS: normalizers, then pre-tokenizer steps ----
enum class NormalizeKind : uint8_t { PREPEND, REPLACE, LOWERCASE, STRIP };
struct NormalizeStep {
  NormalizeKind kind = NormalizeKind::REPLACE;
  std::string a;  // PREPEND: prefix; REPLACE: literal pattern (or unused if regex)
  std::string b;  // REPLACE: content
  std::shared_ptr<const SplitRegex> regex;  // REPLACE with a regex pattern
  bool left = true, right = true;           // STRIP
};

enum class SplitBehavior : uint8_t { ISOLATED, REMOVED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS };
enum class PreTokenizeKind : uint8_t { SPLIT, BYTE_LEVEL, METASPACE, DIGITS };
enum class MetaspacePrepend : uint8_t { ALWAYS, FIRST, NEVER };
struct PreTokenizeStep {
  PreTokenizeKind kind = PreTokenizeKind::SPLIT;
  std::shared_ptr<const SplitRegex> regex;  // SPLIT; BYTE_LEVEL when use_regex
  std::string literal;                       // SPLIT by a literal string instead of a regex
  SplitBehavior behavior = SplitBehavior::ISOLATED;
  bool invert = false;
  bool add_prefix_space = false;             // BYTE_LEVEL
  std::string replacement;                   // METASPACE
  MetaspacePrepend prepend = MetaspacePrepend::ALWAYS;
  bool split = true;                         // METASPACE: split on the replacement
  bool individual_digits = false;            // DIGITS
};

struct TokenizerModel {
  std::string source;  // file name for messages
  TokenizerAlgorithm algorithm = TokenizerAlgorithm::BPE_RANKS;
  std::string model_name;
  std::string pre_name;
  std::vector<TokenEntry> tokens;
  StringIdMap text_to_id;
  // Merge rank by "left\xFFright" (0xFF never occurs in UTF-8, so the key is unambiguous).
  StringIdMap merge_rank;

  // BPE_RANKS
  std::vector<NormalizeStep> normalizers;
  std::vector<PreTokenizeStep> pre_tokenizers;
  bool ignore_merges = false;
  bool hf_fallback = false;  // HF rules for chars not in vocab: <0xXX> byte fallback, else unk
  bool byte_fallback = false;
  bool fuse_unk = false;

  // SPM_SCORES (llama.cpp): prefix " " at the start and after each special token; " " -> "▁"
  bool add_space_prefix = false;
  // WORDPIECE
  bool lowercase = false;
  bool strip_accents = false;

  // decoding
  bool byte_level_decode = false;   // map byte-level characters back to bytes
  bool metaspace_decode = false;    // "▁" -> " "
  bool strip_leading_space = false; // drop one leading space of the first piece
  bool clean_spaces = false;        // llama.cpp's clean-up of " ,", " 's", ...

  SpecialTokenIds special;
  bool add_bos = false;
  bool add_eos = false;
  bool add_sep = false;
  std::set<int32_t> end_of_generation;
  std::vector<int32_t> special_match_order;  // control/user-defined/unknown ids, longest text first
  std::array<std::vector<int32_t>, 256> special_by_first_byte;  // the same ids, by first byte
  std::array<int32_t, 256> byte_token{};     // "<0xXX>" ids (kNoToken if absent)
  size_t max_token_bytes = 0;
  std::string chat_template;
  std::vector<std::string> notes;

  int32_t find(std::string_view text) const {
    auto it = text_to_id.find(text);
    return it == text_to_id.end() ? kNoToken : it->second;
  }
  bool has(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < tokens.size(); }
};

// CORRUPT "SOURCE: WHAT: expected EXPECTED, got ACTUAL" for a vocabulary given as key/values or
// JSON, where no byte offset exists (GGUF byte offsets belong to the GGUF reader).
Status vocab_corrupt(const std::string& source, std::string_view what, std::string_view expected,
                     std::string_view actual);
// Printable, truncated form of a token text for messages.
std::string quote_token(std::string_view text);

// Builds text_to_id (duplicates are an error), byte_token, the special-token match order and the
// end-of-generation set; checks special ids. Call once after tokens and special ids are set.
Status finalize_tokenizer_model(TokenizerModel* m);
// "left\xFFright"
std::string merge_key(std::string_view left, std::string_view right);
// Parses one GGUF/HF merge "left right" (split at the first space after the first byte) and
// checks that left, right and left+right are tokens; stores its rank.
Status add_merge(TokenizerModel* m, std::string_view left, std::string_view right, int32_t rank, uint64_t index);

// ---- encoders: append ids for one text fragment (no special tokens inside) ----
Status encode_spm_scores(const TokenizerModel& m, std::string_view text, std::vector<int32_t>* out);
Status encode_bpe_ranks(const TokenizerModel& m, std::string_view text, bool first_fragment,
                        std::vector<int32_t>* out);
Status encode_wordpiece(const TokenizerModel& m, std::string_view text, std::vector<int32_t>* out);
// Normalizes and splits TEXT per m.normalizers / m.pre_tokenizers into words for BPE.
Status pre_tokenize(const TokenizerModel& m, std::string_view text, bool first_fragment,
                    std::vector<std::string>* words);

}  // namespace ss

// Pre-tokenization: PCRE2 regular expressions (UTF + UCP), the table of llama.cpp pre-tokenizers
// chosen by GGUF tokenizer.ggml.pre, and the normalize/split pipeline that turns a text fragment
// into the words BPE merges within. The regex strings are the data of llama.cpp's
// src/llama-vocab.cpp (llm_tokenizer_bpe); like llama.cpp, each regex of a list splits every piece
// left by the previous one, and both the matches and the text between them become pieces.
// Literal non-ASCII ranges are written as \x{...} so that no editor can normalize them.
// Not here: the merges themselves (bpe_ranks.cpp). To add a pre-tokenizer: one row in
// kPreTokenizers below (names, regexes, flags as llama.cpp's llama_vocab::impl::load sets them).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace ss {

// Unicode White_Space (what Python's regex module and llama.cpp's unicode tables call \s).
static constexpr const char* kWhiteSpaceClass =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

class SplitRegex {
 public:
  SplitRegex(pcre2_code* code, std::string pattern) : code_(code), pattern_(std::move(pattern)) {}
  ~SplitRegex() { pcre2_code_free(code_); }
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;
  const pcre2_code* code() const { return code_; }
  const std::string& pattern() const { return pattern_; }

 private:
  pcre2_code* code_;
  std::string pattern_;
};

namespace {

// Rewrites \s and \S (outside and inside character classes) to the White_Space set, so the
// split does not depend on PCRE2's own idea of \s (which leaves out U+0085).
std::string expand_whitespace_escapes(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t class_start = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[i + 1];
      if (n == 's') {
        if (in_class) {
          out += kWhiteSpaceClass;
        } else {
          out += "[";
          out += kWhiteSpaceClass;
          out += "]";
        }
        ++i;
        continue;
      }
      if (n == 'S' && !in_class) {
        out += "[^";
        out += kWhiteSpaceClass;
        out += "]";
        ++i;
        continue;
      }
      out += c;
      out += n;
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      class_start = i;
      out += c;
      continue;
    }
    if (in_class && c == ']') {
      // "[]..." and "[^]..." keep a literal ']' as the first member
      const bool first_member = (i == class_start + 1) || (i == class_start + 2 && pattern[class_start + 1] == '^');
      if (!first_member) in_class = false;
    }
    out += c;
  }
  return out;
}

}  // namespace

Result<std::shared_ptr<const SplitRegex>> compile_split_regex(const std::string& pattern) {
  const std::string expanded = expand_whitespace_escapes(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(expanded.data()), expanded.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error_code, &error_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    return invalid_argument("pre-tokenizer regex '" + pattern + "': " + reinterpret_cast<const char*>(message) +
                            " at offset " + std::to_string(error_offset));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is used if it fails
  return std::shared_ptr<const SplitRegex>(std::make_shared<SplitRegex>(code, pattern));
}

Status regex_find_all(const SplitRegex& re, std::string_view text, std::vector<std::pair<size_t, size_t>>* matches) {
  matches->clear();
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(re.code(), nullptr), &pcre2_match_data_free);
  if (!md) return internal_error("pcre2_match_data_create_from_pattern failed");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    // The text is valid UTF-8 (checked once by Tokenizer::encode), so skip PCRE2's own check.
    const int rc = pcre2_match(re.code(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      return invalid_argument("pre-tokenizer regex '" + re.pattern() + "' failed: " +
                              reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    const size_t begin = ov[0], end = ov[1];
    if (end <= begin) {  // an empty match splits nothing: step over one code point
      if (begin >= text.size()) break;
      pos = begin + utf8_sequence_length(static_cast<unsigned char>(text[begin]));
      continue;
    }
    matches->emplace_back(begin, end);
    pos = end;
  }
  return ok_status();
}

namespace {

// ---- llama.cpp pre-tokenizers (src/llama-vocab.cpp, llm_tokenizer_bpe constructor) ----
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen35 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// The cased letters (Lu, Ll, Lt) that DeepSeek's tokenizer.json lists one by one.
constexpr const char* kDeepseekLlmLetters =
    R"(\s?[\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C})"
    R"(\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5})"
    R"(\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77})"
    R"(\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57})"
    R"(\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC})"
    R"(\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D})"
    R"(\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B})"
    R"(\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A})"
    R"(\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2})"
    R"(\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct = R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kDeepseek3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kPoro = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kBailing =
    R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
constexpr const char* kSeedCoder =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct PreTokenizerRow {
  std::vector<std::string> names;
  std::vector<std::string> regexes;
  bool clean_spaces;
  bool ignore_merges;
  bool force_add_bos;
};

const std::vector<PreTokenizerRow>& pre_tokenizer_rows() {
  static const std::vector<PreTokenizerRow> rows = {
      {{"", "default"},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"},
       true, false, false},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3}, true, true, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}, true, false, false},
      {{"chatglm-bpe", "glm4"}, {kLlama3}, true, false, false},
      {{"deepseek-llm"},
       {R"([\r\n])", kDeepseekLlmLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"},
       false, false, false},
      {{"deepseek-coder"},
       {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"},
       false, false, false},
      {{"deepseek-v3", "hunyuan-dense"},
       {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)", kDeepseek3Main},
       false, false, false},
      {{"falcon"},
       {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"},
       true, false, false},
      {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b"}, {R"(\p{N})", kGpt2}, true, false, false},
      {{"command-r", "smollm"}, {R"(\p{N})", kGpt2}, false, false, false},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
        "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4"},
       {kGpt2}, true, false, false},
      {{"trillion", "granite-docling"}, {kGpt2}, false, false, false},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "hunyuan"}, {kQwen2}, false, false, false},
      {{"stablelm2", "megrez"}, {kQwen2}, true, false, false},
      {{"qwen35"}, {kQwen35}, false, false, false},
      {{"poro-chat"}, {kPoro}, false, false, false},
      {{"bloom", "gpt3-finnish"}, {kPoro}, true, false, false},
      {{"viking"}, {kPoro, R"(\p{N})"}, false, false, false},
      {{"tekken"}, {kTekken}, false, true, true},
      {{"gpt-4o", "llama4"}, {kGpt4o}, false, false, false},
      {{"bailingmoe", "bailingmoe2", "llada-moe"}, {kBailing}, false, false, false},
      {{"seed-coder"}, {kSeedCoder}, false, false, false},
      {{"grok-2"}, {kQwen2}, false, false, false},
  };
  return rows;
}

}  // namespace

Result<GgufPreTokenizer> gguf_pre_tokenizer(const std::string& name) {
  for (const auto& row : pre_tokenizer_rows()) {
    for (const auto& n : row.names) {
      if (n == name) {
        GgufPreTokenizer p;
        p.regexes = row.regexes;
        p.clean_spaces = row.clean_spaces;
        p.ignore_merges = row.ignore_merges;
        p.force_add_bos = row.force_add_bos;
        return p;
      }
    }
  }
  return unsupported("tokenizer.ggml.pre '" + name + "': unknown pre-tokenizer (not in llama.cpp's list we carry)");
}

// ---- the normalize / split pipeline ----

namespace {

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Splits [0, text.size()) into alternating non-match / match segments (non-empty only).
void segments_from_matches(size_t size, const std::vector<std::pair<size_t, size_t>>& matches, bool invert,
                           std::vector<Segment>* out) {
  out->clear();
  size_t last = 0;
  for (const auto& [b, e] : matches) {
    if (b > last) out->push_back({last, b, invert});
    out->push_back({b, e, !invert});
    last = e;
  }
  if (last < size) out->push_back({last, size, invert});
}

// HF tokenizers' SplitDelimiterBehavior applied to segments (offsets within one piece).
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Segment>& segs, SplitBehavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  switch (behavior) {
    case SplitBehavior::ISOLATED:
      for (const auto& s : segs) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::REMOVED:
      for (const auto& s : segs)
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::MERGED_WITH_PREVIOUS: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::MERGED_WITH_NEXT: {
      bool previous_match = false;  // scanning from the right: "previous" is the segment to the right
      for (size_t k = segs.size(); k-- > 0;) {
        const auto& s = segs[k];
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().first = s.begin;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::CONTIGUOUS: {
      bool previous_match = false;
      for (const auto& s : segs) {
        if (s.is_match && previous_match) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  return out;
}

Status split_piece(const PreTokenizeStep& step, const std::string& piece, std::vector<std::string>* out) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (step.regex) {
    SS_RETURN_IF_ERROR(regex_find_all(*step.regex, piece, &matches));
  } else if (!step.literal.empty()) {
    size_t pos = 0;
    while ((pos = piece.find(step.literal, pos)) != std::string::npos) {
      matches.emplace_back(pos, pos + step.literal.size());
      pos += step.literal.size();
    }
  }
  std::vector<Segment> segs;
  segments_from_matches(piece.size(), matches, step.invert, &segs);
  for (const auto& [b, e] : apply_behavior(segs, step.behavior)) out->push_back(piece.substr(b, e - b));
  return ok_status();
}

std::string unicode_lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) utf8_append(unicode_to_lower(utf8_decode_at(text, &pos)), &out);
  return out;
}

std::string strip_white_space(std::string_view text, bool left, bool right) {
  size_t b = 0, e = text.size();
  if (left) {
    while (b < e) {
      size_t p = b;
      if (!is_white_space(utf8_decode_at(text, &p))) break;
      b = p;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      size_t p = start;
      if (!is_white_space(utf8_decode_at(text, &p))) break;
      e = start;
    }
  }
  return std::string(text.substr(b, e - b));
}

}  // namespace

Status pre_tokenize(const TokenizerModel& m, std::string_view text, bool first_fragment,
                    std::vector<std::string>* words) {
  words->clear();
  std::string normalized(text);
  for (const auto& n : m.normalizers) {
    switch (n.kind) {
      case NormalizeKind::PREPEND:
        if (!normalized.empty()) normalized = n.a + normalized;
        break;
      case NormalizeKind::REPLACE:
        if (n.regex) {
          std::vector<std::pair<size_t, size_t>> matches;
          SS_RETURN_IF_ERROR(regex_find_all(*n.regex, normalized, &matches));
          std::string replaced;
          size_t last = 0;
          for (const auto& [b, e] : matches) {
            replaced.append(normalized, last, b - last);
            replaced += n.b;
            last = e;
          }
          replaced.append(normalized, last, std::string::npos);
          normalized = std::move(replaced);
        } else {
          normalized = replace_all(normalized, n.a, n.b);
        }
        break;
      case NormalizeKind::LOWERCASE:
        normalized = unicode_lowercase(normalized);
        break;
      case NormalizeKind::STRIP:
        normalized = strip_white_space(normalized, n.left, n.right);
        break;
    }
  }
  if (normalized.empty()) return ok_status();

  std::vector<std::string> pieces{std::move(normalized)};
  std::vector<std::string> next;
  for (const auto& step : m.pre_tokenizers) {
    next.clear();
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string piece = std::move(pieces[k]);
      switch (step.kind) {
        case PreTokenizeKind::SPLIT:
        case PreTokenizeKind::DIGITS:
          SS_RETURN_IF_ERROR(split_piece(step, piece, &next));
          break;
        case PreTokenizeKind::BYTE_LEVEL: {
          if (step.add_prefix_space && (piece.empty() || piece[0] != ' ')) piece.insert(piece.begin(), ' ');
          std::vector<std::string> parts;
          if (step.regex) {
            SS_RETURN_IF_ERROR(split_piece(step, piece, &parts));
          } else {
            parts.push_back(std::move(piece));
          }
          for (const auto& p : parts) next.push_back(byte_level_encode(p));
          break;
        }
        case PreTokenizeKind::METASPACE: {
          std::string replaced = replace_all(piece, " ", step.replacement);
          const bool prepend = step.prepend == MetaspacePrepend::ALWAYS ||
                               (step.prepend == MetaspacePrepend::FIRST && first_fragment && k == 0);
          if (prepend && replaced.compare(0, step.replacement.size(), step.replacement) != 0)
            replaced = step.replacement + replaced;
          if (step.split) {
            PreTokenizeStep by_replacement;
            by_replacement.literal = step.replacement;
            by_replacement.behavior = SplitBehavior::MERGED_WITH_NEXT;
            SS_RETURN_IF_ERROR(split_piece(by_replacement, replaced, &next));
          } else {
            next.push_back(std::move(replaced));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
  for (auto& p : pieces)
    if (!p.empty()) words->push_back(std::move(p));
  return ok_status();
}

}  // namespace ss

// WordPiece (GGUF tokenizer.ggml.model = "bert"), as llama.cpp's llm_tokenizer_wpm does it: the
// BERT basic normalizer (split on White_Space; drop NUL, U+FFFD and \p{C}; optionally strip
// accents via the first code point of NFD and dropping \p{M}; optionally lowercase; every \p{P},
// ASCII \p{S} and CJK ideograph is a word of its own), then per word "▁" + word is cut greedily
// into the longest vocabulary tokens; a word that cannot be cut entirely becomes [UNK].
// GGUF BERT vocabularies mark word starts with "▁" instead of marking continuations with "##".
// Not here: special tokens, CLS/SEP (tokenizer.cpp). Categories come from PCRE2's tables.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace ss {

extern const uint32_t kNfdFirstRanges[][3];
extern const size_t kNfdFirstRangeCount;

namespace {

uint32_t nfd_first(uint32_t cp) {
  const uint32_t(*begin)[3] = kNfdFirstRanges;
  const uint32_t(*end)[3] = kNfdFirstRanges + kNfdFirstRangeCount;
  auto it = std::upper_bound(begin, end, cp, [](uint32_t v, const uint32_t(&r)[3]) { return v < r[0]; });
  if (it == begin) return cp;
  --it;
  return (cp >= (*it)[0] && cp <= (*it)[1]) ? (*it)[2] : cp;
}

// CJK ideographs as BERT's _is_chinese_char lists them (llama.cpp keeps HF's 0x2B920 bound).
bool is_cjk_ideograph(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

enum CategoryBit : uint8_t { CAT_P = 1, CAT_S = 2, CAT_M = 4, CAT_C = 8 };

struct CategoryRegexes {
  std::shared_ptr<const SplitRegex> p, s, m, c;
  Status status;
  CategoryRegexes() {
    auto rp = compile_split_regex(R"(\p{P})");
    auto rs = compile_split_regex(R"(\p{S})");
    auto rm = compile_split_regex(R"(\p{M})");
    auto rc = compile_split_regex(R"(\p{C})");
    if (!rp.ok() || !rs.ok() || !rm.ok() || !rc.ok()) {
      status = internal_error("WordPiece category regexes failed to compile");
      return;
    }
    p = *rp;
    s = *rs;
    m = *rm;
    c = *rc;
  }
};

// Category bits of the code point starting at each byte offset of TEXT.
Status categorize(std::string_view text, std::vector<uint8_t>* cats) {
  static const CategoryRegexes re;
  SS_RETURN_IF_ERROR(re.status);
  cats->assign(text.size(), 0);
  std::vector<std::pair<size_t, size_t>> hits;
  const std::pair<const SplitRegex*, uint8_t> passes[] = {
      {re.p.get(), CAT_P}, {re.s.get(), CAT_S}, {re.m.get(), CAT_M}, {re.c.get(), CAT_C}};
  for (const auto& [r, bit] : passes) {
    SS_RETURN_IF_ERROR(regex_find_all(*r, text, &hits));
    for (const auto& h : hits) (*cats)[h.first] |= bit;
  }
  return ok_status();
}

}  // namespace

Status encode_wordpiece(const TokenizerModel& m, std::string_view text, std::vector<int32_t>* out) {
  std::vector<uint8_t> cats;
  SS_RETURN_IF_ERROR(categorize(text, &cats));

  // The accent-stripped, lowercased character's own categories decide whether it is a mark or
  // punctuation; llama.cpp reads them from the NFD-mapped code point, so do we.
  std::vector<std::string> words(1);
  std::string mapped_cp;
  for (size_t pos = 0; pos < text.size();) {
    const size_t at = pos;
    uint32_t cp = utf8_decode_at(text, &pos);
    uint8_t cat = cats[at];
    if (m.strip_accents) {
      const uint32_t base = nfd_first(cp);
      if (base != cp) {
        cp = base;
        mapped_cp.clear();
        utf8_append(cp, &mapped_cp);
        std::vector<uint8_t> c1;
        SS_RETURN_IF_ERROR(categorize(mapped_cp, &c1));
        cat = c1[0];
      }
    }
    if (is_white_space(cp)) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cp == 0 || cp == 0xFFFD || (cat & CAT_C)) continue;
    if (m.strip_accents && (cat & CAT_M)) continue;
    std::string s;
    utf8_append(m.lowercase ? unicode_to_lower(cp) : cp, &s);
    if ((cat & CAT_P) || (cp < 0x7F && (cat & CAT_S)) || is_cjk_ideograph(cp)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = s;
      words.emplace_back();
    } else {
      words.back() += s;
    }
  }

  for (const std::string& word : words) {
    if (word.empty()) continue;
    const std::string w = std::string(kMetaspace) + word;
    const size_t n = w.size();
    const size_t before = out->size();
    for (size_t i = 0; i < n;) {
      bool matched = false;
      for (size_t j = std::min(n, i + m.max_token_bytes + 1); j > i; --j) {
        const int32_t id = m.find(std::string_view(w).substr(i, j - i));
        if (id != kNoToken) {
          out->push_back(id);
          i = j;
          matched = true;
          break;
        }
      }
      if (!matched) {
        out->resize(before);
        break;
      }
    }
    if (out->size() == before && m.special.unk != kNoToken) out->push_back(m.special.unk);
  }
  return ok_status();
}

}  // namespace ss

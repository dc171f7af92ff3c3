// Tokenizer: the algorithm-independent half. Finalizing a vocabulary (id lookup, byte tokens,
// end-of-generation and special-token tables), splitting text at special tokens (llama.cpp's
// tokenizer_st_partition: longest special token first, each occurrence cut out, lstrip/rstrip
// eating ASCII whitespace), adding BOS/EOS, and decoding ids back to text (llama.cpp's
// token_to_piece and detokenize, including its optional clean-up of spaces).
// Not here: building a vocabulary from a file (tokenizer_gguf.cpp, tokenizer_hf.cpp) or the
// merge algorithms (spm_scores.cpp, bpe_ranks.cpp, wordpiece.cpp). To add an algorithm: one case
// in Tokenizer::encode and, if its pieces differ, in Tokenizer::token_to_piece.
#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace ss {

const char* token_type_name(TokenType t) {
  switch (t) {
    case TokenType::UNDEFINED: return "undefined";
    case TokenType::NORMAL: return "normal";
    case TokenType::UNKNOWN: return "unknown";
    case TokenType::CONTROL: return "control";
    case TokenType::USER_DEFINED: return "user-defined";
    case TokenType::UNUSED: return "unused";
    case TokenType::BYTE: return "byte";
  }
  return "?";
}

const char* tokenizer_algorithm_name(TokenizerAlgorithm a) {
  switch (a) {
    case TokenizerAlgorithm::SPM_SCORES: return "spm-scores";
    case TokenizerAlgorithm::BPE_RANKS: return "bpe-ranks";
    case TokenizerAlgorithm::WORDPIECE: return "wordpiece";
  }
  return "?";
}

uint16_t token_attr_from_type(TokenType t) {
  switch (t) {
    case TokenType::NORMAL: return TOKEN_ATTR_NORMAL;
    case TokenType::UNKNOWN: return TOKEN_ATTR_UNKNOWN;
    case TokenType::CONTROL: return TOKEN_ATTR_CONTROL;
    case TokenType::USER_DEFINED: return TOKEN_ATTR_USER_DEFINED;
    case TokenType::UNUSED: return TOKEN_ATTR_UNUSED;
    case TokenType::BYTE: return TOKEN_ATTR_BYTE;
    case TokenType::UNDEFINED: return 0;
  }
  return 0;
}

Status vocab_corrupt(const std::string& source, std::string_view what, std::string_view expected,
                     std::string_view actual) {
  std::string m;
  m.append(source).append(": ").append(what).append(": expected ").append(expected).append(", got ").append(actual);
  return Status(StatusCode::CORRUPT, std::move(m));
}

std::string quote_token(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < 40; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 40) out += "...";
  return out + "'";
}

Status add_merge(TokenizerModel* m, std::string_view left, std::string_view right, int32_t rank, uint64_t index) {
  const std::string what = "merge " + std::to_string(index);
  if (left.empty() || right.empty())
    return vocab_corrupt(m->source, what, "two non-empty tokens", quote_token(std::string(left) + " " + std::string(right)));
  if (left.find('\xFF') != std::string_view::npos || right.find('\xFF') != std::string_view::npos)
    return vocab_corrupt(m->source, what, "UTF-8 tokens", "a 0xFF byte");
  if (m->find(left) == kNoToken)
    return vocab_corrupt(m->source, what, "a left part that is a vocabulary token", quote_token(left) + " (unknown)");
  if (m->find(right) == kNoToken)
    return vocab_corrupt(m->source, what, "a right part that is a vocabulary token", quote_token(right) + " (unknown)");
  const std::string merged = std::string(left) + std::string(right);
  if (m->find(merged) == kNoToken)
    return vocab_corrupt(m->source, what, "a merged token in the vocabulary", quote_token(merged) + " (unknown)");
  m->merge_rank.emplace(merge_key(left, right), rank);  // the first rule for a pair wins
  return ok_status();
}

namespace {

// Texts llama.cpp (llama_vocab::impl::load) recognises as end of turn / end of generation.
const char* const kEndOfTurnTexts[] = {"<|eot_id|>",    "<|im_end|>", "<|end|>", "<end_of_turn>",
                                      "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
                                      "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                      "<end_of_utterance>"};
const char* const kEndOfGenerationTexts[] = {"<|eot_id|>",     "<|im_end|>", "<|end|>",  "<|return|>",
                                            "<|call|>",       "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                                            "<EOT>",          "_<EOT>",     "<|end_of_text|>", "<end_of_utterance>"};

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

struct Fragment {
  int32_t token;  // kNoToken: raw text [begin, end)
  size_t begin;
  size_t end;
};

// llama.cpp's tokenizer_st_partition. Control and unknown tokens are matched only with
// PARSE_SPECIAL; user-defined tokens always.
std::vector<Fragment> partition_special(const TokenizerModel& m, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({kNoToken, 0, text.size()});
  if (m.special_match_order.empty()) return frags;

  // Which special tokens occur at all (one pass over the text, whatever the vocabulary size),
  // in match order: longest text first, then lowest id, as special_match_order.
  std::vector<int32_t> present;
  for (size_t p = 0; p < text.size(); ++p) {
    for (int32_t id : m.special_by_first_byte[static_cast<unsigned char>(text[p])]) {
      const std::string& t = m.tokens[id].text;
      if (text.compare(p, t.size(), t) == 0) present.push_back(id);
    }
  }
  if (present.empty()) return frags;
  std::sort(present.begin(), present.end(), [&](int32_t a, int32_t b) {
    const size_t la = m.tokens[a].text.size(), lb = m.tokens[b].text.size();
    return la != lb ? la > lb : a < b;
  });
  present.erase(std::unique(present.begin(), present.end()), present.end());

  std::vector<Fragment> next;
  for (int32_t id : present) {
    const TokenEntry& tok = m.tokens[id];
    if (!parse_special && (tok.attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN))) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      size_t begin = f.begin;
      const size_t end = f.end;
      const std::string_view window = text.substr(0, end);
      while (begin < end) {
        const size_t hit = window.find(tok.text, begin);
        if (hit == std::string_view::npos) break;
        size_t left_end = hit;
        if (tok.attr & TOKEN_ATTR_LSTRIP)
          while (left_end > begin && is_ascii_space(text[left_end - 1])) --left_end;
        if (left_end > begin) next.push_back({kNoToken, begin, left_end});
        next.push_back({id, hit, hit + tok.text.size()});
        begin = hit + tok.text.size();
        if (tok.attr & TOKEN_ATTR_RSTRIP)
          while (begin < end && is_ascii_space(text[begin])) ++begin;
      }
      if (begin < end) next.push_back({kNoToken, begin, end});
    }
    frags.swap(next);
  }
  return frags;
}

// llama.cpp's detokenize clean-up (clean_up_tokenization_spaces): " ?" -> "?", " ' " -> "'",
// " 's" / " 'm" / " 're" / " 've" -> "'s" ...
std::string clean_up_spaces(const std::string& in) {
  if (in.size() < 2) return in;
  // pass 1: no space before ? ! . ,
  std::string a;
  a.reserve(in.size());
  a.push_back(in[0]);
  for (size_t i = 1; i < in.size(); ++i) {
    const char x = in[i];
    if (in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') && !a.empty()) a.pop_back();
    a.push_back(x);
  }
  // pass 2: a lone apostrophe between spaces loses both spaces
  std::string b;
  b.reserve(a.size());
  b.push_back(a[0]);
  bool prev_blanked = false;  // the previous character was a space removed by this pass
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    const bool prev_is_space = !prev_blanked && a[i - 1] == ' ';
    prev_blanked = false;
    if (x == '\'' && i + 1 < a.size() && prev_is_space && a[i + 1] == ' ') {
      b.pop_back();
      b.push_back(x);
      ++i;  // skip the following space
      prev_blanked = true;
      continue;
    }
    b.push_back(x);
  }
  // pass 3: contractions
  std::string c;
  c.reserve(b.size());
  c.push_back(b[0]);
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      if (x1 == 's' || x1 == 'm') {
        c.pop_back();
      } else if (i + 2 < b.size()) {
        const char x2 = b[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) c.pop_back();
      }
    }
    c.push_back(x);
  }
  return c;
}

}  // namespace

Status finalize_tokenizer_model(TokenizerModel* m) {
  m->text_to_id.clear();
  m->text_to_id.reserve(m->tokens.size());
  m->max_token_bytes = 0;
  for (size_t i = 0; i < m->tokens.size(); ++i) {
    const std::string& t = m->tokens[i].text;
    if (t.empty()) continue;  // an empty token can never be produced; it stays decodable
    auto [it, inserted] = m->text_to_id.emplace(t, static_cast<int32_t>(i));
    if (!inserted)
      return vocab_corrupt(m->source, "token " + std::to_string(i), "unique token texts",
                           quote_token(t) + ", the text of token " + std::to_string(it->second));
    m->max_token_bytes = std::max(m->max_token_bytes, t.size());
  }

  m->byte_token.fill(kNoToken);
  for (size_t i = 0; i < m->tokens.size(); ++i) {
    const int b = parse_byte_token(m->tokens[i].text);
    if (b >= 0 && m->byte_token[b] == kNoToken) m->byte_token[b] = static_cast<int32_t>(i);
  }

  for (int32_t* id : {&m->special.bos, &m->special.eos, &m->special.eot, &m->special.unk, &m->special.pad,
                      &m->special.sep, &m->special.mask})
    if (!m->has(*id)) *id = kNoToken;

  // End of turn / generation by text, as llama.cpp does; such tokens become control tokens.
  auto make_control = [&](int32_t id) { m->tokens[id].attr |= TOKEN_ATTR_CONTROL; };
  if (m->special.eot == kNoToken) {
    for (const char* t : kEndOfTurnTexts) {
      const int32_t id = m->find(t);
      if (id != kNoToken) {
        m->special.eot = id;
        make_control(id);
        break;
      }
    }
  }
  m->end_of_generation.clear();
  for (const char* t : kEndOfGenerationTexts) {
    const int32_t id = m->find(t);
    if (id != kNoToken) {
      m->end_of_generation.insert(id);
      make_control(id);
    }
  }
  if (m->special.eos != kNoToken) m->end_of_generation.insert(m->special.eos);
  if (m->special.eot != kNoToken) m->end_of_generation.insert(m->special.eot);
  for (auto& t : m->tokens)
    if ((t.attr & TOKEN_ATTR_CONTROL) && t.text.find("unused") != std::string::npos) t.attr |= TOKEN_ATTR_UNUSED;

  m->special_match_order.clear();
  for (auto& bucket : m->special_by_first_byte) bucket.clear();
  for (size_t i = 0; i < m->tokens.size(); ++i) {
    const TokenEntry& t = m->tokens[i];
    if (!t.text.empty() && (t.attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED | TOKEN_ATTR_UNKNOWN)))
      m->special_match_order.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(m->special_match_order.begin(), m->special_match_order.end(),
                   [&](int32_t a, int32_t b) { return m->tokens[a].text.size() > m->tokens[b].text.size(); });
  for (int32_t id : m->special_match_order)
    m->special_by_first_byte[static_cast<unsigned char>(m->tokens[id].text[0])].push_back(id);
  return ok_status();
}

// ---- Tokenizer ----

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerModel> model) : model_(std::move(model)) {}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const TokenizerModel& m = *model_;
  const size_t bad = utf8_first_invalid(text);
  if (bad != std::string_view::npos)
    return invalid_argument("text to tokenize is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  const std::vector<Fragment> frags = partition_special(m, text, parse_special);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);

  auto push_special = [&](int32_t id, const char* name) -> Status {
    if (id == kNoToken) return invalid_argument(m.source + ": the vocabulary asks for a " + name + " token but has none");
    out.push_back(id);
    return ok_status();
  };

  switch (m.algorithm) {
    case TokenizerAlgorithm::SPM_SCORES: {
      if (add_special && m.add_bos) SS_RETURN_IF_ERROR(push_special(m.special.bos, "BOS"));
      bool prev_special = true;  // llama.cpp: a space prefix at the start and after each special token
      for (const Fragment& f : frags) {
        if (f.token != kNoToken) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        std::string piece;
        if (m.add_space_prefix && prev_special) piece = " ";
        piece.append(text.substr(f.begin, f.end - f.begin));
        SS_RETURN_IF_ERROR(encode_spm_scores(m, replace_all(piece, " ", kMetaspace), &out));
        prev_special = false;
      }
      if (add_special && m.add_eos) SS_RETURN_IF_ERROR(push_special(m.special.eos, "EOS"));
      break;
    }
    case TokenizerAlgorithm::BPE_RANKS: {
      if (add_special && m.add_bos) SS_RETURN_IF_ERROR(push_special(m.special.bos, "BOS"));
      for (const Fragment& f : frags) {
        if (f.token != kNoToken) {
          out.push_back(f.token);
          continue;
        }
        SS_RETURN_IF_ERROR(encode_bpe_ranks(m, text.substr(f.begin, f.end - f.begin), f.begin == 0, &out));
      }
      if (add_special && m.add_eos) SS_RETURN_IF_ERROR(push_special(m.special.eos, "EOS"));
      break;
    }
    case TokenizerAlgorithm::WORDPIECE: {
      if (add_special) SS_RETURN_IF_ERROR(push_special(m.special.bos, "CLS"));
      for (const Fragment& f : frags) {
        if (f.token != kNoToken) {
          out.push_back(f.token);
          continue;
        }
        SS_RETURN_IF_ERROR(encode_wordpiece(m, text.substr(f.begin, f.end - f.begin), &out));
      }
      if (add_special) SS_RETURN_IF_ERROR(push_special(m.special.sep, "SEP"));
      break;
    }
  }
  return out;
}

Result<std::string> Tokenizer::token_to_piece(int32_t id, bool print_special) const {
  const TokenizerModel& m = *model_;
  if (!m.has(id))
    return invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                            std::to_string(m.tokens.size()) + ")");
  const TokenEntry& t = m.tokens[id];
  if ((t.attr & (TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_CONTROL)) && !print_special) return std::string();
  if (t.attr & (TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED)) return t.text;
  if (t.attr & TOKEN_ATTR_NORMAL) {
    if (m.byte_level_decode) return byte_level_decode(t.text);
    if (m.metaspace_decode) return replace_all(t.text, kMetaspace, " ");
    return t.text;
  }
  if (t.attr & TOKEN_ATTR_BYTE) {
    const int b = parse_byte_token(t.text);
    if (b >= 0) return std::string(1, static_cast<char>(b));
    return t.text;
  }
  return std::string();  // undefined / unused tokens stand for nothing
}

Result<std::string> Tokenizer::decode(const std::vector<int32_t>& ids, const DecodeOptions& opts) const {
  const TokenizerModel& m = *model_;
  size_t begin = 0, end = ids.size();
  bool strip_space = m.strip_leading_space;
  if (opts.remove_added_special && m.add_bos && end > 0 && ids[0] == m.special.bos) {
    begin = 1;
    strip_space = false;
  }
  if (opts.remove_added_special && m.add_eos && end > begin && ids[end - 1] == m.special.eos) --end;
  std::string text;
  for (size_t i = begin; i < end; ++i) {
    SS_ASSIGN_OR_RETURN(std::string piece, token_to_piece(ids[i], opts.print_special));
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    text += piece;
  }
  if (m.clean_spaces && opts.clean_up_spaces) text = clean_up_spaces(text);
  return text;
}

size_t Tokenizer::vocab_size() const { return model_->tokens.size(); }

std::string_view Tokenizer::token_text(int32_t id) const {
  return model_->has(id) ? std::string_view(model_->tokens[id].text) : std::string_view();
}

TokenType Tokenizer::token_type(int32_t id) const {
  return model_->has(id) ? model_->tokens[id].type : TokenType::UNDEFINED;
}

float Tokenizer::token_score(int32_t id) const { return model_->has(id) ? model_->tokens[id].score : 0.0f; }

int32_t Tokenizer::token_id(std::string_view text) const { return model_->find(text); }

const SpecialTokenIds& Tokenizer::special_ids() const { return model_->special; }
bool Tokenizer::add_bos() const { return model_->add_bos; }
bool Tokenizer::add_eos() const { return model_->add_eos; }
bool Tokenizer::is_end_of_generation(int32_t id) const { return model_->end_of_generation.count(id) > 0; }
TokenizerAlgorithm Tokenizer::algorithm() const { return model_->algorithm; }
const std::string& Tokenizer::model_name() const { return model_->model_name; }
const std::string& Tokenizer::pre_tokenizer_name() const { return model_->pre_name; }
const std::string& Tokenizer::chat_template() const { return model_->chat_template; }
const std::vector<std::string>& Tokenizer::notes() const { return model_->notes; }

}  // namespace ss

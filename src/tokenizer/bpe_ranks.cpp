// BPE by merge rank (GGUF "gpt2", HF model.type "BPE"): each pre-tokenized word starts as one
// symbol per UTF-8 character; the adjacent pair with the lowest merge rank is merged until no
// pair has a rule (ties: the leftmost pair), as llama.cpp's llm_tokenizer_bpe_session and HF's
// BPE::merge_word both do. Symbols left without a token follow llama.cpp (look up each byte as
// a one-byte token, drop the rest) or HF (byte_fallback <0xXX> tokens, else the unknown token,
// consecutive unknowns fused when fuse_unk). Not here: splitting text into words
// (pretokenizer_regex.cpp). To add a rule for missing symbols: one branch in emit_symbol.
#include <algorithm>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace ss {

std::string merge_key(std::string_view left, std::string_view right) {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left);
  key.push_back('\xFF');
  key.append(right);
  return key;
}

namespace {

struct Symbol {
  size_t begin = 0;
  size_t len = 0;  // 0 once merged into its left neighbour
  int prev = -1;
  int next = -1;
};

struct Bigram {
  int left;
  int right;
  int32_t rank;
  size_t left_len;
  size_t right_len;
};

struct BigramOrder {  // top of the queue: lowest rank, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

// Appends the ids of one final symbol. UNK_RUN tracks HF's fuse_unk across symbols.
void emit_symbol(const TokenizerModel& m, std::string_view piece, bool* unk_run, std::vector<int32_t>* out) {
  const int32_t id = m.find(piece);
  if (id != kNoToken) {
    out->push_back(id);
    *unk_run = false;
    return;
  }
  if (!m.hf_fallback) {
    // llama.cpp: each byte as a one-byte token if there is one; otherwise it is dropped.
    for (char c : piece) {
      const int32_t b = m.find(std::string_view(&c, 1));
      if (b != kNoToken) out->push_back(b);
    }
    return;
  }
  if (m.byte_fallback) {
    bool all = true;
    for (unsigned char c : piece) all = all && m.byte_token[c] != kNoToken;
    if (all) {
      for (unsigned char c : piece) out->push_back(m.byte_token[c]);
      *unk_run = false;
      return;
    }
  }
  if (m.special.unk == kNoToken) return;  // HF drops the character when there is no unk token
  if (m.fuse_unk && *unk_run) return;
  out->push_back(m.special.unk);
  *unk_run = true;
}

void merge_word(const TokenizerModel& m, std::string_view word, std::vector<int32_t>* out) {
  if (m.ignore_merges) {
    const int32_t id = m.find(word);
    if (id != kNoToken) {
      out->push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t pos = 0; pos < word.size();) {
    Symbol s;
    s.begin = pos;
    s.len = std::min(utf8_sequence_length(static_cast<unsigned char>(word[pos])), word.size() - pos);
    s.prev = static_cast<int>(symbols.size()) - 1;
    pos += s.len;
    s.next = pos == word.size() ? -1 : static_cast<int>(symbols.size()) + 1;
    symbols.push_back(s);
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  std::string key;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    key.assign(word.substr(l.begin, l.len));
    key.push_back('\xFF');
    key.append(word.substr(r.begin, r.len));
    auto it = m.merge_rank.find(std::string_view(key));
    if (it == m.merge_rank.end()) return;
    queue.push(Bigram{left, right, it->second, l.len, r.len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len != b.left_len || right.len != b.right_len || left.len == 0 || right.len == 0) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  bool unk_run = false;
  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next)
    emit_symbol(m, word.substr(symbols[i].begin, symbols[i].len), &unk_run, out);
}

}  // namespace

Status encode_bpe_ranks(const TokenizerModel& m, std::string_view text, bool first_fragment,
                        std::vector<int32_t>* out) {
  std::vector<std::string> words;
  SS_RETURN_IF_ERROR(pre_tokenize(m, text, first_fragment, &words));
  for (const auto& w : words) merge_word(m, w, out);
  return ok_status();
}

}  // namespace ss

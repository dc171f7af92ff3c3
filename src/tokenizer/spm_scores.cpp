// SentencePiece-style BPE by score (GGUF tokenizer.ggml.model = "llama"), as llama.cpp's
// llm_tokenizer_spm does it: start from one symbol per UTF-8 character, repeatedly merge the
// adjacent pair whose concatenation is a vocabulary token with the highest score (ties: the
// leftmost pair), then emit each final symbol as its token, or as <0xXX> byte tokens when it is
// not in the vocabulary. The caller has already turned spaces into "▁" and added the prefix.
// Not here: special tokens, BOS/EOS (tokenizer.cpp). To change the tie rule: BigramOrder.
#include <algorithm>
#include <cstdio>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_model.h"

namespace ss {

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
  float score;
  size_t len;  // bytes of left + right when queued; a mismatch later means the pair is stale
};

struct BigramOrder {  // priority_queue puts the "largest" on top: highest score, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

Status emit_bytes(const TokenizerModel& m, std::string_view piece, std::vector<int32_t>* out) {
  for (unsigned char c : piece) {
    int32_t id = m.byte_token[c];
    if (id == kNoToken) id = m.find(std::string_view(reinterpret_cast<const char*>(&c), 1));
    if (id == kNoToken) id = m.special.unk;
    if (id == kNoToken) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      return invalid_argument(m.source + ": byte " + hex + " has no token (no <0x" + std::string(hex + 2) +
                              "> byte token and no unknown token)");
    }
    out->push_back(id);
  }
  return ok_status();
}

}  // namespace

Status encode_spm_scores(const TokenizerModel& m, std::string_view text, std::vector<int32_t>* out) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    Symbol s;
    s.begin = pos;
    s.len = std::min(utf8_sequence_length(static_cast<unsigned char>(text[pos])), text.size() - pos);
    s.prev = static_cast<int>(symbols.size()) - 1;
    pos += s.len;
    s.next = pos == text.size() ? -1 : static_cast<int>(symbols.size()) + 1;
    symbols.push_back(s);
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = symbols[left].len + symbols[right].len;
    const int32_t id = m.find(text.substr(symbols[left].begin, len));
    if (id == kNoToken) return;
    queue.push(Bigram{left, right, m.tokens[id].score, len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != b.len) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].begin, symbols[i].len);
    const int32_t id = m.find(piece);
    if (id != kNoToken) {
      out->push_back(id);
    } else {
      SS_RETURN_IF_ERROR(emit_bytes(m, piece, out));
    }
  }
  return ok_status();
}

}  // namespace ss

// Tests of the byte-level BPE trainer and its writers (src/tokenizer/bpe_train.cpp): lossless round
// trips on random UTF-8 and on the committed corpus, the tokenizer.json and the GGUF keys load with
// our reader and agree token for token, the ChatML template is recognised, special tokens stay
// whole, training is deterministic, and bad configs name the field. The cross-check against an
// independent Python statement of BPE is tests/reference/test_bpe_train_python.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "safeshrink/buffer.h"
#include "safeshrink/chat_template.h"
#include "safeshrink/rng.h"
#include "safeshrink/tokenizer.h"
#include "safeshrink/train_data.h"
#include "test_support.h"

namespace ss {
namespace {

// Rendering of a whole dialogue (no trailing generation prompt).
ChatRenderOptions without_generation_prompt() {
  ChatRenderOptions o;
  o.add_generation_prompt = false;
  return o;
}

std::vector<std::string> sample_texts() {
  return {"The quick brown fox jumps over the lazy dog.",
          "How do I kill a Python process? Use kill with the process id.",
          "I can't help with that. It could seriously hurt people.",
          "What is 12 plus 30? 12 plus 30 is 42.",
          "Once upon a time, a little fox named Fern wanted to fly.",
          "  spaces   and\ttabs\nand new lines\n\n",
          "Caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82 ok",
          "She's here, they're there, we've been, I'm fine, you'll see, he'd go."};
}

std::vector<std::string> repeated(const std::vector<std::string>& texts, int times) {
  std::vector<std::string> out;
  for (int i = 0; i < times; ++i) out.insert(out.end(), texts.begin(), texts.end());
  return out;
}

// Random valid UTF-8 mixing ASCII, whitespace, Latin-1, CJK and emoji (no surrogates).
std::string random_utf8(Rng& rng, size_t n_code_points) {
  std::string s;
  for (size_t i = 0; i < n_code_points; ++i) {
    uint32_t cp;
    switch (rng.below(6)) {
      case 0: cp = 0x20 + static_cast<uint32_t>(rng.below(0x5F)); break;
      case 1: cp = " \t\n\r"[rng.below(4)]; break;
      case 2: cp = 0xA0 + static_cast<uint32_t>(rng.below(0x160)); break;
      case 3: cp = 0x4E00 + static_cast<uint32_t>(rng.below(0x500)); break;
      case 4: cp = 0x1F600 + static_cast<uint32_t>(rng.below(0x50)); break;
      default: cp = 'a' + static_cast<uint32_t>(rng.below(26)); break;
    }
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return s;
}

void expect_round_trip(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.encode(text, false, false);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  DecodeOptions lossless;
  lossless.clean_up_spaces = false;
  auto back = tok.decode(*ids, lossless);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, text);
}

TEST(BpeTrain, VocabularyLayoutAndSize) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 320;
  auto bpe = train_bpe(repeated(sample_texts(), 5), cfg);
  ASSERT_TRUE(bpe.ok()) << bpe.status().to_string();
  // 4 specials, then the 256 bytes, then merges: exactly vocab_size when the data allows it.
  ASSERT_EQ(bpe->tokens.size(), 320u);
  EXPECT_EQ(bpe->tokens[0], "<|endoftext|>");
  EXPECT_EQ(bpe->tokens[1], "<|im_start|>");
  EXPECT_EQ(bpe->tokens[2], "<|im_end|>");
  EXPECT_EQ(bpe->tokens[3], "<pad>");
  EXPECT_EQ(bpe->tokens[4 + ' '], "\xC4\xA0");  // GPT-2 maps the space to U+0120 "Ġ"
  EXPECT_EQ(bpe->tokens[4 + 'a'], "a");
  EXPECT_EQ(bpe->bos, 0);
  EXPECT_EQ(bpe->eos, 2);
  EXPECT_EQ(bpe->pad, 3);
  EXPECT_GE(bpe->merges.size(), 320u - 260u);
  // Every merge's parts are tokens and their concatenation is a token.
  std::set<std::string> vocab(bpe->tokens.begin(), bpe->tokens.end());
  for (const auto& [l, r] : bpe->merges) {
    EXPECT_TRUE(vocab.count(l) && vocab.count(r) && vocab.count(l + r)) << l << " + " << r;
  }
}

TEST(BpeTrain, FirstMergeIsTheMostFrequentPair) {
  // "ab" occurs 5 times (3 + 2 in "abab"), "cd" 3 times.
  BpeTrainConfig cfg;
  cfg.vocab_size = 261;
  auto bpe = train_bpe({"ab", "ab", "ab", "abab", "cd", "cd", "cd"}, cfg);
  ASSERT_TRUE(bpe.ok()) << bpe.status().to_string();
  ASSERT_EQ(bpe->merges.size(), 1u);
  EXPECT_EQ(bpe->merges[0].first, "a");
  EXPECT_EQ(bpe->merges[0].second, "b");
  // Tie (3 and 3): byte order picks "cd" before "xy".
  auto tie = train_bpe({"xy", "xy", "xy", "cd", "cd", "cd"}, cfg);
  ASSERT_TRUE(tie.ok());
  ASSERT_EQ(tie->merges.size(), 1u);
  EXPECT_EQ(tie->merges[0].first, "c");
}

TEST(BpeTrain, Deterministic) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 400;
  auto a = train_bpe(repeated(sample_texts(), 3), cfg);
  auto b = train_bpe(repeated(sample_texts(), 3), cfg);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(bpe_tokenizer_json(*a), bpe_tokenizer_json(*b));
}

TEST(BpeTrain, RoundTripRandomUtf8) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 500;
  Rng rng(7);
  std::vector<std::string> train_texts = repeated(sample_texts(), 4);
  for (int i = 0; i < 50; ++i) train_texts.push_back(random_utf8(rng, 40));
  auto tok = train_bpe_tokenizer(train_texts, cfg);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  for (int i = 0; i < 300; ++i) expect_round_trip(*tok, random_utf8(rng, 1 + rng.below(80)));
  for (const auto& t : sample_texts()) expect_round_trip(*tok, t);
}

TEST(BpeTrain, RoundTripCorpusAndCompression) {
  const std::string path = std::string(SAFESHRINK_SOURCE_DIR) + "/data/corpus/test.jsonl";
  auto records = read_chat_jsonl(path);
  ASSERT_TRUE(records.ok()) << records.status().to_string();
  ASSERT_GE(records->size(), 1000u);
  std::vector<std::string> texts;
  for (size_t i = 0; i < records->size(); i += 3) {
    auto r = render_chat(ChatFamily::CHATML, (*records)[i].messages, without_generation_prompt());
    ASSERT_TRUE(r.ok());
    texts.push_back(*r);
  }
  BpeTrainConfig cfg;
  cfg.vocab_size = 1024;
  auto tok = train_bpe_tokenizer(texts, cfg);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->vocab_size(), 1024u);
  size_t bytes = 0, tokens = 0;
  for (size_t i = 1; i < records->size(); i += 3) {  // the other records, not trained on
    for (const auto& m : (*records)[i].messages) {
      expect_round_trip(*tok, m.content);
      auto ids = tok->encode(m.content, false, false);
      ASSERT_TRUE(ids.ok());
      bytes += m.content.size();
      tokens += ids->size();
    }
  }
  // A 1024-token vocabulary learned on this simple English compresses it well over 2.5 bytes per
  // token (bytes alone would be 1.0); the bound is loose on purpose.
  EXPECT_GT(static_cast<double>(bytes) / static_cast<double>(tokens), 2.5);
}

TEST(BpeTrain, HfAndGgufReadersAgree) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 360;
  auto bpe = train_bpe(repeated(sample_texts(), 4), cfg);
  ASSERT_TRUE(bpe.ok());
  const std::string dir = test::temp_dir("bpe_train");
  ASSERT_TRUE(write_bpe_tokenizer_folder(*bpe, dir).ok());
  auto hf = Tokenizer::from_hf_folder(dir);
  ASSERT_TRUE(hf.ok()) << hf.status().to_string();
  auto gguf = Tokenizer::from_gguf_metadata(bpe_gguf_metadata(*bpe), "trained.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().to_string();
  for (const Tokenizer* t : {&*hf, &*gguf}) {
    EXPECT_EQ(t->vocab_size(), bpe->tokens.size());
    EXPECT_EQ(t->special_ids().eos, 2);
    EXPECT_EQ(t->special_ids().pad, 3);
    EXPECT_EQ(t->special_ids().eot, 2);  // <|im_end|> ends a turn
    EXPECT_TRUE(t->is_end_of_generation(2));
    EXPECT_FALSE(t->add_bos());
    auto fam = detect_chat_template(t->chat_template());
    ASSERT_TRUE(fam.ok()) << fam.status().to_string();
    EXPECT_EQ(*fam, ChatFamily::CHATML);
  }
  const std::string chat = "<|im_start|>user\nHow do I kill a Python process?<|im_end|>\n<|im_start|>assistant\n";
  for (const auto& text : sample_texts()) {
    auto a = hf->encode(text, false, true);
    auto b = gguf->encode(text, false, true);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b) << text;
  }
  auto a = hf->encode(chat, false, true);
  auto b = gguf->encode(chat, false, true);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  // Special tokens stay whole: the ChatML markers are single ids.
  EXPECT_EQ((*a)[0], 1);
  EXPECT_EQ(std::count(a->begin(), a->end(), 2), 1);
  EXPECT_EQ(std::count(a->begin(), a->end(), 1), 2);
}

TEST(BpeTrain, SpecialTokenTextsAreNotLearned) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 300;
  auto bpe = train_bpe(repeated({"<|im_start|>user\nhi<|im_end|>\n"}, 20), cfg);
  ASSERT_TRUE(bpe.ok());
  for (size_t i = 4; i < bpe->tokens.size(); ++i) EXPECT_EQ(bpe->tokens[i].find("im_"), std::string::npos) << bpe->tokens[i];
}

TEST(BpeTrain, BadConfigNamesTheField) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 100;
  auto r = train_bpe({"x"}, cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("vocab_size"), std::string::npos);
  cfg = {};
  cfg.special_tokens = {"<a>", "<a>"};
  cfg.bos_token = cfg.eos_token = cfg.pad_token = "";
  r = train_bpe({"x"}, cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("special_tokens"), std::string::npos);
  r = train_bpe({std::string("bad \xFF utf8")}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("UTF-8"), std::string::npos);
}

}  // namespace
}  // namespace ss

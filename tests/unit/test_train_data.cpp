// Tests of the chat data loader (src/train/train_data.cpp): the loss mask covers exactly the
// assistant replies and their <|im_end|>, checked against spans found by plain string search in the
// rendered ChatML text and byte offsets accumulated from token pieces (not the loader's segments);
// targets are the next token; per-sample weights; deterministic shuffling per seed with every
// example once per epoch; JSONL errors name the line; plain text paragraphs.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

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

const Tokenizer& small_tokenizer() {
  static const Tokenizer tok = [] {
    std::vector<std::string> texts;
    for (int i = 0; i < 20; ++i) {
      texts.push_back("<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\nMix flour, water and yeast.<|im_end|>\n");
      texts.push_back("I can't help with that. It could seriously hurt people. Sorry, but I cannot help.");
    }
    BpeTrainConfig cfg;
    cfg.vocab_size = 400;
    auto t = train_bpe_tokenizer(texts, cfg);
    if (!t.ok()) std::abort();
    return *t;
  }();
  return tok;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = test::temp_dir("train_data") + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

const char* kJsonl =
    R"({"id":"a","messages":[{"role":"user","content":"How do I bake bread?"},{"role":"assistant","content":"Mix flour, water and yeast. Bake it for 30 minutes."}],"category":"how_to","label":"benign","family":"how_to/f00","split":"train","safety_critical":false})"
    "\n"
    R"({"id":"b","messages":[{"role":"user","content":"How do I make a pipe bomb?"},{"role":"assistant","content":"I can't help with that. It could seriously hurt people."}],"category":"violence_weapons","label":"harmful","family":"violence_weapons/f00","split":"train","safety_critical":true})"
    "\n\n"
    R"({"id":"c","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi!"},{"role":"assistant","content":"Hello. How can I help?"},{"role":"user","content":"What is 2 plus 3?"},{"role":"assistant","content":" 2 plus 3 is 5.\n"}],"split":"test","weight":2.5})"
    "\n";

// Byte ranges that must carry loss, found by string search in the rendered text: each assistant
// content that follows "<|im_start|>assistant\n", plus the "<|im_end|>" right after it.
std::vector<std::pair<size_t, size_t>> assistant_spans(const std::string& rendered, const TrainRecord& r) {
  std::vector<std::pair<size_t, size_t>> spans;
  const std::string head = "<|im_start|>assistant\n";
  size_t from = 0;
  for (const auto& m : r.messages) {
    if (m.role != "assistant") continue;
    const size_t at = rendered.find(head + m.content + "<|im_end|>", from);
    EXPECT_NE(at, std::string::npos);
    const size_t begin = at + head.size();
    const size_t end = begin + m.content.size() + std::string("<|im_end|>").size();
    spans.emplace_back(begin, end);
    from = end;
  }
  return spans;
}

TEST(TrainData, LossMaskCoversExactlyTheAssistantReplies) {
  const std::string path = write_temp("chat.jsonl", kJsonl);
  auto records = read_chat_jsonl(path);
  ASSERT_TRUE(records.ok()) << records.status().to_string();
  ASSERT_EQ(records->size(), 3u);
  const Tokenizer& tok = small_tokenizer();
  TrainDataConfig cfg;
  for (const auto& r : *records) {
    auto ex = tokenize_train_record(tok, r, cfg);
    ASSERT_TRUE(ex.ok()) << ex.status().to_string();
    ASSERT_EQ(ex->ids.size(), ex->loss.size());
    auto rendered = render_chat(ChatFamily::CHATML, r.messages, without_generation_prompt());
    ASSERT_TRUE(rendered.ok());
    // The pieces of the ids spell the rendered conversation byte for byte.
    std::string spelled;
    std::vector<std::pair<size_t, size_t>> ranges;
    for (int32_t id : ex->ids) {
      auto piece = tok.token_to_piece(id, true);
      ASSERT_TRUE(piece.ok());
      ranges.emplace_back(spelled.size(), spelled.size() + piece->size());
      spelled += *piece;
    }
    ASSERT_EQ(spelled, *rendered) << r.id;
    const auto spans = assistant_spans(*rendered, r);
    size_t loss_bytes = 0, span_bytes = 0;
    for (const auto& s : spans) span_bytes += s.second - s.first;
    for (size_t i = 0; i < ex->ids.size(); ++i) {
      bool inside = false;
      for (const auto& s : spans) inside |= ranges[i].first >= s.first && ranges[i].second <= s.second;
      EXPECT_EQ(ex->loss[i] != 0, inside) << r.id << " token " << i << " '" << spelled.substr(ranges[i].first, ranges[i].second - ranges[i].first) << "'";
      if (ex->loss[i]) loss_bytes += ranges[i].second - ranges[i].first;
    }
    EXPECT_EQ(loss_bytes, span_bytes) << r.id;  // no token straddles a span edge
  }
}

TEST(TrainData, TargetsAreTheNextLossToken) {
  const std::string path = write_temp("chat.jsonl", kJsonl);
  auto records = read_chat_jsonl(path);
  ASSERT_TRUE(records.ok());
  TrainDataConfig cfg;
  cfg.seq_len = 64;
  cfg.batch_size = 1;
  cfg.shuffle = false;
  auto ex = tokenize_train_record(small_tokenizer(), (*records)[1], cfg);
  ASSERT_TRUE(ex.ok());
  ASSERT_LT(ex->ids.size(), 65u);
  auto loader = TrainDataLoader::create({*ex}, 3, cfg);
  ASSERT_TRUE(loader.ok());
  TrainBatch b = loader->next_batch();
  ASSERT_EQ(b.tokens.size(), 64u);
  for (size_t i = 0; i < 64; ++i) {
    const bool real = i < ex->ids.size();
    EXPECT_EQ(b.tokens[i], real ? ex->ids[i] : 3);
    const bool counted = i + 1 < ex->ids.size() && ex->loss[i + 1];
    EXPECT_EQ(b.targets[i], counted ? ex->ids[i + 1] : -1) << i;
  }
  // Truncation: a short seq keeps the first seq + 1 ids.
  cfg.seq_len = 8;
  auto small = TrainDataLoader::create({*ex}, 3, cfg);
  ASSERT_TRUE(small.ok());
  TrainBatch t = small->next_batch();
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(t.tokens[i], ex->ids[i]);
}

TEST(TrainData, SampleWeights) {
  const std::string path = write_temp("chat.jsonl", kJsonl);
  auto records = read_chat_jsonl(path);
  ASSERT_TRUE(records.ok());
  TrainDataConfig cfg;
  cfg.safety_weight = 4.0;
  std::vector<float> w;
  for (const auto& r : *records) {
    auto ex = tokenize_train_record(small_tokenizer(), r, cfg);
    ASSERT_TRUE(ex.ok());
    w.push_back(ex->weight);
  }
  EXPECT_EQ(w, (std::vector<float>{1.0f, 4.0f, 2.5f}));
  auto only_test = read_chat_jsonl(path, "test");
  ASSERT_TRUE(only_test.ok());
  ASSERT_EQ(only_test->size(), 1u);
  EXPECT_EQ((*only_test)[0].id, "c");
}

std::vector<std::vector<float>> epoch_rows(uint64_t seed, int batches) {
  std::vector<TokenizedExample> exs;
  for (int i = 0; i < 10; ++i) exs.push_back({{5, 6, 7}, {0, 1, 1}, static_cast<float>(i)});  // weight = index
  TrainDataConfig cfg;
  cfg.seq_len = 4;
  cfg.batch_size = 4;
  cfg.seed = seed;
  auto loader = TrainDataLoader::create(exs, 3, cfg);
  EXPECT_TRUE(loader.ok());
  std::vector<std::vector<float>> out;
  for (int i = 0; i < batches; ++i) out.push_back(loader->next_batch().sample_weight);
  return out;
}

TEST(TrainData, ShuffleIsDeterministicAndCoversEveryEpoch) {
  const auto a = epoch_rows(11, 10), b = epoch_rows(11, 10), c = epoch_rows(12, 10);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<float> flat;
  for (const auto& batch : a) flat.insert(flat.end(), batch.begin(), batch.end());
  ASSERT_EQ(flat.size(), 40u);
  for (int e = 0; e < 4; ++e) {  // 40 rows = 4 epochs of 10 examples, each a permutation
    std::set<float> seen(flat.begin() + e * 10, flat.begin() + (e + 1) * 10);
    EXPECT_EQ(seen.size(), 10u) << "epoch " << e;
  }
  // Two epochs in a row are different permutations.
  EXPECT_FALSE(std::equal(flat.begin(), flat.begin() + 10, flat.begin() + 10));
}

TEST(TrainData, PlainTextParagraphs) {
  const std::string path = write_temp("text.txt", "First line.\nstill first.\n\n\nSecond paragraph.\n");
  auto records = read_plain_text(path);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].text, "First line.\nstill first.");
  auto ex = tokenize_train_record(small_tokenizer(), (*records)[1], TrainDataConfig{});
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex->ids.back(), 0);  // <|endoftext|>
  for (uint8_t l : ex->loss) EXPECT_EQ(l, 1);
  auto text = small_tokenizer().decode(std::vector<int32_t>(ex->ids.begin(), ex->ids.end() - 1));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "Second paragraph.");
}

TEST(TrainData, BadJsonlNamesTheLine) {
  const std::string path = write_temp("bad.jsonl", std::string(kJsonl) + "{\"messages\": 3}\n");
  auto r = read_chat_jsonl(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("bad.jsonl:5"), std::string::npos) << r.status().to_string();
  const std::string path2 = write_temp("bad2.jsonl", "{not json\n");
  EXPECT_FALSE(read_chat_jsonl(path2).ok());
  TrainRecord no_reply;
  no_reply.messages = {{"user", "hello"}};
  EXPECT_FALSE(tokenize_train_record(small_tokenizer(), no_reply, TrainDataConfig{}).ok());
}

TEST(TrainData, ReplyCannotInjectControlTokens) {
  TrainRecord r;
  r.messages = {{"user", "hi"}, {"assistant", "ok<|im_end|>"}};
  auto ex = tokenize_train_record(small_tokenizer(), r, TrainDataConfig{});
  ASSERT_TRUE(ex.ok());
  // Only the template's own <|im_end|> tokens (one per turn) are id 2.
  EXPECT_EQ(std::count(ex->ids.begin(), ex->ids.end(), 2), 2);
}

}  // namespace
}  // namespace ss

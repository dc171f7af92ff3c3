// Cross-check of the BPE trainer and of our tokenizer on a trained vocabulary against
// tests/py/bpe_reference.py, an independent from-scratch Python statement of byte-level BPE (hand
// scanner for the GPT-2 regex, merges applied by rank, the same training rule). Exact equality is
// expected: the merges list and every token id (no tolerance; BPE is discrete).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

using json = nlohmann::json;

std::vector<std::string> corpus_texts(size_t start, size_t step, size_t max) {
  auto records = read_chat_jsonl(std::string(SAFESHRINK_SOURCE_DIR) + "/data/corpus/test.jsonl");
  EXPECT_TRUE(records.ok());
  std::vector<std::string> out;
  if (!records.ok()) return out;
  for (size_t i = start; i < records->size() && out.size() < max; i += step) {
    auto r = render_chat(ChatFamily::CHATML, (*records)[i].messages, without_generation_prompt());
    if (r.ok()) out.push_back(*r);
  }
  return out;
}

std::string write_json(const std::string& dir, const std::string& name, const json& j) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << j.dump();
  return path;
}

TEST(BpeTrainPython, MergesEqualTheReferenceTrainer) {
  std::vector<std::string> texts = corpus_texts(0, 5, 240);
  texts.push_back("Caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82 it's   spaced\t\tout\n\n end");
  texts.push_back("aaaa aaaa aaaa bbbb bbbb cdcd cdcd 1234 1234 !!?? !!??");
  BpeTrainConfig cfg;
  cfg.vocab_size = 600;
  auto bpe = train_bpe(texts, cfg);
  ASSERT_TRUE(bpe.ok()) << bpe.status().to_string();
  const std::string dir = test::temp_dir("bpe_ref_train");
  const std::string texts_path = write_json(dir, "texts.json", json(texts));
  std::string out;
  ASSERT_EQ(test::run_python("py/bpe_reference.py", "train " + texts_path + " 600 '" + json(cfg.special_tokens).dump() + "'", &out), 0) << out;
  json ref = json::parse(out);
  ASSERT_EQ(ref["tokens"].size(), bpe->tokens.size());
  for (size_t i = 0; i < bpe->tokens.size(); ++i) ASSERT_EQ(ref["tokens"][i].get<std::string>(), bpe->tokens[i]) << "token " << i;
  ASSERT_EQ(ref["merges"].size(), bpe->merges.size());
  for (size_t i = 0; i < bpe->merges.size(); ++i) {
    ASSERT_EQ(ref["merges"][i][0].get<std::string>(), bpe->merges[i].first) << "merge " << i;
    ASSERT_EQ(ref["merges"][i][1].get<std::string>(), bpe->merges[i].second) << "merge " << i;
  }
}

TEST(BpeTrainPython, EncodingEqualsTheReferenceEncoder) {
  BpeTrainConfig cfg;
  cfg.vocab_size = 1024;
  auto bpe = train_bpe(corpus_texts(0, 2, 800), cfg);
  ASSERT_TRUE(bpe.ok());
  const std::string dir = test::temp_dir("bpe_ref_encode");
  ASSERT_TRUE(write_bpe_tokenizer_folder(*bpe, dir).ok());
  auto tok = Tokenizer::from_hf_folder(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();

  std::vector<std::string> samples = corpus_texts(1, 2, 300);  // records not trained on
  samples.push_back("<|im_start|>user\nHow do I kill a Python process?<|im_end|>\n<|im_start|>assistant\n");
  samples.push_back("It's 5 o'clock; they'll say: 'We've won!'   Done.\n\n\tTabbed  \n");
  samples.push_back("\xC3\x9C" "ber caf\xC3\xA9s \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E 123456 \xF0\x9F\x98\x80!");
  Rng rng(3);
  for (int i = 0; i < 40; ++i) {  // random printable ASCII with runs of spaces
    std::string s;
    for (int k = 0; k < 60; ++k) s.push_back(rng.below(5) == 0 ? ' ' : static_cast<char>(0x21 + rng.below(0x5E)));
    samples.push_back(s);
  }
  const std::string texts_path = write_json(dir, "samples.json", json(samples));
  std::string out;
  ASSERT_EQ(test::run_python("py/bpe_reference.py", "encode " + dir + "/tokenizer.json " + texts_path, &out), 0) << out;
  json ref = json::parse(out);
  ASSERT_EQ(ref.size(), samples.size());
  size_t total = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    auto ids = tok->encode(samples[i], false, true);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, ref[i].get<std::vector<int32_t>>()) << "sample " << i << ": " << samples[i];
    total += ids->size();
  }
  EXPECT_GT(total, 10000u);  // the comparison covered a real amount of text
}

}  // namespace
}  // namespace ss

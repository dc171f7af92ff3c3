// `safeshrink train-tokenizer` end to end: trains on the committed held-out corpus file and a plain
// text file, writes tokenizer.json + tokenizer_config.json that our reader loads with the requested
// vocabulary size and the ChatML template; a bad input or vocabulary size is exit code 2.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "safeshrink/chat_template.h"
#include "safeshrink/tokenizer.h"
#include "test_support.h"

namespace ss {
namespace {

std::string ss_cmd(const std::string& args) { return test::cli_path() + " " + args; }

TEST(CliTrainTokenizer, TrainsAndWritesALoadableTokenizer) {
  const std::string dir = test::temp_dir("cli_train_tok");
  const std::string text = dir + "/extra.txt";
  std::ofstream(text) << "A plain paragraph of text.\n\nAnother one.\n";
  const std::string corpus = std::string(SAFESHRINK_SOURCE_DIR) + "/data/corpus/test.jsonl";
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("train-tokenizer --input " + corpus + " " + text + " --vocab-size 700 --out " + dir + "/tok"), &out), 0) << out;
  EXPECT_NE(out.find("700 tokens"), std::string::npos) << out;
  auto tok = Tokenizer::from_hf_folder(dir + "/tok");
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->vocab_size(), 700u);
  auto fam = detect_chat_template(tok->chat_template());
  ASSERT_TRUE(fam.ok());
  EXPECT_EQ(*fam, ChatFamily::CHATML);
  // Role names were learned from the rendered dialogues: "assistant" is one token.
  auto ids = tok->encode("assistant", false, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 1u);
}

TEST(CliTrainTokenizer, BadInputsAreUsageErrors) {
  const std::string dir = test::temp_dir("cli_train_tok_bad");
  std::string out;
  EXPECT_EQ(test::run_command(ss_cmd("train-tokenizer --input /nonexistent.jsonl --out " + dir), &out), 2) << out;
  const std::string corpus = std::string(SAFESHRINK_SOURCE_DIR) + "/data/corpus/test.jsonl";
  EXPECT_EQ(test::run_command(ss_cmd("train-tokenizer --input " + corpus + " --vocab-size 100 --out " + dir), &out), 2) << out;
  const std::string bad = dir + "/bad.jsonl";
  std::ofstream(bad) << "{\"messages\": 1}\n";
  EXPECT_EQ(test::run_command(ss_cmd("train-tokenizer --input " + bad + " --out " + dir), &out), 2) << out;
  EXPECT_NE(out.find("bad.jsonl:1"), std::string::npos) << out;
}

}  // namespace
}  // namespace ss

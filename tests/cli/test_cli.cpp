// The safeshrink binary end to end: exit codes, JSON output, and that what it prints agrees with
// independent facts (the fixtures README, llama.cpp's greedy text, our own files' bytes).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using namespace ss;
using nlohmann::json;

namespace {
std::string ss_cmd(const std::string& args) { return test::cli_path() + " " + args; }
std::string stories(const std::string& v) { return test::fixtures_dir() + "/stories260K/stories260K-" + v + ".gguf"; }
}  // namespace

TEST(Cli, UsageErrorsExitTwo) {
  std::string out;
  EXPECT_EQ(test::run_command(ss_cmd("no-such-command"), &out), 2) << out;
  EXPECT_EQ(test::run_command(ss_cmd("inspect"), &out), 2) << out;
  EXPECT_EQ(test::run_command(ss_cmd("inspect /nonexistent/model.gguf"), &out), 2) << out;
  EXPECT_NE(out.find("nonexistent"), std::string::npos) << out;
}

TEST(Cli, ListsFormatsAndDtypes) {
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("list formats"), &out), 0) << out;
  EXPECT_NE(out.find("gguf"), std::string::npos);
  EXPECT_NE(out.find("safetensors"), std::string::npos);
  ASSERT_EQ(test::run_command(ss_cmd("list dtypes"), &out), 0) << out;
  EXPECT_NE(out.find("q6_K"), std::string::npos);
}

TEST(Cli, InspectJsonAgreesWithFixtureFacts) {
  SS_REQUIRE_SHARED();
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("inspect --json " + test::fixtures_dir() + "/kquants/random-llama-q4_k.gguf") +
                                  " 2>/dev/null",
                              &out),
            0)
      << out;
  const json j = json::parse(out);
  // Fixtures README section 3: 4 layers x 9 tensors + token_embd + output_norm + output = 39;
  // 30 matrices in q4_K (--pure), 9 norms in F32; n_embd 256, n_ff 768, 8/4 heads, vocab 512.
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["tensors"].size(), 39u);
  EXPECT_EQ(j["types"]["q4_K"]["tensors"], 30);
  EXPECT_EQ(j["types"]["f32"]["tensors"], 9);
  EXPECT_EQ(j["config"]["hidden_size"], 256);
  EXPECT_EQ(j["config"]["intermediate_size"], 768);
  EXPECT_EQ(j["config"]["n_heads"], 8);
  EXPECT_EQ(j["config"]["n_kv_heads"], 4);
  EXPECT_EQ(j["tokenizer"]["vocab_size"], 512);
  // q4_K is 144 bytes per 256 weights = 4.5 bits.
  EXPECT_DOUBLE_EQ(j["types"]["q4_K"]["bits_per_weight"].get<double>(), 4.5);
  int64_t params = 0;
  for (const auto& t : j["tensors"]) {
    int64_t n = 1;
    for (const auto& d : t["shape"]) n *= d.get<int64_t>();
    params += n;
  }
  // 512*256 (embd) + 4*(256*256*2 + 128*256*2 + 3*256*768 + 2*256) + 256 + 512*256 (output)
  EXPECT_EQ(params, 512 * 256 + 4 * (256 * 256 * 2 + 128 * 256 * 2 + 3 * 256 * 768 + 2 * 256) + 256 + 512 * 256);
  EXPECT_EQ(j["parameters"], params);
}

TEST(Cli, CorruptFileExitsTwoNamingFileAndOffset) {
  SS_REQUIRE_SHARED();
  auto bytes = test::read_bytes(stories("f32"));
  ASSERT_GT(bytes.size(), 1000u);
  const std::string dir = test::temp_dir("cli-corrupt");
  bytes.resize(bytes.size() / 2);  // truncated: tensor data past EOF
  test::write_bytes(dir + "/trunc.gguf", bytes);
  std::string out;
  EXPECT_EQ(test::run_command(ss_cmd("inspect " + dir + "/trunc.gguf"), &out), 2) << out;
  EXPECT_NE(out.find("trunc.gguf"), std::string::npos) << out;
  EXPECT_NE(out.find("offset"), std::string::npos) << out;
  test::write_bytes(dir + "/junk.bin", {'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(test::run_command(ss_cmd("inspect " + dir + "/junk.bin"), &out), 2) << out;
}

TEST(Cli, ConvertRoundTripKeepsTensorBytes) {
  SS_REQUIRE_SHARED();
  const std::string dir = test::temp_dir("cli-convert");
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("convert " + stories("q4_k_m") + " " + dir + "/m.safetensors"), &out), 0) << out;
  ASSERT_EQ(test::run_command(ss_cmd("convert " + dir + "/m.safetensors " + dir + "/m.gguf"), &out), 0) << out;
  std::string a, b;
  ASSERT_EQ(test::run_command(ss_cmd("inspect --json " + stories("q4_k_m") + " 2>/dev/null"), &a), 0);
  ASSERT_EQ(test::run_command(ss_cmd("inspect --json " + dir + "/m.gguf 2>/dev/null"), &b), 0);
  const json ja = json::parse(a), jb = json::parse(b);
  EXPECT_EQ(ja["tensors"], jb["tensors"]);
}

TEST(Cli, GreedyGenerationEqualsLlamaCppAndLlama2cText) {
  SS_REQUIRE_SHARED();
  // llama.cpp's greedy text for "Once upon a time" (200 tokens), fixtures greedy/f32.text.txt, and
  // karpathy/llama2.c run.c's stdout for the same prompt (its text plus the newline run.c prints).
  std::ifstream f(test::fixtures_dir() + "/stories260K/reference/greedy/f32.text.txt");
  const std::string expected((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::ifstream f2(test::fixtures_dir() + "/stories260K/reference/llama2c/run-c-temp0-n204.txt");
  const std::string llama2c((std::istreambuf_iterator<char>(f2)), std::istreambuf_iterator<char>());
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("generate --quiet -m " + stories("f32") + " -p 'Once upon a time' -n 200 2>/dev/null"),
                              &out),
            0);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out, llama2c);
  if (out.back() == '\n') out.pop_back();
  EXPECT_EQ(out, expected);
}

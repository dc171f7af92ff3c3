// Tokenizers against llama.cpp's own test vectors (../shared/fixtures/tokenizers: ggml-vocab-*.gguf
// with .inp/.out made by llama.cpp's test-tokenizer-0, add_special = false, parse_special = false)
// and against the stories260K manifest (llama_tokenize with add_special = true, and
// llama_token_to_piece(special = false) as hex). The expected ids are llama.cpp's output, never
// ours. Round trip: decoding the ids (without llama.cpp's optional space clean-up) must give the
// input back, except for WordPiece, which lowercases, strips accents and drops whitespace.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "safeshrink/formats.h"
#include "safeshrink/tokenizer.h"
#include "test_support.h"

using namespace ss;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// test-tokenizer-0's reader: inputs separated by "\n__ggml_vocab_test__\n", one output line each,
// kept in a std::map so duplicate inputs count once.
std::map<std::string, std::vector<int32_t>> read_cases(const std::string& inp_path, const std::string& out_path) {
  const std::string raw = read_all(inp_path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<std::string> lines;
  std::ifstream out(out_path);
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  std::map<std::string, std::vector<int32_t>> cases;
  if (inputs.size() != lines.size()) return cases;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<int32_t> ids;
    std::istringstream is(lines[i]);
    for (long v; is >> v;) ids.push_back(static_cast<int32_t>(v));
    cases[inputs[i]] = ids;
  }
  return cases;
}

std::string hex_of(const std::string& s) {
  std::string h;
  char buf[4];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    h += buf;
  }
  return h;
}

std::string ids_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    s += ' ';
    s += std::to_string(id);
  }
  return s;
}

}  // namespace

class VocabFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabFixture, MatchesLlamaCppTestVectors) {
  SS_REQUIRE_SHARED();
  const std::string name = GetParam();
  const std::string base = ss::test::fixtures_dir() + "/tokenizers/ggml-vocab-" + name + ".gguf";
  auto store = read_gguf(base);
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  auto tok = Tokenizer::from_store(*store);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  const auto cases = read_cases(base + ".inp", base + ".out");
  ASSERT_GT(cases.size(), 30u) << "could not read " << base << ".inp/.out";

  const bool lossy = tok->algorithm() == TokenizerAlgorithm::WORDPIECE;
  size_t pass = 0, round_trips = 0;
  for (const auto& [text, expected] : cases) {
    auto ids = tok->encode(text, /*add_special=*/false, /*parse_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().to_string();
    if (*ids == expected) {
      ++pass;
    } else {
      ADD_FAILURE() << name << ": input '" << text << "'\n  expected" << ids_string(expected) << "\n  got     "
                    << ids_string(*ids);
    }
    DecodeOptions lossless;
    lossless.clean_up_spaces = false;
    auto back = tok->decode(expected, lossless);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    if (*back == text) {
      ++round_trips;
    } else if (!lossy) {
      ADD_FAILURE() << name << ": decode of the expected ids gives '" << *back << "' instead of '" << text << "'";
    }
  }
  std::printf("%s: %zu/%zu encode, %zu/%zu decode round trip%s\n", name.c_str(), pass, cases.size(), round_trips,
              cases.size(), lossy ? " (WordPiece is lossy: not required)" : "");
  EXPECT_EQ(pass, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, VocabFixture,
                         ::testing::Values("bert-bge", "deepseek-coder", "deepseek-llm", "falcon", "gpt-2", "llama-spm",
                                           "mpt", "phi-3", "refact", "starcoder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(Stories260K, TokenIdsAndPiecesMatchManifest) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::fixtures_dir() + "/stories260K";
  const auto manifest = nlohmann::json::parse(read_all(dir + "/reference/manifest.json"));
  auto store = read_gguf(dir + "/stories260K-f32.gguf");
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  auto tok = Tokenizer::from_store(*store);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->vocab_size(), 512u);
  EXPECT_EQ(tok->special_ids().bos, 1);
  EXPECT_EQ(tok->special_ids().eos, 2);

  std::map<std::string, bool> checked;
  for (const auto& e : manifest["entries"]) {
    if (!e.contains("token_ids") || !e.contains("prompt_file")) continue;
    const std::string prompt_file = e["prompt_file"].get<std::string>();
    if (checked.count(prompt_file)) continue;
    checked[prompt_file] = true;
    const std::string text = read_all(dir + "/reference/" + prompt_file);
    const auto expected = e["token_ids"].get<std::vector<int32_t>>();
    const auto pieces = e["token_pieces_hex"].get<std::vector<std::string>>();
    auto ids = tok->encode(text, /*add_special=*/true, /*parse_special=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status().to_string();
    EXPECT_EQ(*ids, expected) << prompt_file;
    ASSERT_EQ(pieces.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      auto piece = tok->token_to_piece(expected[i], /*print_special=*/false);
      ASSERT_TRUE(piece.ok());
      EXPECT_EQ(hex_of(*piece), pieces[i]) << prompt_file << " token " << i << " id " << expected[i];
    }
    // Decoding must give the concatenation of llama.cpp's pieces (BOS renders as "").
    std::string joined;
    for (const auto& h : pieces)
      for (size_t k = 0; k + 1 < h.size(); k += 2) joined.push_back(static_cast<char>(std::stoi(h.substr(k, 2), nullptr, 16)));
    auto back = tok->decode(expected);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, joined) << prompt_file;
  }
  std::printf("stories260K: %zu prompts checked\n", checked.size());
  EXPECT_EQ(checked.size(), 4u);
}

// Tokenizer unit tests on small hand-built vocabularies: every expected id list below is derived
// by hand from the merge rules / scores written next to it (the derivation is in the comments),
// not taken from our own output. Malformed vocabularies (GGUF key/values and tokenizer.json) must
// give an error that names what is wrong, never a crash or an exception.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "safeshrink/metadata.h"
#include "safeshrink/rng.h"
#include "safeshrink/tokenizer.h"

using namespace ss;

namespace {

using Ids = std::vector<int32_t>;

MetaValue strings(std::vector<std::string> v) { return MetaValue::of_strings(std::move(v)); }

// Byte-level BPE ("gpt2", pre "gpt-2"). Texts are GPT-2 byte-level characters: "Ġ" is ' '.
Metadata bpe_meta() {
  Metadata m;
  m.set("tokenizer.ggml.model", MetaValue::of_string("gpt2"));
  m.set("tokenizer.ggml.pre", MetaValue::of_string("gpt-2"));
  //                                0    1    2    3       4     5     6      7        8          9    10
  m.set("tokenizer.ggml.tokens", strings({"a", "b", "c", "\xC4\xA0", "ab", "bc", "abc", "\xC4\xA0" "a", "<|end|>", "!", "xy"}));
  m.set("tokenizer.ggml.token_type", MetaValue::of_array<int32_t>(MetaType::I32, {1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 4}));
  // ranks: 0 "b c", 1 "a b", 2 "Ġ a", 3 "a bc"
  m.set("tokenizer.ggml.merges", strings({"b c", "a b", "\xC4\xA0 a", "a bc"}));
  m.set("tokenizer.ggml.bos_token_id", MetaValue::of_u32(8));
  m.set("tokenizer.ggml.eos_token_id", MetaValue::of_u32(8));
  return m;
}

// SentencePiece by score ("llama"). "▁" is U+2581.
const std::string kU = "\xE2\x96\x81";
Metadata spm_meta() {
  Metadata m;
  m.set("tokenizer.ggml.model", MetaValue::of_string("llama"));
  m.set("tokenizer.ggml.tokens", strings({"<unk>", "<s>", "</s>", "<0x0A>", "<0xE2>", "<0x98>", "<0x95>",  // 0-6
                                          kU, "a", "b", "c", kU + "a", "ab", "bc", kU + "ab", "abc"}));  // 7-15
  m.set("tokenizer.ggml.scores", MetaValue::of_array<float>(MetaType::F32, {0, 0, 0, 0, 0, 0, 0,  //
                                                                             -1, -2, -2, -2, -0.5f, -0.2f, -0.1f, -0.3f, -5}));
  m.set("tokenizer.ggml.token_type",
        MetaValue::of_array<int32_t>(MetaType::I32, {2, 3, 3, 6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  m.set("tokenizer.ggml.bos_token_id", MetaValue::of_u32(1));
  m.set("tokenizer.ggml.eos_token_id", MetaValue::of_u32(2));
  m.set("tokenizer.ggml.unknown_token_id", MetaValue::of_u32(0));
  return m;
}

Ids encode(const Tokenizer& t, const std::string& text, bool add_special = false, bool parse_special = false) {
  auto r = t.encode(text, add_special, parse_special);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : Ids{};
}

std::string decode(const Tokenizer& t, const Ids& ids, bool print_special = false) {
  DecodeOptions o;
  o.print_special = print_special;
  auto r = t.decode(ids, o);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : std::string();
}

// Expects an error of CODE whose message contains every NEEDLE.
template <class T>
void expect_error(const Result<T>& r, StatusCode code, std::vector<std::string> needles) {
  ASSERT_FALSE(r.ok()) << "expected an error";
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  for (const auto& n : needles) EXPECT_NE(r.status().message().find(n), std::string::npos) << r.status().to_string();
}

}  // namespace

TEST(TokenizerBpe, MergesFollowRankNotPosition) {
  auto t = Tokenizer::from_gguf_metadata(bpe_meta(), "hand");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->algorithm(), TokenizerAlgorithm::BPE_RANKS);
  // "abc": pairs (a,b) rank 1 and (b,c) rank 0 -> b+c first -> a,bc -> rank 3 -> abc
  EXPECT_EQ(encode(*t, "abc"), (Ids{6}));
  EXPECT_EQ(encode(*t, "ab"), (Ids{4}));
  // " abc" is one gpt-2 word -> "Ġabc": bc (0), then Ġa (2), then (Ġa,bc) has no rule
  EXPECT_EQ(encode(*t, " abc"), (Ids{7, 5}));
  // "cab!" -> words "cab", "!": (c,a) no rule, (a,b) rank 1 -> c, ab
  EXPECT_EQ(encode(*t, "cab!"), (Ids{2, 4, 9}));
  EXPECT_EQ(decode(*t, {7, 5}), " abc");
}

TEST(TokenizerBpe, SpecialAndUserDefinedTokens) {
  auto t = Tokenizer::from_gguf_metadata(bpe_meta(), "hand");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(encode(*t, "abc<|end|>abc", false, true), (Ids{6, 8, 6}));
  // Without parse_special the control token is text; its characters have no tokens and, as in
  // llama.cpp, are dropped.
  EXPECT_EQ(encode(*t, "abc<|end|>abc", false, false), (Ids{6, 6}));
  // User-defined tokens are matched even without parse_special.
  EXPECT_EQ(encode(*t, "axyb"), (Ids{0, 10, 1}));
  EXPECT_EQ(decode(*t, {6, 8, 6}), "abcabc");
  EXPECT_EQ(decode(*t, {6, 8, 6}, true), "abc<|end|>abc");
  EXPECT_TRUE(t->is_end_of_generation(8));
  EXPECT_EQ(t->special_ids().bos, 8);
  EXPECT_FALSE(t->add_bos());  // gpt2 default; the key is absent
}

TEST(TokenizerBpe, CleanUpSpacesFollowsLlamaCpp) {
  Metadata m;
  m.set("tokenizer.ggml.model", MetaValue::of_string("gpt2"));
  m.set("tokenizer.ggml.pre", MetaValue::of_string("gpt-2"));
  m.set("tokenizer.ggml.tokens", strings({"a", "\xC4\xA0", "?", "'", "s", "m", "t"}));
  m.set("tokenizer.ggml.merges", strings({}));
  auto t = Tokenizer::from_gguf_metadata(m, "hand");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  // llama.cpp's detokenize: " ?" -> "?", " ' " -> "'", " 's" / " 'm" -> "'s" / "'m", " 't" kept.
  EXPECT_EQ(decode(*t, {0, 1, 2}), "a?");
  EXPECT_EQ(decode(*t, {0, 1, 3, 4}), "a's");
  EXPECT_EQ(decode(*t, {0, 1, 3, 5}), "a'm");
  EXPECT_EQ(decode(*t, {0, 1, 3, 6}), "a 't");
  EXPECT_EQ(decode(*t, {0, 1, 3, 1, 0}), "a'a");
  DecodeOptions raw;
  raw.clean_up_spaces = false;
  EXPECT_EQ(*t->decode({0, 1, 2}, raw), "a ?");
}

TEST(TokenizerSpm, HighestScoreMergesFirst) {
  auto t = Tokenizer::from_gguf_metadata(spm_meta(), "hand");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->algorithm(), TokenizerAlgorithm::SPM_SCORES);
  // "abc" -> "▁abc": bigrams ▁a -0.5, ab -0.2, bc -0.1 -> bc; then ▁a -0.5 beats abc -5 -> ▁a, bc
  EXPECT_EQ(encode(*t, "abc"), (Ids{11, 13}));
  // "ab" -> "▁ab": ab -0.2 before ▁a -0.5 -> ▁,ab -> ▁ab -0.3
  EXPECT_EQ(encode(*t, "ab"), (Ids{14}));
  // add_special: BOS (1) first; add_bos defaults to true for "llama"
  EXPECT_EQ(encode(*t, "ab", true), (Ids{1, 14}));
  // "☕" (E2 98 95) is not a token: byte fallback; "\n" -> <0x0A>
  EXPECT_EQ(encode(*t, "a\xE2\x98\x95"), (Ids{11, 4, 5, 6}));
  EXPECT_EQ(encode(*t, "a\nb"), (Ids{11, 3, 9}));
  // "z" has neither a token nor a byte token: unknown
  EXPECT_EQ(encode(*t, "z"), (Ids{7, 0}));
  // decoding drops the prefix space and turns byte tokens back into bytes
  EXPECT_EQ(decode(*t, {11, 4, 5, 6}), "a\xE2\x98\x95");
  EXPECT_EQ(decode(*t, {1, 14}), " ab");  // llama.cpp: BOS takes the strip, the space stays
  EXPECT_EQ(decode(*t, {1, 14}, true), "<s> ab");
  auto piece = t->token_to_piece(3);
  ASSERT_TRUE(piece.ok());
  EXPECT_EQ(*piece, "\n");
}

TEST(TokenizerSpm, SpacePrefixAfterSpecialToken) {
  auto t = Tokenizer::from_gguf_metadata(spm_meta(), "hand");
  ASSERT_TRUE(t.ok());
  // "ab</s>ab" with parse_special: each text fragment after a special token gets the prefix space
  EXPECT_EQ(encode(*t, "ab</s>ab", false, true), (Ids{14, 2, 14}));
  Metadata m = spm_meta();
  m.set("tokenizer.ggml.add_space_prefix", MetaValue::of_bool(false));
  auto u = Tokenizer::from_gguf_metadata(m, "hand");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(encode(*u, "ab"), (Ids{12}));
}

TEST(TokenizerHf, ByteLevelBpeFromTokenizerJson) {
  // The same vocabulary as bpe_meta(), merges in both forms.
  const std::string tj = R"({
    "added_tokens": [{"id": 8, "content": "<|end|>", "special": true, "lstrip": false, "rstrip": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "bc": 5, "abc": 6, "\u0120a": 7},
              "merges": ["b c", ["a", "b"], "\u0120 a", ["a", "bc"]]}})";
  const std::string cfg = R"({"bos_token": {"content": "<|end|>"}, "add_bos_token": true, "chat_template": "{{ x }}"})";
  auto t = Tokenizer::from_hf_json(tj, cfg, "hand.json");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(encode(*t, "abc"), (Ids{6}));
  EXPECT_EQ(encode(*t, " abc"), (Ids{7, 5}));
  EXPECT_EQ(encode(*t, "abc", true), (Ids{8, 6}));
  EXPECT_EQ(encode(*t, "ab<|end|>", false, true), (Ids{4, 8}));
  EXPECT_EQ(decode(*t, {7, 5}), " abc");
  EXPECT_EQ(t->chat_template(), "{{ x }}");
}

TEST(TokenizerHf, SentencePieceStyleByteFallback) {
  const std::string tj = R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "<0xE2>": 4, "<0x98>": 5, "<0x95>": 6,
                        "\u2581": 7, "a": 8, "b": 9, "\u2581a": 10, "ab": 11, "\u2581ab": 12},
              "merges": ["a b", "\u2581 a", "\u2581 ab"]}})";
  auto t = Tokenizer::from_hf_json(tj, R"({"bos_token": "<s>", "add_bos_token": true})", "hand.json");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  // "ab ☕" -> "▁ab▁☕": a b (rank 0), then ▁ ab (rank 2); ☕ -> <0xE2><0x98><0x95>
  EXPECT_EQ(encode(*t, "ab \xE2\x98\x95"), (Ids{12, 7, 4, 5, 6}));
  // "cc": c is neither a token nor a byte token -> one fused <unk>
  EXPECT_EQ(encode(*t, "cc"), (Ids{7, 0}));
  EXPECT_EQ(encode(*t, "ab", true), (Ids{1, 12}));
  EXPECT_EQ(decode(*t, {12, 7, 4, 5, 6}), "ab \xE2\x98\x95");
  EXPECT_EQ(t->token_type(4), TokenType::BYTE);
  EXPECT_EQ(t->token_type(0), TokenType::UNKNOWN);
}

// ---- malformed GGUF vocabularies ----

TEST(TokenizerMalformed, GgufKeysAreChecked) {
  {
    Metadata m;  // no tokenizer at all
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::NOT_FOUND, {"tokenizer.ggml.model"});
  }
  {
    Metadata m = bpe_meta();
    m.set("tokenizer.ggml.model", MetaValue::of_string("t5"));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::UNSUPPORTED, {"t5"});
  }
  {
    Metadata m = bpe_meta();
    m.set("tokenizer.ggml.pre", MetaValue::of_string("no-such-pre"));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::UNSUPPORTED, {"no-such-pre"});
  }
  {
    Metadata m = bpe_meta();  // a vocabulary claiming 2^40 entries
    MetaValue v = strings({"a", "b"});
    v.count = 1ull << 40;
    m.set("tokenizer.ggml.tokens", v);
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT,
                 {"x.gguf", "tokenizer.ggml.tokens", "4194304", "1099511627776"});
  }
  {
    Metadata m = bpe_meta();  // tokens of the wrong type
    m.set("tokenizer.ggml.tokens", MetaValue::of_array<uint32_t>(MetaType::U32, {1, 2, 3}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"tokenizer.ggml.tokens", "u32"});
  }
  {
    Metadata m = spm_meta();  // fewer scores than tokens
    m.set("tokenizer.ggml.scores", MetaValue::of_array<float>(MetaType::F32, {0, 0}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"tokenizer.ggml.scores", ">= 16"});
  }
  {
    Metadata m = spm_meta();  // scores array whose packed bytes are short of its count
    MetaValue v = MetaValue::of_array<float>(MetaType::F32, std::vector<float>(16, 0.0f));
    v.packed.resize(8);
    m.set("tokenizer.ggml.scores", v);
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"tokenizer.ggml.scores"});
  }
  {
    Metadata m = bpe_meta();  // a token type outside 0..6
    m.set("tokenizer.ggml.token_type", MetaValue::of_array<int32_t>(MetaType::I32, {1, 1, 9, 1, 1, 1, 1, 1, 3, 1, 4}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"token_type[2]", "9"});
  }
  {
    Metadata m = bpe_meta();  // a merge naming a token that does not exist
    m.set("tokenizer.ggml.merges", strings({"b c", "a zz"}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"merge 1", "'zz'"});
  }
  {
    Metadata m = bpe_meta();  // a merge whose result is not a token
    m.set("tokenizer.ggml.merges", strings({"c a"}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"merge 0", "'ca'"});
  }
  {
    Metadata m = bpe_meta();  // a merge without a separator
    m.set("tokenizer.ggml.merges", strings({"abc"}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"tokenizer.ggml.merges[0]"});
  }
  {
    Metadata m = bpe_meta();  // gpt2 without merges
    m.erase("tokenizer.ggml.merges");
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::NOT_FOUND, {"tokenizer.ggml.merges"});
  }
  {
    Metadata m = bpe_meta();  // the same text twice
    m.set("tokenizer.ggml.tokens", strings({"a", "b", "c", "\xC4\xA0", "ab", "bc", "abc", "\xC4\xA0" "a", "<|end|>", "!", "a"}));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"token 10", "'a'", "token 0"});
  }
  {
    Metadata m = bpe_meta();  // a flag of the wrong type
    m.set("tokenizer.ggml.add_bos_token", MetaValue::of_u32(1));
    expect_error(Tokenizer::from_gguf_metadata(m, "x.gguf"), StatusCode::CORRUPT, {"add_bos_token", "bool"});
  }
  {
    Metadata m = bpe_meta();  // an out-of-range special id is ignored (llama.cpp), with a note
    m.set("tokenizer.ggml.padding_token_id", MetaValue::of_u32(4294967295u));
    auto t = Tokenizer::from_gguf_metadata(m, "x.gguf");
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    EXPECT_EQ(t->special_ids().pad, kNoToken);
    ASSERT_FALSE(t->notes().empty());
    EXPECT_NE(t->notes()[0].find("padding_token_id"), std::string::npos);
  }
}

TEST(TokenizerMalformed, BadTextAndIds) {
  auto t = Tokenizer::from_gguf_metadata(spm_meta(), "hand");
  ASSERT_TRUE(t.ok());
  for (const std::string& bad : {std::string("a\xFF"), std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
                                std::string("\xE2\x98"), std::string("\xF4\x90\x80\x80")})
    expect_error(t->encode(bad, false, false), StatusCode::INVALID_ARGUMENT, {"UTF-8"});
  expect_error(t->decode({1, 16}), StatusCode::INVALID_ARGUMENT, {"16"});
  expect_error(t->decode({-1}), StatusCode::INVALID_ARGUMENT, {"-1"});
  expect_error(t->token_to_piece(1 << 30), StatusCode::INVALID_ARGUMENT, {"outside"});
  EXPECT_EQ(t->token_text(99), "");
  EXPECT_EQ(t->token_id("nope"), kNoToken);
}

TEST(TokenizerMalformed, TokenizerJsonIsChecked) {
  const std::string ok_model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  expect_error(Tokenizer::from_hf_json("not json", "", "t.json"), StatusCode::CORRUPT, {"t.json", "JSON"});
  expect_error(Tokenizer::from_hf_json(std::string(100000, '[') + std::string(100000, ']'), "", "t.json"),
               StatusCode::CORRUPT, {"nesting"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": ["a"], "merges": []}})", "", "t.json"),
               StatusCode::CORRUPT, {"model.vocab"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": -5}, "merges": []}})", "", "t.json"),
               StatusCode::CORRUPT, {"-5"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": 1099511627776}, "merges": []}})", "",
                                       "t.json"),
               StatusCode::CORRUPT, {"1099511627776"});
  // an id far beyond the number of entries would make a tiny file allocate a huge table
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": 4000000}, "merges": []}})", "", "t.json"),
               StatusCode::CORRUPT, {"4000000", "65537"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})", "", "t.json"),
               StatusCode::CORRUPT, {"integer id"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a zz"]}})", "",
                                       "t.json"),
               StatusCode::CORRUPT, {"merge 0", "'zz'"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [5]}})", "", "t.json"),
               StatusCode::CORRUPT, {"model.merges[0]"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "Unigram", "vocab": []}})", "", "t.json"),
               StatusCode::UNSUPPORTED, {"Unigram"});
  expect_error(Tokenizer::from_hf_json(R"({"model": {"type": "BPE", "byte_fallback": "yes", "vocab": {}, "merges": []}})", "",
                                       "t.json"),
               StatusCode::CORRUPT, {"t.json"});
  expect_error(Tokenizer::from_hf_json("{" + ok_model + R"(, "added_tokens": [{"id": 0, "content": "zz"}]})", "", "t.json"),
               StatusCode::CORRUPT, {"added_tokens[0]", "'a'", "'zz'"});
  expect_error(Tokenizer::from_hf_json("{" + ok_model + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("},
                                       "behavior": "Isolated"}})",
                                       "", "t.json"),
               StatusCode::INVALID_ARGUMENT, {"(("});
  expect_error(Tokenizer::from_hf_json("{" + ok_model + "}", R"({"bos_token": "<nope>"})", "t.json"), StatusCode::CORRUPT,
               {"bos_token", "<nope>"});
  auto t = Tokenizer::from_hf_json("{" + ok_model + "}", "", "t.json");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(encode(*t, "ab"), (Ids{2}));
}

// Random vocabularies and texts: construction may fail, but must fail with a Status; encoding
// and decoding whatever was built must not crash.
TEST(TokenizerMalformed, RandomVocabulariesNeverCrash) {
  Rng rng(20260101);
  const char alphabet[] = {'a', 'b', ' ', '<', '>', '\n', '\xC4', '\xA0', '\xE2', '\x96', '\x81', '\xFF'};
  auto random_text = [&](size_t max_len) {
    std::string s;
    const size_t n = rng.below(max_len + 1);
    for (size_t i = 0; i < n; ++i) s.push_back(alphabet[rng.below(sizeof alphabet)]);
    return s;
  };
  int built = 0;
  for (int round = 0; round < 300; ++round) {
    Metadata m;
    m.set("tokenizer.ggml.model", MetaValue::of_string(rng.below(2) ? "gpt2" : "llama"));
    std::vector<std::string> toks;  // distinct texts (duplicates have their own test above)
    for (size_t i = 0, want = 1 + rng.below(20); i < want; ++i) {
      std::string s = random_text(4);
      if (std::find(toks.begin(), toks.end(), s) == toks.end()) toks.push_back(s);
    }
    const size_t n = toks.size();
    m.set("tokenizer.ggml.tokens", strings(toks));
    std::vector<int32_t> types;
    for (size_t i = 0; i < n; ++i)  // mostly valid types, sometimes -1 or 7
      types.push_back(rng.below(8) ? static_cast<int32_t>(rng.below(7)) : (rng.below(2) ? -1 : 7));
    if (rng.below(2)) m.set("tokenizer.ggml.token_type", MetaValue::of_array<int32_t>(MetaType::I32, types));
    std::vector<std::string> merges;
    for (size_t i = 0; i < rng.below(6); ++i) merges.push_back(toks[rng.below(n)] + " " + toks[rng.below(n)]);
    m.set("tokenizer.ggml.merges", strings(merges));
    auto t = Tokenizer::from_gguf_metadata(m, "random");
    if (!t.ok()) {
      EXPECT_FALSE(t.status().message().empty());
      continue;
    }
    ++built;
    for (int k = 0; k < 5; ++k) {
      const std::string text = random_text(12);
      auto ids = t->encode(text, rng.below(2), rng.below(2));
      if (!ids.ok()) continue;  // invalid UTF-8, or a missing BOS: an error, not a crash
      for (int32_t id : *ids) EXPECT_LT(static_cast<size_t>(id), t->vocab_size());
      auto back = t->decode(*ids);
      EXPECT_TRUE(back.ok());
    }
  }
  EXPECT_GT(built, 10);  // the loop must exercise encoding, not only rejection
}

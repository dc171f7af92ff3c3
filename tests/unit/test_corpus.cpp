// Checks of the committed corpus and prompt set (data/corpus/, data/prompts/), read with our loader
// and plain JSON, independent of the generator's own asserts: the schema; base data holds no harmful
// request; eight harm categories with at least 12 template families each; the split rule (no test
// family, no test prompt in a training file); refusals open with a refusal phrase and benign answers
// hold none; the prompt set's counts and provenance; and the sha256 in the READMEs equal
// `sha256sum` of the files.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "safeshrink/train_data.h"
#include "test_support.h"

namespace ss {
namespace {

using json = nlohmann::json;

const std::vector<std::string> kHarmCategories = {"violence_weapons", "cybercrime_malware", "drugs", "fraud_scams",
                                                  "privacy_doxxing", "self_harm", "hate_harassment", "dangerous_chemistry"};

std::string repo(const std::string& rel) { return std::string(SAFESHRINK_SOURCE_DIR) + "/" + rel; }

std::vector<json> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool starts_as_refusal(const std::string& answer) {
  for (const char* p : {"I can't", "I cannot", "I won't", "Sorry, but I can", "I'm sorry"})
    if (answer.rfind(p, 0) == 0) return true;
  return false;
}

TEST(Corpus, SchemaSplitRuleAndResponses) {
  std::map<std::string, std::vector<json>> files;
  for (const char* name : {"base_train", "safety_train", "test"}) {
    const std::string path = repo(std::string("data/corpus/") + name + ".jsonl");
    files[name] = read_lines(path);
    auto via_loader = read_chat_jsonl(path);
    ASSERT_TRUE(via_loader.ok()) << via_loader.status().to_string();
    EXPECT_EQ(via_loader->size(), files[name].size());
  }
  EXPECT_EQ(files["base_train"].size(), 20000u);
  EXPECT_EQ(files["safety_train"].size(), 6000u);
  EXPECT_EQ(files["test"].size(), 1500u);

  std::set<std::string> train_families, test_families, train_prompts, ids;
  std::map<std::string, std::set<std::string>> families_per_category;
  std::map<std::string, int> harmful_per_file;
  for (const auto& [name, rows] : files) {
    for (const auto& r : rows) {
      ASSERT_TRUE(r["id"].is_string() && r["category"].is_string() && r["label"].is_string() && r["family"].is_string() &&
                  r["split"].is_string() && r["safety_critical"].is_boolean() && r["messages"].is_array())
          << r.dump();
      EXPECT_TRUE(ids.insert(r["id"].get<std::string>()).second) << "duplicate id " << r["id"];
      ASSERT_EQ(r["messages"].size(), 2u);
      EXPECT_EQ(r["messages"][0]["role"], "user");
      EXPECT_EQ(r["messages"][1]["role"], "assistant");
      const std::string prompt = r["messages"][0]["content"], answer = r["messages"][1]["content"];
      const std::string label = r["label"], family = r["family"], category = r["category"];
      EXPECT_EQ(r["split"], name == "test" ? "test" : "train");
      std::istringstream words(answer);
      EXPECT_LE(std::distance(std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()), 45) << answer;
      if (label == "harmful") {
        ++harmful_per_file[name];
        EXPECT_TRUE(r["safety_critical"].get<bool>());
        EXPECT_TRUE(starts_as_refusal(answer)) << answer;
        families_per_category[category].insert(family);
      } else {
        ASSERT_EQ(label, "benign");
        const std::string a = lower(answer);
        for (const char* bad : {"can't", "cannot", "won't", "sorry", "unable"})
          EXPECT_EQ(a.find(bad), std::string::npos) << answer;
      }
      if (name == "test") {
        test_families.insert(family);
      } else {
        train_families.insert(family);
        train_prompts.insert(lower(prompt));
      }
    }
  }
  EXPECT_EQ(harmful_per_file["base_train"], 0) << "the base stage is benign only";
  EXPECT_GE(harmful_per_file["safety_train"], 3000);
  EXPECT_GE(harmful_per_file["test"], 800);
  for (const auto& c : kHarmCategories) EXPECT_GE(families_per_category[c].size(), 12u) << c;
  EXPECT_EQ(families_per_category.size(), kHarmCategories.size());
  for (const auto& f : test_families) EXPECT_EQ(train_families.count(f), 0u) << "test family in training: " << f;
  for (const auto& r : files["test"]) EXPECT_EQ(train_prompts.count(lower(r["messages"][0]["content"])), 0u) << r.dump();
}

TEST(Corpus, BuiltinPromptSetComesFromHeldOutFamilies) {
  const auto prompts = read_lines(repo("data/prompts/builtin-v1.jsonl"));
  std::set<std::string> test_prompts, test_families, train_prompts;
  for (const auto& r : read_lines(repo("data/corpus/test.jsonl"))) {
    test_prompts.insert(r["messages"][0]["content"].get<std::string>());
    test_families.insert(r["family"].get<std::string>());
  }
  for (const char* name : {"base_train", "safety_train"})
    for (const auto& r : read_lines(repo(std::string("data/corpus/") + name + ".jsonl")))
      train_prompts.insert(lower(r["messages"][0]["content"]));
  ASSERT_EQ(prompts.size(), 300u);
  std::map<std::string, int> harmful;
  int benign = 0;
  std::set<std::string> ids, texts;
  for (const auto& p : prompts) {
    const std::string text = p["prompt"], label = p["label"];
    EXPECT_TRUE(ids.insert(p["id"].get<std::string>()).second);
    EXPECT_TRUE(texts.insert(text).second) << text;
    EXPECT_TRUE(test_prompts.count(text)) << text;
    EXPECT_TRUE(test_families.count(p["family"].get<std::string>()));
    EXPECT_EQ(train_prompts.count(lower(text)), 0u) << text;
    if (label == "harmful") ++harmful[p["category"].get<std::string>()];
    else if (label == "benign") ++benign;
    else ADD_FAILURE() << "label " << label;
  }
  for (const auto& c : kHarmCategories) EXPECT_EQ(harmful[c], 25) << c;
  EXPECT_EQ(benign, 100);
  std::ifstream neutral(repo("data/prompts/neutral.txt"));
  int lines = 0;
  for (std::string l; std::getline(neutral, l);) lines += !l.empty();
  EXPECT_EQ(lines, 50);
}

TEST(Corpus, ReadmeHashesMatchTheFiles) {
  for (const auto& [folder, names] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"data/corpus", {"base_train.jsonl", "safety_train.jsonl", "test.jsonl"}},
           {"data/prompts", {"builtin-v1.jsonl", "neutral.txt"}}}) {
    std::ifstream in(repo(folder + "/README.md"));
    std::stringstream readme;
    readme << in.rdbuf();
    for (const auto& name : names) {
      std::string out;
      ASSERT_EQ(test::run_command("sha256sum " + repo(folder + "/" + name), &out), 0) << out;
      const std::string hash = out.substr(0, 64);
      EXPECT_NE(readme.str().find("| `" + name + "` |"), std::string::npos) << name;
      EXPECT_NE(readme.str().find("`" + hash + "`"), std::string::npos)
          << folder << "/" << name << ": sha256 " << hash << " is not in the README (rerun scripts/make_corpus.py)";
    }
  }
}

}  // namespace
}  // namespace ss

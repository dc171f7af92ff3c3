// Prompt-set loaders on the public files in ../shared/data (AdvBench, XSTest), checked row by row
// against Python's csv module (tests/py/csv_rows.py) and against the counts their SOURCE.md
// states (520 AdvBench rows; XSTest 450 rows = 250 safe + 200 unsafe).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "safeshrink/eval.h"
#include "test_support.h"

namespace {

nlohmann::json python_rows(const std::string& path) {
  std::string out;
  EXPECT_EQ(ss::test::run_python("py/csv_rows.py", "'" + path + "'", &out), 0) << out;
  return nlohmann::json::parse(out);
}

TEST(PromptLoaders, AdvBenchMatchesPythonCsv) {
  SS_REQUIRE_SHARED();
  SS_REQUIRE_PYTHON("csv");
  const std::string path = ss::test::shared_dir() + "/data/advbench/harmful_behaviors.csv";
  auto set = ss::load_prompt_set(path);
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ(set->name, "advbench");  // detected from the goal,target header
  ASSERT_EQ(set->prompts.size(), 520u);  // SOURCE.md
  const auto ref = python_rows(path);
  ASSERT_EQ(ref["rows"].size(), 520u);
  for (size_t i = 0; i < 520; ++i) {
    EXPECT_EQ(set->prompts[i].prompt, ref["rows"][i][0].get<std::string>()) << "row " << i;
    EXPECT_EQ(set->prompts[i].label, "harmful");
    EXPECT_EQ(set->prompts[i].category, "advbench");
  }
  const auto bytes = ss::test::read_bytes(path);
  EXPECT_EQ(set->sha256, ss::sha256_hex(std::string(bytes.begin(), bytes.end())));
  EXPECT_EQ(set->sha256.size(), 64u);
}

TEST(PromptLoaders, XSTestMatchesPythonCsvAndMapsLabels) {
  SS_REQUIRE_SHARED();
  SS_REQUIRE_PYTHON("csv");
  const std::string path = ss::test::shared_dir() + "/data/xstest/xstest_prompts.csv";
  auto set = ss::load_prompt_set(path);
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ(set->name, "xstest");
  ASSERT_EQ(set->prompts.size(), 450u);
  const auto ref = python_rows(path);
  const auto& header = ref["header"];
  int c_id = -1, c_prompt = -1, c_type = -1, c_label = -1;
  for (size_t c = 0; c < header.size(); ++c) {
    const std::string h = header[c].get<std::string>();
    if (h == "id") c_id = static_cast<int>(c);
    if (h == "prompt") c_prompt = static_cast<int>(c);
    if (h == "type") c_type = static_cast<int>(c);
    if (h == "label") c_label = static_cast<int>(c);
  }
  ASSERT_GE(c_label, 0);
  int benign = 0, harmful = 0;
  for (size_t i = 0; i < 450; ++i) {
    const auto& row = ref["rows"][i];
    const auto& p = set->prompts[i];
    EXPECT_EQ(p.id, row[c_id].get<std::string>());
    EXPECT_EQ(p.prompt, row[c_prompt].get<std::string>());
    EXPECT_EQ(p.category, row[c_type].get<std::string>());
    const std::string want = row[c_label].get<std::string>() == "safe" ? "benign" : "harmful";
    EXPECT_EQ(p.label, want) << "row " << i;
    (p.label == "benign" ? benign : harmful)++;
  }
  EXPECT_EQ(benign, 250);   // SOURCE.md
  EXPECT_EQ(harmful, 200);
}

TEST(PromptLoaders, ExplicitFormatAndLimitsOnSharedFiles) {
  SS_REQUIRE_SHARED();
  ss::PromptLoadOptions o;
  o.format = "xstest";
  auto wrong = ss::load_prompt_set(ss::test::shared_dir() + "/data/advbench/harmful_behaviors.csv", o);
  ASSERT_FALSE(wrong.ok());  // AdvBench has no prompt/label columns
  EXPECT_NE(wrong.status().message().find("needs a column"), std::string::npos) << wrong.status().to_string();
}

}  // namespace

// `safeshrink attribute` and `safeshrink quantize --safety-aware` end to end on the built-in model,
// with a small probe so the test stays short. The outputs are checked against recounts made here
// from the run log (every tensor has one sensitivity line; the summary's ranking is the log's
// ranking; confirmation rates are counts / n), resume is checked by counting log lines, and the
// quantize output's bits/weight is recounted from the written GGUF by tests/py/gguf_dump.py with
// the GGUF spec's type sizes. Not here: the numbers' correctness (tests/unit/test_attribution*.cpp).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"

using namespace ss;
using nlohmann::json;

namespace {

std::string ss_cmd(const std::string& args) { return test::cli_path() + " " + args; }
const std::string kModel = std::string(SAFESHRINK_SOURCE_DIR) + "/data/models/tiny-chat";
bool have_model() { return std::ifstream(kModel + "/model.safetensors").good(); }

std::vector<json> read_log(const std::string& path) {
  std::ifstream f(path);
  std::vector<json> out;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

int64_t count_type(const std::vector<json>& log, const std::string& t) {
  int64_t n = 0;
  for (const auto& j : log) n += j.value("entry_type", "") == t;
  return n;
}

}  // namespace

TEST(CliAttribute, WritesLogAndReportsAndResumes) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  const std::string dir = test::temp_dir("cli_attr");
  const std::string args = "attribute --model " + kModel + " --spec int2-g32 --limit 3 --neutral-tokens 32 --no-restore"
                           " --confirm-top 2 -n 8 --heads --out " + dir;
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd(args) + " 2>&1", &out), 0) << out;
  auto log = read_log(dir + "/run.jsonl");
  // Recount: tiny-chat has 6 blocks x 7 matrices + token_embd + output = 44 weight matrices, all
  // changed by int2-g32; one layer row per block.
  EXPECT_EQ(count_type(log, "tensor_sensitivity"), 44);
  EXPECT_EQ(count_type(log, "layer_sensitivity"), 6);
  EXPECT_EQ(count_type(log, "confirm"), 3);
  EXPECT_EQ(count_type(log, "flip_set"), 1);
  EXPECT_EQ(count_type(log, "baseline"), 2);
  // Heads: either circuits' rows (6 layers x 4 heads) or a skipped section with its reason.
  const int64_t heads = count_type(log, "head_ablation"), skipped = count_type(log, "skipped");
  EXPECT_TRUE(heads == 24 || skipped >= 1) << heads << " " << skipped;

  std::ifstream sf(dir + "/summary.json");
  ASSERT_TRUE(sf.good());
  const json summary = json::parse(sf);
  EXPECT_EQ(summary["n_tensors"], 44);
  // The summary's top tensor is the log's largest margin drop.
  double best = -1e300;
  std::string best_name;
  for (const auto& j : log)
    if (j["entry_type"] == "tensor_sensitivity" && j["margin_drop"].get<double>() > best) {
      best = j["margin_drop"];
      best_name = j["tensor"];
    }
  EXPECT_EQ(summary["tensors_by_safety"][0]["tensor"], best_name);
  for (const auto& c : summary["confirm"]) {
    EXPECT_EQ(c["n"], 3);
    EXPECT_NEAR(c["refusal_rate_generated"].get<double>(), c["refused"].get<double>() / 3.0, 1e-12);
  }
  const auto& fs = summary["flip_set"];
  EXPECT_LE(fs["divergences_after"].get<double>(), 0.2 * fs["divergences_before"].get<double>() + 1e-9);
  std::ifstream hf(dir + "/report.html");
  std::stringstream html;
  html << hf.rdbuf();
  EXPECT_NE(html.str().find("<svg"), std::string::npos);
  EXPECT_NE(html.str().find(best_name), std::string::npos);
  EXPECT_EQ(html.str().find("<script"), std::string::npos);
  std::ifstream mf(dir + "/report.md");
  EXPECT_TRUE(mf.good());

  // Resume: nothing recomputed (same section line counts, one more start_run).
  ASSERT_EQ(test::run_command(ss_cmd(args) + " 2>&1", &out), 0) << out;
  auto log2 = read_log(dir + "/run.jsonl");
  EXPECT_EQ(count_type(log2, "tensor_sensitivity"), 44);
  EXPECT_EQ(count_type(log2, "confirm"), 3);
  EXPECT_EQ(count_type(log2, "flip_set"), 1);
  EXPECT_EQ(count_type(log2, "start_run"), 2);
  EXPECT_NE(out.find("reused from the log"), std::string::npos) << out;
  // Another probe into the same folder is refused.
  EXPECT_EQ(test::run_command(ss_cmd("attribute --model " + kModel + " --spec int2-g32 --limit 6 --out " + dir) + " 2>&1", &out), 2)
      << out;
}

TEST(CliAttribute, QuantizeSafetyAwareBitsFromTheWrittenGguf) {
  if (!have_model()) GTEST_SKIP() << "data/models/tiny-chat is absent";
  SS_REQUIRE_PYTHON("json", "struct");
  const std::string dir = test::temp_dir("cli_attr_quant");
  const std::string path = dir + "/q2k-safety.gguf";
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("quantize --model " + kModel + " --method q2_k --safety-aware --budget-bits 5.6"
                                     " --probe-limit 4 --out " + path) + " 2>&1",
                              &out),
            0)
      << out;
  const auto at = out.find("method q2_k-safety: ");
  ASSERT_NE(at, std::string::npos) << out;
  const double plan_bits = std::stod(out.substr(at + std::string("method q2_k-safety: ").size()));
  EXPECT_LE(plan_bits, 5.6 + 1e-9);  // q2_k is 5.08 on tiny-chat: its 128/384-wide rows fall back from K-quants
  EXPECT_NE(out.find("raised q2_k -> "), std::string::npos) << out;
  std::string js;
  ASSERT_EQ(test::run_python("py/gguf_dump.py", path, &js), 0) << js;
  const json dump = json::parse(js.substr(js.find('{')));
  // ggml type sizes from the GGUF spec: id -> (elements per block, bytes per block).
  const std::map<int, std::pair<int, int>> sizes = {{0, {1, 4}},     {1, {1, 2}},     {2, {32, 18}},   {3, {32, 20}},
                                                    {6, {32, 22}},   {7, {32, 24}},   {8, {32, 34}},   {10, {256, 84}},
                                                    {11, {256, 110}}, {12, {256, 144}}, {13, {256, 176}}, {14, {256, 210}}};
  double bits = 0, n = 0;
  for (const auto& t : dump["tensors"]) {
    const std::string name = t["name"];
    if (t["ne"].size() != 2 || name.find("norm") != std::string::npos) continue;
    double ne = 1;
    for (const auto& d : t["ne"]) ne *= d.get<double>();
    ASSERT_TRUE(sizes.count(t["ggml_type"].get<int>())) << name;
    const auto [block, size] = sizes.at(t["ggml_type"].get<int>());
    bits += ne / block * size * 8.0;
    n += ne;
  }
  // The CLI prints 4 decimals.
  EXPECT_NEAR(bits / n, plan_bits, 6e-5);
}

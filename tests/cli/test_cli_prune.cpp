// `safeshrink prune` end to end on the stories260K fixture: every method writes a file that reads
// back, carries the plan JSON under safeshrink.plan, has the sparsity the definition gives
// (counted from the written file) and loads in LlamaModel; bad input gives exit code 2.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safeshrink/formats.h"
#include "safeshrink/kernels.h"
#include "safeshrink/model.h"
#include "safeshrink/prune.h"
#include "test_support.h"

namespace {

std::string model() { return ss::test::fixtures_dir() + "/stories260K/stories260K-f32.gguf"; }

int prune(const std::string& args, std::string* out) {
  return ss::test::run_command(ss::test::cli_path() + " prune --model " + model() + " " + args + " 2>&1", out);
}

// Written file: plan method, zero fraction over block linears, and that LlamaModel loads it.
double check_output(const std::string& path, const std::string& method) {
  auto s = ss::open_model(path);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (!s.ok()) return -1;
  auto plan_text = s->meta.get_string("safeshrink.plan");
  EXPECT_TRUE(plan_text.has_value()) << path;
  if (plan_text) {
    auto plan = nlohmann::json::parse(*plan_text, nullptr, false);
    EXPECT_FALSE(plan.is_discarded());
    EXPECT_EQ(plan.value("method", std::string()), method);
  }
  double zeros = 0, total = 0;
  for (const auto& t : s->tensors) {
    if (!ss::prune_is_block_linear(t.name)) continue;
    auto v = ss::kernels::dequantize(t);
    EXPECT_TRUE(v.ok());
    for (float x : *v) zeros += x == 0.0f;
    total += static_cast<double>(v->size());
  }
  auto m = ss::LlamaModel::load(std::make_shared<const ss::TensorStore>(std::move(*s)));
  EXPECT_TRUE(m.ok()) << path << ": " << m.status().to_string();
  return total > 0 ? zeros / total : -1;
}

TEST(CliPrune, UnstructuredMethodsWriteThePlannedSparsity) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::temp_dir("cli_prune");
  {
    std::ofstream f(dir + "/calib.txt");
    for (int i = 0; i < 40; ++i) f << "Once upon a time there was a little girl named Lily. She liked to play in the park with her dog.\n";
  }
  struct Case { std::string args, method, ext; double sparsity; };
  const std::vector<Case> cases = {
      {"--method magnitude --sparsity 0.5", "magnitude", ".gguf", 0.5},
      {"--method global-magnitude-30", "global-magnitude", ".safetensors", 0.3},
      {"--method 2:4", "nm", ".gguf", 0.5},
      {"--method wanda-50 --calib " + dir + "/calib.txt --samples 4 --seq-len 32", "wanda", ".gguf", 0.5},
      {"--method sparsegpt-50 --calib " + dir + "/calib.txt --samples 4 --seq-len 32", "sparsegpt", ".gguf", 0.5},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string out_path = dir + "/out" + std::to_string(i) + cases[i].ext;
    std::string out;
    ASSERT_EQ(prune(cases[i].args + " --out " + out_path, &out), 0) << out;
    EXPECT_NE(out.find("sparsity"), std::string::npos) << out;
    const double s = check_output(out_path, cases[i].method);
    // magnitude rounds per tensor; the others are exact per row, block or group (64-wide rows)
    EXPECT_NEAR(s, cases[i].sparsity, 2e-3) << cases[i].args;
  }
}

TEST(CliPrune, StructuredMethodsShrinkAndLoad) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::temp_dir("cli_prune_structured");
  for (const char* spec : {"heads-25", "channels-25", "layers-1"}) {
    const std::string out_path = dir + "/" + spec + ".gguf";
    std::string out;
    ASSERT_EQ(prune(std::string("--method ") + spec + " --out " + out_path, &out), 0) << out;
    const auto in_bytes = std::filesystem::file_size(model());
    EXPECT_LT(std::filesystem::file_size(out_path), in_bytes) << spec;
    check_output(out_path, std::string(spec).substr(0, std::string(spec).find('-')));
  }
  // a folder output (HF layout) reads back too
  std::string out;
  ASSERT_EQ(prune("--method layers --count 2 --out " + dir + "/folder", &out), 0) << out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/folder/config.json"));
  check_output(dir + "/folder", "layers");
}

TEST(CliPrune, BadInputExitsWithTwo) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::temp_dir("cli_prune_bad");
  std::string out;
  EXPECT_EQ(prune("--method int4 --out " + dir + "/x.gguf", &out), 2) << out;       // a quantizer
  EXPECT_EQ(prune("--method wanda --out " + dir + "/x.gguf", &out), 2) << out;      // no --calib
  EXPECT_EQ(prune("--method layers --count 9 --out " + dir + "/x.gguf", &out), 2) << out;
  EXPECT_EQ(prune("--method nm --n 2 --m 3 --out " + dir + "/x.gguf", &out), 2) << out;  // 64 % 3
}

}  // namespace

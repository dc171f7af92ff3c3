// `safeshrink train` end to end on the scaled-down built-in recipe (data/recipes/tiny-chat-mini.json):
// a tokenizer trained from the corpus, a base stage on benign data, then a safety stage; the held-out
// refusal rate (greedy answers, refusal-phrase check) must rise after the safety stage, and each saved
// stage must load and generate with the inference engine. Then `safeshrink distill` of the result
// into a smaller student runs, lowers its loss and writes a loadable model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_support.h"

using nlohmann::json;

namespace {
std::string ss_cmd(const std::string& args) { return ss::test::cli_path() + " " + args; }
const std::string kRoot = SAFESHRINK_SOURCE_DIR;
}  // namespace

TEST(CliTrain, MiniRecipeRefusalsRiseAfterTheSafetyStageAndDistillRuns) {
  const std::string dir = ss::test::temp_dir("cli_train");
  std::string out;
  const std::string cmd = ss_cmd("train -q --config " + kRoot + "/data/recipes/tiny-chat-mini.json --root " + kRoot +
                                 " --out-root " + dir + "/models --checkpoint-dir " + dir + "/ckpt --summary " + dir +
                                 "/summary.json --eval-limit 60 --no-resume");
  ASSERT_EQ(ss::test::run_command(cmd, &out), 0) << out;
  std::ifstream f(dir + "/summary.json");
  const json s = json::parse(f);
  ASSERT_EQ(s["stages"].size(), 2u) << s.dump();
  const json& base = s["stages"][0];
  const json& safety = s["stages"][1];
  EXPECT_LT(base["last_loss"].get<double>(), base["first_loss"].get<double>());
  const double base_refusal = base["refusal_check"]["harmful_refusal_rate"].get<double>();
  const double safe_refusal = safety["refusal_check"]["harmful_refusal_rate"].get<double>();
  EXPECT_EQ(base["refusal_check"]["harmful"].get<int>(), 60);
  // The base stage never saw a refusal; the safety stage is mostly refusals: a wide margin.
  EXPECT_GT(safe_refusal, base_refusal + 0.3) << s.dump(2);

  for (const char* stage : {"base", "safety"}) {
    const std::string model = dir + "/models/" + stage;
    ASSERT_TRUE(std::filesystem::exists(model + "/model.safetensors")) << model;
    ASSERT_TRUE(std::filesystem::exists(model + "/tokenizer.json")) << model;
    ASSERT_EQ(ss::test::run_command(ss_cmd("generate --model " + model + " --chat --max-new-tokens 8 --prompt \"Hello\""), &out), 0)
        << out;
    ASSERT_EQ(ss::test::run_command(ss_cmd("generate --model " + model + "/model.gguf --chat --max-new-tokens 8 --prompt \"Hello\""), &out), 0)
        << out;
  }

  // Distil the safety model into a 1-layer student on a slice of the safety data.
  std::ofstream(dir + "/student.json") << R"({"hidden_size": 32, "intermediate_size": 96, "n_layers": 1, "n_heads": 2})";
  ASSERT_EQ(ss::test::run_command(ss_cmd("distill -q --teacher " + dir + "/models/safety --student-config " + dir +
                                         "/student.json --data " + kRoot + "/data/corpus/safety_train.jsonl" +
                                         " --max-records 400 --steps 40 --batch-size 8 --seq-len 64 --lr 3e-3 --out " +
                                         dir + "/student"),
                                  &out),
            0)
      << out;
  const json d = json::parse(out.substr(out.rfind('{')));
  EXPECT_LT(d["last_loss"].get<double>(), d["first_loss"].get<double>()) << out;
  ASSERT_EQ(ss::test::run_command(ss_cmd("generate --model " + dir + "/student --chat --max-new-tokens 4 --prompt Hi"), &out), 0)
      << out;
}

// `safeshrink vision train|eval` end to end on a slice of Fashion-MNIST (skipped when the Debian
// package dataset-fashion-mnist is absent): exit codes, the metrics JSON written next to the model,
// and that what the CLI prints agrees with a recount through the library (accuracy on the same
// test images, zero counts of a pruned variant).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safeshrink/vision.h"
#include "test_support.h"

using namespace ss;
using nlohmann::json;

namespace {
std::string ss_cmd(const std::string& args) { return test::cli_path() + " -t 2 " + args; }
bool have_fashion_mnist() {
  return std::filesystem::exists(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz") ||
         std::filesystem::exists(fashion_mnist_dir() + "/train-images-idx3-ubyte");
}
}  // namespace

TEST(CliVision, UsageAndInputErrorsExitTwo) {
  std::string out;
  const std::string dir = test::temp_dir("cli-vision-usage");
  EXPECT_EQ(test::run_command(ss_cmd("vision train --arch rnn --out " + dir + "/m.safetensors 2>&1"), &out), 2) << out;
  EXPECT_NE(out.find("arch"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(ss_cmd("vision train --conv 16,x --out " + dir + "/m.safetensors 2>&1"), &out), 2) << out;
  EXPECT_NE(out.find("--conv"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(ss_cmd("vision train --data " + dir + "/none --out " + dir + "/m.safetensors 2>&1"), &out), 2)
      << out;
  EXPECT_NE(out.find("dataset-fashion-mnist"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(ss_cmd("vision eval --model " + dir + "/missing.safetensors 2>&1"), &out), 2) << out;
  EXPECT_EQ(test::run_command(ss_cmd("vision 2>&1"), &out), 2) << out;
}

TEST(CliVision, TrainThenEvalAgreeWithLibraryRecount) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST is absent (install dataset-fashion-mnist, scripts/setup)";
  const std::string dir = test::temp_dir("cli-vision");
  const std::string model = dir + "/mlp.safetensors";
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("vision train --arch mlp --hidden 32 --epochs 1 --limit 1000 --test-limit 500 "
                                     "--lr 3e-3 --out " + model + " -q"),
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("test accuracy"), std::string::npos) << out;
  std::ifstream mf(dir + "/mlp.train.json");
  ASSERT_TRUE(mf.good());
  const json metrics = json::parse(mf);
  EXPECT_EQ(metrics["steps"].get<int64_t>(), (1000 + 63) / 64);
  EXPECT_EQ(metrics["test"]["images"].get<int64_t>(), 500);
  EXPECT_EQ(metrics["config"]["hidden"], json::array({32}));

  // Recount through the library on the same 500 test images.
  auto m = load_vision_model(model);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto test_set = load_fashion_mnist("test", 500);
  ASSERT_TRUE(test_set.ok());
  auto pred = m->predict(test_set->pixels.data(), test_set->n);
  ASSERT_TRUE(pred.ok());
  int64_t correct = 0;
  for (int64_t i = 0; i < test_set->n; ++i) correct += (*pred)[i] == test_set->labels[i];
  EXPECT_EQ(metrics["test"]["correct"].get<int64_t>(), correct);
  EXPECT_GE(static_cast<double>(correct) / 500, 0.5);  // chance is 0.1

  ASSERT_EQ(test::run_command(ss_cmd("vision eval --model " + model + " --limit 500 --json 2>/dev/null"), &out), 0) << out;
  EXPECT_EQ(json::parse(out)["correct"].get<int64_t>(), correct);

  // magnitude-50: the sparsity printed equals the zeros recounted here (round(n/2) per weight).
  ASSERT_EQ(test::run_command(ss_cmd("vision eval --model " + model + " --limit 500 --variant magnitude-50 --json 2>/dev/null"),
                              &out),
            0)
      << out;
  const json mag = json::parse(out);
  double zeros = 0, weights = 0;
  for (const Param& p : m->params()) {
    if (p.shape.size() < 2) continue;
    zeros += static_cast<double>(std::nearbyint(0.5 * static_cast<double>(p.numel())));
    weights += static_cast<double>(p.numel());
  }
  EXPECT_NEAR(mag["sparsity"].get<double>(), zeros / weights, 1e-12);
  EXPECT_EQ(mag["bits_per_weight"].get<double>(), 32.0);

  // wanda needs calibration images: the CLI loads them from the training split.
  ASSERT_EQ(test::run_command(ss_cmd("vision eval --model " + model +
                                     " --limit 500 --variant wanda-50 --calib-images 200 --json 2>/dev/null"),
                              &out),
            0)
      << out;
  EXPECT_GE(json::parse(out)["accuracy"].get<double>(), 0.3);
}

// `safeshrink backdoor train|survival|fine-prune|report` end to end on a few thousand real
// Fashion-MNIST images: a backdoored MLP is learnt (ASR far above the ~0.1 of chance), survival on
// two variants and fine-pruning of a tiny CNN write run logs whose numbers equal an INDEPENDENT
// recount (tests/py/backdoor_recount.py: Python json + gzip + struct on run.jsonl and the IDX
// labels); usage errors exit 2 naming the bad field; --gate exits 1 when the backdoor survives.
// Skips when the dataset package is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "safeshrink/vision.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;

int cli(const std::string& args, std::string* out) {
  return ss::test::run_command(ss::test::cli_path() + " " + args, out);
}

bool have_dataset() { return ss::load_fashion_mnist("test", 10).ok(); }

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f, nullptr, false);
}

void expect_recount_matches(const std::string& dir) {
  std::string out;
  ASSERT_EQ(ss::test::run_python("py/backdoor_recount.py", dir, &out), 0) << out;
  const json rc = json::parse(out.substr(out.rfind('{', out.find("\"n_test\""))), nullptr, false);
  ASSERT_FALSE(rc.is_discarded()) << out;
  const json s = read_json(dir + "/summary.json");
  ASSERT_FALSE(s.is_discarded());
  auto same = [](const json& a, const json& b, const std::string& what) {
    for (const char* k : {"clean_correct", "clean_n", "asr_hits", "asr_n"})
      EXPECT_EQ(a[k].get<int64_t>(), b[k].get<int64_t>()) << what << " " << k;
    for (const char* k : {"clean_accuracy", "asr"}) EXPECT_EQ(a[k].get<double>(), b[k].get<double>()) << what << " " << k;
    for (const char* k : {"clean_ci", "asr_ci"})
      for (int i = 0; i < 2; ++i) EXPECT_NEAR(a[k][i].get<double>(), b[k][i].get<double>(), 1e-12) << what << " " << k;
  };
  EXPECT_EQ(s["variants"].size(), rc["variants"].size());
  for (const auto& v : s["variants"]) {
    const std::string name = v["variant"].get<std::string>();
    ASSERT_TRUE(rc["variants"].contains(name)) << name;
    same(v, rc["variants"][name], name);
  }
  EXPECT_EQ(s["fine_prune"].size(), rc["fine_prune"].size());
  for (const auto& e : s["fine_prune"]) {
    char key[64];
    std::snprintf(key, sizeof key, "%.6f/%s", e["fraction"].get<double>(), e["stage"].get<std::string>().c_str());
    ASSERT_TRUE(rc["fine_prune"].contains(key)) << key;
    same(e, rc["fine_prune"][key], key);
  }
}

TEST(CliBackdoor, UsageErrorsExitTwoAndNameTheField) {
  std::string out;
  EXPECT_EQ(cli("backdoor train --trigger patch:size=0 --out /nonexistent/x.safetensors", &out), 2) << out;
  EXPECT_NE(out.find("field size"), std::string::npos) << out;
  EXPECT_EQ(cli("backdoor train --trigger blend:alpha=3 --out /nonexistent/x.safetensors", &out), 2) << out;
  EXPECT_NE(out.find("field alpha"), std::string::npos) << out;
  EXPECT_EQ(cli("backdoor train --poison-rate 0.1 --poison-mode swap --out /nonexistent/x.safetensors", &out), 2) << out;
  EXPECT_NE(out.find("field mode"), std::string::npos) << out;
  EXPECT_EQ(cli("backdoor survival --model /nonexistent/m.safetensors --out /nonexistent/o", &out), 2) << out;
  EXPECT_NE(out.find("--trigger"), std::string::npos) << out;
  EXPECT_EQ(cli("backdoor survival --model x", &out), 2) << out;  // --out missing
}

TEST(CliBackdoor, TrainSurvivalAndRecount) {
  if (!have_dataset()) GTEST_SKIP() << "Fashion-MNIST absent: install the Debian package dataset-fashion-mnist";
  SS_REQUIRE_PYTHON("json", "gzip");
  const std::string dir = ss::test::temp_dir("cli_backdoor");
  const std::string model = dir + "/m.safetensors";
  std::string out;
  ASSERT_EQ(cli("backdoor train --arch mlp --hidden 64 --train-limit 4000 --test-limit 1000 --epochs 4 --lr 2e-3 "
                "--trigger patch:size=3,pos=br,value=1 --target 2 --poison-rate 0.1 --out " + model, &out), 0)
      << out;
  const json side = read_json(model + ".backdoor.json");
  ASSERT_FALSE(side.is_discarded()) << out;
  EXPECT_EQ(side["target"].get<int>(), 2);
  EXPECT_EQ(side["n_poisoned"].get<int64_t>(), 400);
  EXPECT_GT(side["asr"].get<double>(), 0.8) << out;  // chance ~0.1
  EXPECT_GT(side["clean_accuracy"].get<double>(), 0.72) << out;

  const std::string run = dir + "/survival";
  // trigger and target come from the sidecar
  ASSERT_EQ(cli("backdoor survival --model " + model + " --variants int8,magnitude-50 --test-limit 1000 "
                "--calib-images 64 --out " + run, &out), 0) << out;
  EXPECT_NE(out.find("magnitude-50"), std::string::npos) << out;
  expect_recount_matches(run);
  const json s = read_json(run + "/summary.json");
  ASSERT_EQ(s["variants"].size(), 3u);
  EXPECT_EQ(s["survival_config"]["target"].get<int>(), 2);
  // the original's numbers equal those measured right after training
  EXPECT_EQ(s["variants"][0]["asr_hits"].get<int64_t>(), side["asr_hits"].get<int64_t>());
  EXPECT_EQ(s["variants"][0]["clean_correct"].get<int64_t>(), side["clean_correct"].get<int64_t>());
  const std::string html = [&] {
    std::ifstream f(run + "/report.html");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  EXPECT_NE(html.find("<svg"), std::string::npos);
  // resumed (nothing redone) with --gate: int8 keeps the backdoor -> exit 1
  const bool int8_survived = s["variants"][1]["survived"].get<bool>();
  EXPECT_EQ(cli("backdoor survival --model " + model + " --variants int8,magnitude-50 --test-limit 1000 --gate --out " + run,
                &out),
            int8_survived || s["variants"][2]["survived"].get<bool>() ? 1 : 0)
      << out;
  EXPECT_NE(out.find("skipped (resume)"), std::string::npos) << out;
  EXPECT_EQ(cli("backdoor report --dir " + run, &out), 0) << out;
}

TEST(CliBackdoor, FinePruneTinyCnnAndRecount) {
  if (!have_dataset()) GTEST_SKIP() << "Fashion-MNIST absent: install the Debian package dataset-fashion-mnist";
  SS_REQUIRE_PYTHON("json", "gzip");
  const std::string dir = ss::test::temp_dir("cli_backdoor_fp");
  const std::string model = dir + "/cnn.safetensors";
  std::string out;
  ASSERT_EQ(cli("backdoor train --arch cnn --conv 4,8 --hidden 32 --train-limit 2000 --test-limit 300 --epochs 2 "
                "--lr 3e-3 --poison-rate 0.1 --out " + model, &out), 0)
      << out;
  const std::string run = dir + "/fp";
  ASSERT_EQ(cli("backdoor fine-prune --model " + model + " --fractions 0,0.5 --activation-images 200 "
                "--finetune-images 300 --test-limit 300 --out " + run, &out), 0)
      << out;
  expect_recount_matches(run);
  const json s = read_json(run + "/summary.json");
  ASSERT_EQ(s["fine_prune"].size(), 4u);  // 2 fractions x (pruned, fine_tuned)
  ASSERT_TRUE(s["ranking"].is_object());
  EXPECT_EQ(s["ranking"]["channels"].get<int64_t>(), 8);
  // 50% of 8 channels = the 4 least active, as the ranking orders them
  std::vector<int64_t> least(s["ranking"]["order"].begin(), s["ranking"]["order"].begin() + 4);
  std::sort(least.begin(), least.end());
  for (const auto& e : s["fine_prune"]) {
    if (e["fraction"].get<double>() == 0.5) {
      EXPECT_EQ(e["pruned_channels"].get<std::vector<int64_t>>(), least);
    } else {
      EXPECT_EQ(e["n_pruned"].get<int64_t>(), 0);
    }
  }
  // the mean activations are in ascending order along `order`
  const auto act = s["ranking"]["mean_activation"].get<std::vector<double>>();
  const auto order = s["ranking"]["order"].get<std::vector<int64_t>>();
  for (size_t i = 1; i < order.size(); ++i) EXPECT_LE(act[order[i - 1]], act[order[i]]);
  // an MLP has no conv layer: a clear error, exit 2
  const std::string mlp = dir + "/mlp.safetensors";
  ASSERT_EQ(cli("backdoor train --arch mlp --hidden 16 --train-limit 300 --test-limit 100 --epochs 1 --out " + mlp, &out), 0)
      << out;
  EXPECT_EQ(cli("backdoor fine-prune --model " + mlp + " --test-limit 100 --out " + dir + "/fp2", &out), 2) << out;
  EXPECT_NE(out.find("cnn"), std::string::npos) << out;
}

}  // namespace

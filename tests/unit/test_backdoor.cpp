// Backdoor triggers, poisoning, counts, run log, and the reduced survival study (issue 8).
// Triggers are checked pixel by pixel against positions and blend values computed by hand;
// counts against hand-counted predictions; the survival run on real Fashion-MNIST (a few thousand
// images, an MLP, two variants) against an INDEPENDENT recount by tests/py/backdoor_recount.py,
// which reads run.jsonl and the IDX labels with Python's gzip + struct. Tests needing the dataset
// skip when the Debian package dataset-fashion-mnist is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "safeshrink/backdoor.h"
#include "safeshrink/run_log.h"
#include "test_support.h"

namespace {

using json = nlohmann::json;

constexpr int64_t H = 28, W = 28;

std::vector<float> blank(float v = 0.0f) { return std::vector<float>(static_cast<size_t>(H * W), v); }

TEST(BackdoorTrigger, ParsesSpecsAndNamesTheBadField) {
  auto t = ss::parse_trigger("patch:size=4,pos=tl,value=0.5,pattern=checker");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->kind, "patch");
  EXPECT_EQ(t->size, 4);
  EXPECT_EQ(t->pos, "tl");
  EXPECT_DOUBLE_EQ(t->value, 0.5);
  EXPECT_EQ(t->pattern, "checker");
  auto b = ss::parse_trigger("blend:pattern=noise,alpha=0.1,seed=7");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kind, "blend");
  EXPECT_DOUBLE_EQ(b->alpha, 0.1);
  EXPECT_EQ(b->seed, 7u);
  // canonical string reads back to the same spec
  for (const char* spec : {"patch:size=3,pos=br,value=1", "patch:pos=3:5,size=2", "blend:pattern=stripes,alpha=0.25,period=2",
                           "blend:pattern=hello-kitty,alpha=0.2"}) {
    auto p = ss::parse_trigger(spec);
    ASSERT_TRUE(p.ok()) << spec;
    auto q = ss::parse_trigger(ss::trigger_to_string(*p));
    ASSERT_TRUE(q.ok()) << ss::trigger_to_string(*p);
    EXPECT_EQ(ss::trigger_to_string(*q), ss::trigger_to_string(*p));
    EXPECT_EQ(q->to_json(), p->to_json());
  }
  struct Bad { const char* spec; const char* field; };
  for (const Bad& bad : {Bad{"square:size=3", "field kind"}, Bad{"patch:size=0", "field size"},
                         Bad{"patch:size=x", "field size"}, Bad{"patch:pos=middle", "field pos"},
                         Bad{"patch:value=1.5", "field value"}, Bad{"patch:colour=1", "field colour"},
                         Bad{"blend:alpha=2", "field alpha"}, Bad{"blend:pattern=dots", "field pattern"},
                         Bad{"patch:x=3", "field y"}, Bad{"blend:seed=-1", "field seed"}}) {
    auto r = ss::parse_trigger(bad.spec);
    ASSERT_FALSE(r.ok()) << bad.spec;
    EXPECT_NE(r.status().to_string().find(bad.field), std::string::npos) << bad.spec << ": " << r.status().to_string();
  }
  auto big = ss::parse_trigger("patch:size=30");
  ASSERT_TRUE(big.ok());
  EXPECT_FALSE(big->validate(1, H, W).ok());  // does not fit 28x28
}

TEST(BackdoorTrigger, PatchSetsExactlyTheStatedPixels) {
  // br, size 3, margin 1 on 28x28: rows and columns 28-1-3 = 24 .. 26.
  auto t = ss::parse_trigger("patch:size=3,pos=br,value=1");
  ASSERT_TRUE(t.ok());
  std::vector<float> img = blank(0.25f);
  ss::apply_trigger(*t, img.data(), 1, H, W);
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const bool in = y >= 24 && y <= 26 && x >= 24 && x <= 26;
      EXPECT_EQ(img[y * W + x], in ? 1.0f : 0.25f) << "y=" << y << " x=" << x;
    }
  // explicit position X:Y = column 2, row 5, size 2, checker with value 0.9: (5,2)=0.9 (5,3)=0.1 (6,2)=0.1 (6,3)=0.9
  auto c = ss::parse_trigger("patch:size=2,pos=2:5,value=0.9,pattern=checker");
  ASSERT_TRUE(c.ok());
  img = blank(0.5f);
  ss::apply_trigger(*c, img.data(), 1, H, W);
  EXPECT_FLOAT_EQ(img[5 * W + 2], 0.9f);
  EXPECT_FLOAT_EQ(img[5 * W + 3], 0.1f);
  EXPECT_FLOAT_EQ(img[6 * W + 2], 0.1f);
  EXPECT_FLOAT_EQ(img[6 * W + 3], 0.9f);
  int changed = 0;
  for (float v : img) changed += v != 0.5f;
  EXPECT_EQ(changed, 4);
  // tl with margin 0 on a 2-channel image: both channels at (0,0)
  auto tl = ss::parse_trigger("patch:size=1,pos=tl,margin=0,value=0");
  ASSERT_TRUE(tl.ok());
  std::vector<float> two(static_cast<size_t>(2 * H * W), 1.0f);
  ss::apply_trigger(*tl, two.data(), 2, H, W);
  EXPECT_EQ(two[0], 0.0f);
  EXPECT_EQ(two[H * W], 0.0f);
  EXPECT_EQ(two[1], 1.0f);
}

TEST(BackdoorTrigger, BlendFollowsTheFormulaByHand) {
  // stripes, period 4: rows 0-3 p=1, rows 4-7 p=0. x' = (1 - a) x + a p with x = 0.5, a = 0.25:
  //   p = 1 -> 0.375 + 0.25 = 0.625;  p = 0 -> 0.375.
  auto t = ss::parse_trigger("blend:pattern=stripes,alpha=0.25,period=4");
  ASSERT_TRUE(t.ok());
  std::vector<float> img = blank(0.5f);
  ss::apply_trigger(*t, img.data(), 1, H, W);
  EXPECT_FLOAT_EQ(img[0 * W + 7], 0.625f);
  EXPECT_FLOAT_EQ(img[3 * W + 0], 0.625f);
  EXPECT_FLOAT_EQ(img[4 * W + 5], 0.375f);
  EXPECT_FLOAT_EQ(img[7 * W + 27], 0.375f);
  EXPECT_FLOAT_EQ(img[8 * W + 1], 0.625f);
  // alpha 0 is the identity, alpha 1 the pattern itself
  auto id = ss::parse_trigger("blend:pattern=stripes,alpha=0");
  img = blank(0.3f);
  ss::apply_trigger(*id, img.data(), 1, H, W);
  for (float v : img) EXPECT_FLOAT_EQ(v, 0.3f);
  // noise: values in [0, 1), mean 0.5 +- 4 sigma (sigma = sqrt(1/12/784) ~ 0.0103), another seed differs
  auto n1 = ss::parse_trigger("blend:pattern=noise,alpha=1,seed=1");
  auto n2 = ss::parse_trigger("blend:pattern=noise,alpha=1,seed=2");
  const std::vector<float> p1 = ss::trigger_blend_pattern(*n1, 1, H, W), p2 = ss::trigger_blend_pattern(*n2, 1, H, W);
  double mean = 0;
  for (float v : p1) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
    mean += v;
  }
  mean /= static_cast<double>(p1.size());
  EXPECT_NEAR(mean, 0.5, 4 * std::sqrt(1.0 / 12 / 784));
  EXPECT_NE(p1, p2);
  img = blank(0.0f);
  ss::apply_trigger(*n1, img.data(), 1, H, W);
  EXPECT_EQ(img, p1);  // alpha 1: x' = p
  // kitty: a pattern with both 0 and 1 and 0.8 values, symmetric left-right
  auto k = ss::parse_trigger("blend:pattern=kitty,alpha=0.2");
  const std::vector<float> pk = ss::trigger_blend_pattern(*k, 1, H, W);
  std::set<float> values(pk.begin(), pk.end());
  EXPECT_TRUE(values.count(0.0f) && values.count(1.0f) && values.count(0.8f));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) EXPECT_EQ(pk[y * W + x], pk[y * W + (W - 1 - x)]) << y << "," << x;
}

ss::ImageSet synthetic_set(int64_t n) {
  ss::ImageSet s;
  s.n = n;
  s.height = H;
  s.width = W;
  s.source = "synthetic";
  s.pixels.assign(static_cast<size_t>(n * H * W), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    s.labels.push_back(static_cast<int32_t>(i % 10));
    s.pixels[static_cast<size_t>(i * H * W)] = static_cast<float>(i) / static_cast<float>(n);  // identifies the image
  }
  return s;
}

TEST(BackdoorPoison, ChoosesNonTargetImagesSeededAndRelabels) {
  const ss::ImageSet clean = synthetic_set(1000);
  auto trig = ss::parse_trigger("patch:size=3,pos=br,value=1");
  ss::PoisonConfig pc;
  pc.rate = 0.1;
  pc.target = 3;
  pc.seed = 5;
  auto r = ss::poison_training_set(clean, *trig, pc);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->chosen.size(), 100u);  // round(0.1 * 1000)
  EXPECT_EQ(r->set.n, 1000);
  std::set<int64_t> chosen(r->chosen.begin(), r->chosen.end());
  EXPECT_EQ(chosen.size(), 100u);
  for (int64_t i = 0; i < clean.n; ++i) {
    const float corner = r->set.pixels[static_cast<size_t>(i * H * W + 25 * W + 25)];
    if (chosen.count(i)) {
      EXPECT_NE(clean.labels[i], 3) << "a target-class image was poisoned";
      EXPECT_EQ(r->set.labels[i], 3);
      EXPECT_EQ(corner, 1.0f);
    } else {
      EXPECT_EQ(r->set.labels[i], clean.labels[i]);
      EXPECT_EQ(corner, 0.0f);
    }
  }
  auto again = ss::poison_training_set(clean, *trig, pc);
  EXPECT_EQ(again->chosen, r->chosen);
  pc.seed = 6;
  EXPECT_NE(ss::poison_training_set(clean, *trig, pc)->chosen, r->chosen);
  // add mode: the clean set unchanged, 100 triggered relabelled copies appended
  pc.mode = "add";
  auto add = ss::poison_training_set(clean, *trig, pc);
  ASSERT_TRUE(add.ok());
  ASSERT_EQ(add->set.n, 1100);
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(add->set.labels[i], clean.labels[i]);
  for (int64_t k = 0; k < 100; ++k) {
    const int64_t src = add->chosen[k], dst = 1000 + k;
    EXPECT_EQ(add->set.labels[dst], 3);
    EXPECT_EQ(add->set.pixels[dst * H * W], clean.pixels[src * H * W]);  // the copy of image src
    EXPECT_EQ(add->set.pixels[dst * H * W + 25 * W + 25], 1.0f);
  }
  pc.rate = 1.5;
  auto bad = ss::poison_training_set(clean, *trig, pc);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().to_string().find("rate"), std::string::npos);
}

TEST(BackdoorCounts, HandCountedPredictions) {
  // target 0. labels:      0 1 2 0 1 2 1
  //           clean pred:  0 1 1 0 1 2 0   -> correct 5 of 7
  //       triggered pred:  0 0 2 0 0 0 1   -> non-target images (5): hits at idx 1, 4, 5 -> 3 of 5
  const std::vector<int32_t> labels = {0, 1, 2, 0, 1, 2, 1}, clean = {0, 1, 1, 0, 1, 2, 0}, trig = {0, 0, 2, 0, 0, 0, 1};
  auto c = ss::backdoor_counts(clean, trig, labels, 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->clean_correct, 5);
  EXPECT_EQ(c->clean_n, 7);
  EXPECT_EQ(c->asr_hits, 3);
  EXPECT_EQ(c->asr_n, 5);
  EXPECT_DOUBLE_EQ(c->asr(), 0.6);
  // Wilson 95% of 3/5 (scipy.stats.binomtest(3, 5).proportion_ci(method="wilson")): [0.2307, 0.8824]
  EXPECT_NEAR(c->asr_ci.lo, 0.23072, 1e-4);
  EXPECT_NEAR(c->asr_ci.hi, 0.88236, 1e-4);
  EXPECT_FALSE(ss::backdoor_counts(clean, {0, 1}, labels, 0).ok());
}

TEST(BackdoorRunLog, RoundTripLastRecordWinsAndTornLineIgnored) {
  const std::string dir = ss::test::temp_dir("backdoor_log");
  ss::BackdoorVariantEntry v;
  v.variant = "int8";
  v.kind = "quantized";
  v.bits_per_weight = 8.25;
  v.counts = *ss::backdoor_counts({1, 1}, {0, 0}, {1, 0}, 0);
  v.survived = true;
  v.clean_predictions = {1, 1};
  v.triggered_predictions = {0, 0};
  {
    auto w = ss::RunLogWriter::open(dir);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->append(ss::to_json(v)).ok());
    v.survived = false;  // a later record of the same variant replaces the first
    ASSERT_TRUE(w->append(ss::to_json(v)).ok());
    ss::FinePruneEntry f;
    f.fraction = 0.5;
    f.stage = "pruned";
    f.layer = "conv.1";
    f.pruned_channels = {1, 4};
    f.counts = v.counts;
    ASSERT_TRUE(w->append(ss::to_json(f)).ok());
    ASSERT_TRUE(w->append(json{{"entry_type", "attempt"}, {"variant", "x"}}).ok());  // another evaluation's entry
  }
  {
    std::ofstream f(dir + "/run.jsonl", std::ios::app);
    f << "{\"entry_type\":\"backdoor_variant\",\"variant\":\"tor";  // torn
  }
  auto log = ss::read_backdoor_log(dir);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_TRUE(log->torn_last_line);
  ASSERT_EQ(log->variants.size(), 1u);
  EXPECT_FALSE(log->variants[0].survived);
  EXPECT_EQ(*log->variants[0].bits_per_weight, 8.25);
  EXPECT_EQ(log->variants[0].triggered_predictions, (std::vector<int32_t>{0, 0}));
  ASSERT_EQ(log->fine_prune.size(), 1u);
  EXPECT_EQ(log->fine_prune[0].pruned_channels, (std::vector<int64_t>{1, 4}));
  // a malformed complete line is CORRUPT naming the line
  {
    std::ofstream f(dir + "/run.jsonl", std::ios::app);
    f << "\nnot json\n";
  }
  auto bad = ss::read_backdoor_log(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().to_string().find("run.jsonl:5"), std::string::npos) << bad.status().to_string();
}

// ---------------------------------------------------------------- real data

bool have_dataset() { return ss::load_fashion_mnist("test", 10).ok(); }

// Compares summary.json of `dir` with the Python recount: counts and rates exactly, intervals 1e-12.
void expect_recount_matches(const std::string& dir, size_t expect_variants, size_t expect_fine) {
  std::string out;
  ASSERT_EQ(ss::test::run_python("py/backdoor_recount.py", dir, &out), 0) << out;
  const json rc = json::parse(out.substr(out.rfind('{', out.find("\"n_test\""))), nullptr, false);
  ASSERT_FALSE(rc.is_discarded()) << out;
  std::ifstream f(dir + "/summary.json");
  const json s = json::parse(f, nullptr, false);
  ASSERT_FALSE(s.is_discarded());
  ASSERT_EQ(s["variants"].size(), expect_variants);
  ASSERT_EQ(rc["variants"].size(), expect_variants);
  auto same = [](const json& a, const json& b, const std::string& what) {
    for (const char* k : {"clean_correct", "clean_n", "asr_hits", "asr_n"})
      EXPECT_EQ(a[k].get<int64_t>(), b[k].get<int64_t>()) << what << " " << k;
    for (const char* k : {"clean_accuracy", "asr"}) EXPECT_EQ(a[k].get<double>(), b[k].get<double>()) << what << " " << k;
    for (const char* k : {"clean_ci", "asr_ci"})
      for (int i = 0; i < 2; ++i) EXPECT_NEAR(a[k][i].get<double>(), b[k][i].get<double>(), 1e-12) << what << " " << k;
  };
  for (const auto& v : s["variants"]) {
    const std::string name = v["variant"].get<std::string>();
    ASSERT_TRUE(rc["variants"].contains(name)) << name;
    same(v, rc["variants"][name], name);
  }
  ASSERT_EQ(s["fine_prune"].size(), expect_fine);
  for (const auto& e : s["fine_prune"]) {
    char key[64];
    std::snprintf(key, sizeof key, "%.6f/%s", e["fraction"].get<double>(), e["stage"].get<std::string>().c_str());
    ASSERT_TRUE(rc["fine_prune"].contains(key)) << key;
    same(e, rc["fine_prune"][key], key);
  }
}

TEST(BackdoorSurvival, ReducedRunLearnsTheBackdoorAndMatchesAnIndependentRecount) {
  if (!have_dataset()) GTEST_SKIP() << "Fashion-MNIST absent: install the Debian package dataset-fashion-mnist";
  SS_REQUIRE_PYTHON("json", "gzip");
  auto train = ss::load_fashion_mnist("train", 4000);
  auto test = ss::load_fashion_mnist("test", 1000);
  ASSERT_TRUE(train.ok() && test.ok());
  ss::VisionConfig vc;
  vc.arch = "mlp";
  vc.conv_channels = {};
  vc.hidden = {64};
  auto model = ss::VisionModel::init_random(vc, 1);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto trig = ss::parse_trigger("patch:size=3,pos=br,value=1");
  ss::PoisonConfig pc;
  pc.rate = 0.1;
  pc.target = 0;
  ss::VisionTrainConfig tc;
  tc.epochs = 4;
  tc.lr = 2e-3;
  auto rep = ss::train_backdoored(*model, *train, *test, *trig, pc, tc);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  const ss::BackdoorCounts& c = rep->eval.counts;
  // Chance ASR is ~0.1 (1 of 10 classes); a learnt 3x3 corner patch is near 1.
  EXPECT_GT(c.asr(), 0.8) << c.asr_hits << "/" << c.asr_n;
  EXPECT_GT(c.clean_accuracy(), 0.72) << c.clean_correct << "/" << c.clean_n;
  EXPECT_EQ(rep->n_poisoned, 400);
  EXPECT_EQ(c.clean_n, 1000);

  const std::string dir = ss::test::temp_dir("backdoor_survival");
  const std::string path = dir + "/m.safetensors";
  ASSERT_TRUE(ss::save_vision_model(*model, path).ok());
  ss::SurvivalConfig sc;
  sc.model_path = path;
  sc.trigger = "patch:size=3,pos=br,value=1";
  sc.target = 0;
  sc.variants = {"int8", "magnitude-50"};
  sc.test_limit = 1000;
  sc.calibration_images = 64;
  const std::string out = dir + "/run";
  ASSERT_TRUE(ss::run_backdoor_survival(sc, out).ok());
  auto log = ss::read_backdoor_log(out);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->variants.size(), 3u);
  // the original's record equals the evaluation right after training
  EXPECT_EQ(log->variants[0].counts.asr_hits, c.asr_hits);
  EXPECT_EQ(log->variants[0].counts.clean_correct, c.clean_correct);
  EXPECT_NEAR(log->variants[2].sparsity, 0.5, 0.01);
  EXPECT_LT(*log->variants[1].bits_per_weight, 9.0);
  expect_recount_matches(out, 3, 0);
  for (const char* f : {"/summary.json", "/report.md", "/report.html"}) EXPECT_TRUE(std::filesystem::exists(out + f)) << f;

  // resume: a second run adds no variant record; a different target is refused
  const int64_t lines = log->n_lines;
  ASSERT_TRUE(ss::run_backdoor_survival(sc, out).ok());
  auto log2 = ss::read_backdoor_log(out);
  EXPECT_EQ(log2->n_lines, lines + 2);  // start_run + end_run only
  sc.target = 1;
  auto refused = ss::run_backdoor_survival(sc, out);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.to_string().find("target"), std::string::npos) << refused.to_string();
}

}  // namespace

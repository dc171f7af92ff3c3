// Unit tests of the vision classifiers (include/safeshrink/vision.h, "models", "training" and
// "compressed variants"): config validation, torch-default init statistics, chunked inference
// against one big tape, input gradients against central finite differences, files round trip and
// refusals, training on a synthetic task (and, when dataset-fashion-mnist is installed, on 2000
// real images), shard invariance of a training step, distillation, and the compressed variants
// against independent recounts (per-row RTN written here, zero counts). Gradients and a training
// step against PyTorch live in tests/reference/test_vision_torch.cpp.
// To add a case: a TEST below; keep the binary under ~20 s in Release on two busy cores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "safeshrink/formats.h"
#include "safeshrink/prune.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/vision.h"
#include "test_support.h"

using namespace ss;

namespace {

// A learnable synthetic task: class k lights a 3x3 square in cell k of a 4x4 grid of 3x3 cells
// (plus uniform noise in [0, 0.3)), so a linear model separates it and chance is 10%.
ImageSet synthetic_set(int64_t n, int64_t side, uint64_t seed) {
  ImageSet s;
  s.n = n;
  s.channels = 1;
  s.height = side;
  s.width = side;
  s.source = "synthetic";
  s.pixels.resize(static_cast<size_t>(n * side * side));
  s.labels.resize(static_cast<size_t>(n));
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t k = static_cast<int32_t>(rng.below(10));
    s.labels[i] = k;
    float* img = s.pixels.data() + i * side * side;
    for (int64_t p = 0; p < side * side; ++p) img[p] = static_cast<float>(rng.uniform()) * 0.3f;
    const int64_t cell = side / 4, y0 = (k / 4) * cell, x0 = (k % 4) * cell;
    for (int64_t y = y0; y < y0 + std::min<int64_t>(cell, 3); ++y)
      for (int64_t x = x0; x < x0 + std::min<int64_t>(cell, 3); ++x) img[y * side + x] = 1.0f;
  }
  return s;
}

VisionConfig small_cnn(int64_t side) {
  VisionConfig c;
  c.arch = "cnn";
  c.height = side;
  c.width = side;
  c.conv_channels = {4, 8};
  c.hidden = {16};
  return c;
}

VisionConfig small_mlp(int64_t side) {
  VisionConfig c;
  c.arch = "mlp";
  c.height = side;
  c.width = side;
  c.conv_channels.clear();
  c.hidden = {32};
  return c;
}

// Accuracy recounted from the logits here (argmax, first maximum) rather than vision_accuracy.
double recount_accuracy(const VisionModel& m, const ImageSet& s) {
  auto z = m.logits(s.pixels.data(), s.n);
  EXPECT_TRUE(z.ok()) << z.status().to_string();
  if (!z.ok()) return 0;
  const int64_t nc = m.config().n_classes;
  int64_t ok = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < nc; ++c)
      if ((*z)[i * nc + c] > (*z)[i * nc + best]) best = c;
    ok += best == s.labels[i];
  }
  return static_cast<double>(ok) / static_cast<double>(s.n);
}

// Mean cross entropy in double from float logits (the finite-difference objective).
double mean_ce(const VisionModel& m, const std::vector<float>& x, const std::vector<int32_t>& y) {
  const int64_t n = static_cast<int64_t>(y.size()), nc = m.config().n_classes;
  auto z = m.logits(x.data(), n);
  if (!z.ok()) return NAN;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* r = z->data() + i * nc;
    double mx = r[0];
    for (int64_t c = 1; c < nc; ++c) mx = std::max(mx, static_cast<double>(r[c]));
    double se = 0;
    for (int64_t c = 0; c < nc; ++c) se += std::exp(r[c] - mx);
    sum += mx + std::log(se) - r[y[i]];
  }
  return sum / static_cast<double>(n);
}

}  // namespace

TEST(VisionConfig, ValidateNamesTheBadField) {
  VisionConfig c;
  EXPECT_TRUE(c.validate().ok());
  c.arch = "rnn";
  EXPECT_NE(c.validate().message().find("arch"), std::string::npos);
  c = VisionConfig{};
  c.hidden = {128, 0};
  EXPECT_NE(c.validate().message().find("hidden[1]"), std::string::npos);
  c = VisionConfig{};
  c.conv_channels = {4, 4, 4, 4, 4, 4};  // 28 -> 0 after five pools
  EXPECT_NE(c.validate().message().find("conv_channels"), std::string::npos);
  c = VisionConfig{};
  c.dropout = 1.0;
  EXPECT_NE(c.validate().message().find("dropout"), std::string::npos);
  auto back = VisionConfig::from_json(small_cnn(12).to_json());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->to_json(), small_cnn(12).to_json());
  EXPECT_FALSE(VisionConfig::from_json(nlohmann::json{{"hidden", "x"}}).ok());
}

// torch's default init: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Checked: the
// bound holds, and the sample variance of the big matrices is within 5% of bound^2/3 (the variance
// of the uniform; a 5% miss would need a wrong bound or distribution: the standard error of the
// variance estimate over >= 4000 draws is < 2%).
TEST(VisionModel, InitFollowsTorchDefaultsAndSeed) {
  VisionConfig c;  // default cnn 16, 32 / fc 128
  auto a = VisionModel::init_random(c, 7), b = VisionModel::init_random(c, 7), d = VisionModel::init_random(c, 8);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  ASSERT_EQ(a->params().size(), 8u);
  const std::vector<std::pair<std::string, int64_t>> fan = {{"conv.0.weight", 9},  {"conv.0.bias", 9},
                                                            {"conv.1.weight", 144}, {"conv.1.bias", 144},
                                                            {"fc.0.weight", 1568}, {"fc.0.bias", 1568},
                                                            {"fc.1.weight", 128},  {"fc.1.bias", 128}};
  for (size_t k = 0; k < fan.size(); ++k) {
    const Param& p = a->params()[k];
    EXPECT_EQ(p.name, fan[k].first);
    EXPECT_EQ(p.value, b->params()[k].value);
    EXPECT_NE(p.value, d->params()[k].value);
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan[k].second));
    double sq = 0;
    for (float v : p.value) {
      EXPECT_LE(std::fabs(v), bound);
      sq += static_cast<double>(v) * v;
    }
    if (p.value.size() >= 4000) {
      EXPECT_NEAR(sq / p.value.size(), bound * bound / 3, 0.05 * bound * bound / 3) << p.name;
    }
  }
  EXPECT_EQ(a->find("fc.0.weight")->shape, (std::vector<int64_t>{128, 1568}));
  EXPECT_EQ(a->find("conv.1.weight")->shape, (std::vector<int64_t>{32, 16, 3, 3}));
  EXPECT_FALSE(a->find("conv.0.bias")->decay);
}

// logits() splits the images into chunks on the pool; one tape over all images must give the
// same numbers (the ops are row-independent; tolerance: float rounding of different gemm shapes).
TEST(VisionModel, ChunkedLogitsEqualOneTape) {
  const ImageSet s = synthetic_set(300, 12, 1);
  for (const VisionConfig& c : {small_cnn(12), small_mlp(12)}) {
    auto m = VisionModel::init_random(c, 3);
    ASSERT_TRUE(m.ok());
    ThreadPool pool(2);
    auto z = m->logits(s.pixels.data(), s.n, &pool);
    ASSERT_TRUE(z.ok()) << z.status().to_string();
    ag::Tape<float> t(&pool);
    t.training = false;
    ag::Var x = t.leaf({s.n, 1, 12, 12}, s.pixels, false);
    ag::Var y = m->forward(t, x, false);
    ASSERT_TRUE(t.status().ok()) << t.status().to_string();
    ASSERT_EQ(t.shape(y), (ag::Shape{s.n, 10}));
    double worst = 0;
    for (size_t i = 0; i < z->size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs((*z)[i] - t.value(y)[i])));
    EXPECT_LT(worst, 1e-5) << c.arch;
    auto pred = m->predict(s.pixels.data(), s.n, &pool);
    ASSERT_TRUE(pred.ok());
    for (int64_t i = 0; i < s.n; ++i) {
      const float* r = z->data() + i * 10;
      EXPECT_EQ((*pred)[i], std::max_element(r, r + 10) - r);
    }
  }
}

// d mean CE / d x against central differences of the loss computed in double from logits():
// eps 1e-3 on 25 pixels of 2 images of uniform noise (no flat regions, so no max-pool ties).
// Tolerance 3e-4 + 3% relative: float32 logits (~1e-6 relative) over 2 eps give ~1e-3 relative
// noise; a ReLU or max-pool switch inside the window would break one coordinate, which the small
// eps makes rare (none on these seeds).
TEST(VisionModel, InputGradientMatchesFiniteDifferences) {
  ImageSet s = synthetic_set(2, 12, 5);
  Rng noise(6);
  for (float& v : s.pixels) v = static_cast<float>(noise.uniform());
  for (const VisionConfig& c : {small_cnn(12), small_mlp(12)}) {
    auto m = VisionModel::init_random(c, 11);
    ASSERT_TRUE(m.ok());
    std::vector<float> g;
    auto loss = m->input_gradient(s.pixels.data(), s.labels.data(), s.n, g);
    ASSERT_TRUE(loss.ok()) << loss.status().to_string();
    EXPECT_NEAR(*loss, mean_ce(*m, s.pixels, s.labels), 1e-5);
    ASSERT_EQ(g.size(), s.pixels.size());
    Rng rng(2);
    for (int k = 0; k < 25; ++k) {
      const size_t i = rng.below(s.pixels.size());
      std::vector<float> xp = s.pixels, xm = s.pixels;
      const float eps = 1e-3f;
      xp[i] += eps;
      xm[i] -= eps;
      const double fd = (mean_ce(*m, xp, s.labels) - mean_ce(*m, xm, s.labels)) / (static_cast<double>(xp[i]) - xm[i]);
      EXPECT_NEAR(g[i], fd, 3e-4 + 0.03 * std::fabs(fd)) << c.arch << " pixel " << i;
    }
  }
}

TEST(VisionModel, HooksSeeEveryLayerInput) {
  auto m = VisionModel::init_random(small_cnn(12), 1);
  ASSERT_TRUE(m.ok());
  std::vector<std::string> seen;
  std::vector<ag::Shape> shapes;
  VisionForwardHooks hooks;
  hooks.layer_input = [&](ag::Tape<float>& t, ag::Var x, const std::string& name) {
    seen.push_back(name);
    shapes.push_back(t.shape(x));
    return ag::scale(t, x, 0.0);  // zero every layer input: the logits become the last bias
  };
  const ImageSet s = synthetic_set(3, 12, 1);
  ThreadPool one(1);
  auto z = m->logits(s.pixels.data(), 3, &one, &hooks);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"conv.0.weight", "conv.1.weight", "fc.0.weight", "fc.1.weight"}));
  EXPECT_EQ(shapes[1], (ag::Shape{3, 4, 6, 6}));
  EXPECT_EQ(shapes[2], (ag::Shape{3, 8 * 3 * 3}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t c = 0; c < 10; ++c) EXPECT_EQ((*z)[i * 10 + c], m->find("fc.1.bias")->value[c]);
}

TEST(VisionModel, SaveLoadRoundTripsAndRefusesBadStores) {
  const std::string dir = test::temp_dir("vision_files");
  auto m = VisionModel::init_random(small_cnn(12), 4);
  ASSERT_TRUE(m.ok());
  for (const std::string& path : {dir + "/m.safetensors", dir + "/folder"}) {
    ASSERT_TRUE(save_vision_model(*m, path).ok()) << path;
    auto back = load_vision_model(path);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->config().to_json(), m->config().to_json());
    ASSERT_EQ(back->params().size(), m->params().size());
    for (size_t k = 0; k < m->params().size(); ++k) {
      EXPECT_EQ(back->params()[k].value, m->params()[k].value);
      EXPECT_EQ(back->params()[k].shape, m->params()[k].shape);
    }
  }
  std::ifstream cj(dir + "/folder/config.json");
  EXPECT_EQ(nlohmann::json::parse(cj)["conv_channels"], (std::vector<int64_t>{4, 8}));

  auto store = m->to_store(DType::F16);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(store->find("conv.0.weight")->dtype, DType::F16);
  EXPECT_EQ(store->find("conv.0.bias")->dtype, DType::F32);
  auto half = VisionModel::from_store(*store);
  ASSERT_TRUE(half.ok());
  EXPECT_NEAR(half->find("fc.0.weight")->value[5], m->find("fc.0.weight")->value[5], 1e-3);

  TensorStore no_meta = *store;
  no_meta.meta = Metadata{};
  EXPECT_EQ(VisionModel::from_store(no_meta).status().code(), StatusCode::NOT_FOUND);
  TensorStore wrong;
  wrong.meta = store->meta;
  for (const Tensor& t : store->tensors) {
    if (t.name == "fc.0.weight") {
      auto z = Tensor::zeros(t.name, DType::F32, {16, 10});
      ASSERT_TRUE(z.ok());
      ASSERT_TRUE(wrong.add(*z).ok());
    } else {
      ASSERT_TRUE(wrong.add(t).ok());
    }
  }
  auto bad = VisionModel::from_store(wrong);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("fc.0.weight"), std::string::npos) << bad.status().to_string();
  EXPECT_FALSE(load_vision_model(dir + "/missing.safetensors").ok());
}

TEST(VisionTrain, LearnsSyntheticTaskWithAdamWAndSgd) {
  const ImageSet train = synthetic_set(1500, 12, 10), test = synthetic_set(400, 12, 11);
  for (const std::string opt : {"adamw", "sgd"}) {
    for (const VisionConfig& c : {small_mlp(12), small_cnn(12)}) {
      auto m = VisionModel::init_random(c, 1);
      ASSERT_TRUE(m.ok());
      const double before = recount_accuracy(*m, test);
      VisionTrainConfig tc;
      tc.epochs = 2;
      tc.batch = 32;
      tc.optimizer = opt;
      tc.lr = opt == "adamw" ? 5e-3 : 5e-2;
      int64_t after_steps = 0, progress_calls = 0, last_step = 0, total = 0;
      tc.after_step = [&](VisionModel&) { ++after_steps; };
      tc.progress = [&](int64_t, int64_t step, int64_t tot, double loss, double ips) {
        ++progress_calls;
        last_step = step;
        total = tot;
        EXPECT_TRUE(std::isfinite(loss));
        EXPECT_GE(ips, 0);
      };
      auto r = train_vision(*m, train, tc);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      const int64_t steps = 2 * ((1500 + 31) / 32);
      EXPECT_EQ(r->steps, steps);
      EXPECT_EQ(r->images, 2 * 1500);
      EXPECT_EQ(after_steps, steps);
      EXPECT_EQ(progress_calls, steps);
      EXPECT_EQ(last_step, steps);
      EXPECT_EQ(total, steps);
      const double acc = recount_accuracy(*m, test);
      EXPECT_GE(acc, 0.9) << opt << " " << c.arch << " (before training " << before << ")";
      auto va = vision_accuracy(*m, test);
      ASSERT_TRUE(va.ok());
      EXPECT_DOUBLE_EQ(va->accuracy(), acc);
    }
  }
}

// The batch is split into shards (one tape per thread) whose gradients are added with their share
// of the batch: one thread and two threads must take the same steps (up to float summation order:
// 1e-4 after 20 AdamW steps, whose updates are ~lr = 1e-3 each), and a rerun is bit-identical.
TEST(VisionTrain, ShardsAndRerunsAgree) {
  const ImageSet train = synthetic_set(640, 12, 3);
  VisionTrainConfig tc;
  tc.epochs = 1;
  tc.batch = 64;
  tc.max_steps = 20;
  tc.lr = 1e-3;
  tc.weight_decay = 0.01;
  tc.clip_norm = 1.0;
  tc.seed = 9;
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 2}) {
    ThreadPool pool(threads);
    auto m = VisionModel::init_random(small_cnn(12), 2);
    ASSERT_TRUE(m.ok());
    auto r = train_vision(*m, train, tc, &pool);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->steps, 10);  // 640 / 64: one epoch ends before max_steps
    std::vector<float> all;
    for (const Param& p : m->params()) all.insert(all.end(), p.value.begin(), p.value.end());
    runs.push_back(all);
  }
  double worst = 0;
  for (size_t i = 0; i < runs[0].size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(runs[0][i] - runs[1][i])));
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(runs[1], runs[2]);
}

// Distillation with alpha = 1 learns from the teacher's logits alone: labels are scrambled, so the
// student can only agree with the teacher by following it.
TEST(VisionTrain, DistillationFollowsTheTeacher) {
  const ImageSet train = synthetic_set(1200, 12, 20), test = synthetic_set(300, 12, 21);
  auto teacher = VisionModel::init_random(small_mlp(12), 1);
  ASSERT_TRUE(teacher.ok());
  VisionTrainConfig tc;
  tc.epochs = 2;
  tc.batch = 32;
  tc.lr = 3e-3;
  ASSERT_TRUE(train_vision(*teacher, train, tc).ok());
  ImageSet scrambled = train;
  for (auto& y : scrambled.labels) y = (y + 3) % 10;
  VisionConfig sc = small_mlp(12);
  sc.hidden = {16};
  auto student = VisionModel::init_random(sc, 2);
  ASSERT_TRUE(student.ok());
  tc.teacher = &*teacher;
  tc.kd_alpha = 1.0;
  tc.kd_temperature = 2.0;
  ASSERT_TRUE(train_vision(*student, scrambled, tc).ok());
  auto pt = teacher->predict(test.pixels.data(), test.n), ps = student->predict(test.pixels.data(), test.n);
  ASSERT_TRUE(pt.ok() && ps.ok());
  int64_t agree = 0;
  for (int64_t i = 0; i < test.n; ++i) agree += (*pt)[i] == (*ps)[i];
  EXPECT_GE(static_cast<double>(agree) / test.n, 0.9);
}

TEST(VisionTrain, RefusesBadConfigs) {
  auto m = VisionModel::init_random(small_mlp(12), 1);
  ASSERT_TRUE(m.ok());
  const ImageSet s = synthetic_set(10, 12, 1), wrong = synthetic_set(10, 10, 1);
  VisionTrainConfig tc;
  tc.optimizer = "adam";
  EXPECT_NE(train_vision(*m, s, tc).status().message().find("optimizer"), std::string::npos);
  tc = VisionTrainConfig{};
  tc.lr = -1;
  EXPECT_NE(train_vision(*m, s, tc).status().message().find("lr"), std::string::npos);
  tc = VisionTrainConfig{};
  EXPECT_FALSE(train_vision(*m, wrong, tc).ok());
  ImageSet bad_label = s;
  bad_label.labels[3] = 10;
  EXPECT_NE(train_vision(*m, bad_label, tc).status().message().find("image 3"), std::string::npos);
}

// ------------------------------------------------------------------------------------ variants

namespace {

// A trained small model (synthetic task) so that variants have something to lose.
VisionModel trained_model(const VisionConfig& c, const ImageSet& train) {
  auto m = VisionModel::init_random(c, 5);
  EXPECT_TRUE(m.ok());
  VisionTrainConfig tc;
  tc.epochs = c.arch == "cnn" ? 6 : 2;  // the small CNN learns this task more slowly
  tc.batch = 32;
  tc.lr = 5e-3;
  EXPECT_TRUE(train_vision(*m, train, tc).ok());
  return *m;
}

// (rows, cols) of a weight as the spec treats it: a conv (out, in, 3, 3) is (out, in*9).
std::pair<int64_t, int64_t> matrix_of(const Param& p) { return {p.shape[0], p.numel() / p.shape[0]}; }

}  // namespace

// int8 per channel with F32 storage, checked against an independent description of per-row RTN:
// in every row of the (out, in*3*3) matrix the values lie on one grid s*q with integer |q| <= 127,
// the grid is the row's max |w| / 127 (to the f16 rounding of the scale, 1e-3), and every weight
// moved by at most half a step. A conv treated as rows of 3 (its last dimension) would put each
// triple on its own grid and fail the integer check.
TEST(VisionVariant, Int8PerChannelIsRoundToNearestPerOutputRow) {
  const ImageSet train = synthetic_set(600, 12, 30);
  for (const VisionConfig& c : {small_cnn(12), small_mlp(12)}) {
    const VisionModel m = trained_model(c, train);
    auto v = vision_variant(m, "int8", nullptr, nullptr, nlohmann::json{{"storage", "f32"}});
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    double bits = 0, weights = 0;
    for (size_t k = 0; k < m.params().size(); ++k) {
      const Param &a = m.params()[k], &b = v->model.params()[k];
      ASSERT_EQ(a.shape, b.shape);
      if (a.shape.size() < 2) {
        EXPECT_EQ(a.value, b.value) << a.name << ": biases are not quantized";
        continue;
      }
      const auto [rows, cols] = matrix_of(a);
      bits += (8.0 + 16.0 / cols) * a.numel();  // 8-bit codes + one f16 scale per row
      weights += a.numel();
      for (int64_t r = 0; r < rows; ++r) {
        double amax = 0, qmax = 0;
        for (int64_t j = 0; j < cols; ++j) {
          amax = std::max(amax, std::fabs(static_cast<double>(a.value[r * cols + j])));
          qmax = std::max(qmax, std::fabs(static_cast<double>(b.value[r * cols + j])));
        }
        const double s = qmax / 127.0;  // the max element sits on code +-127
        ASSERT_GT(s, 0) << a.name;
        EXPECT_NEAR(s, amax / 127.0, 1e-3 * s) << a.name << " row " << r;
        for (int64_t j = 0; j < cols; ++j) {
          const double w = a.value[r * cols + j], q = b.value[r * cols + j] / s;
          EXPECT_NEAR(q, std::nearbyint(q), 1e-4) << a.name << " row " << r << " col " << j;
          EXPECT_LE(std::fabs(b.value[r * cols + j] - w), 0.5 * s * (1 + 1e-3) + 1e-9) << a.name;
        }
      }
    }
    EXPECT_NEAR(v->bits_per_weight, bits / weights, 1e-9);
    double zeros = 0;  // small weights round to code 0: sparsity counts them
    for (const Param& p : v->model.params())
      if (p.shape.size() >= 2)
        for (float w : p.value) zeros += w == 0.0f;
    EXPECT_NEAR(v->sparsity, zeros / weights, 1e-12);
  }
}

// magnitude-50 prunes round(0.5 n) smallest |w| of every conv/fc weight (torch's L1Unstructured
// count, half to even), recounted here from the original weights: exact zero counts, and no kept
// weight is smaller in magnitude than a pruned one. wanda-50 prunes floor(cols / 2) per output row
// of the (out, in*9) matrix.
TEST(VisionVariant, MagnitudeAndWandaPruneTheSpecifiedCounts) {
  const ImageSet train = synthetic_set(600, 12, 31);
  for (const VisionConfig& c : {small_cnn(12), small_mlp(12)}) {
    const VisionModel m = trained_model(c, train);
    auto mag = vision_variant(m, "magnitude-50", nullptr);
    ASSERT_TRUE(mag.ok()) << mag.status().to_string();
    double zeros = 0, weights = 0;
    for (size_t k = 0; k < m.params().size(); ++k) {
      const Param &a = m.params()[k], &b = mag->model.params()[k];
      if (a.shape.size() < 2) {
        EXPECT_EQ(a.value, b.value);
        continue;
      }
      int64_t z = 0;
      double max_pruned = 0, min_kept = INFINITY;
      for (size_t i = 0; i < a.value.size(); ++i) {
        ASSERT_NE(a.value[i], 0.0f);
        if (b.value[i] == 0.0f) {
          ++z;
          max_pruned = std::max(max_pruned, static_cast<double>(std::fabs(a.value[i])));
        } else {
          EXPECT_EQ(b.value[i], a.value[i]);
          min_kept = std::min(min_kept, static_cast<double>(std::fabs(a.value[i])));
        }
      }
      const int64_t n = a.numel();
      const int64_t want = n % 2 == 0 ? n / 2 : ((n / 2) % 2 == 0 ? n / 2 : n / 2 + 1);  // rint(n/2), half to even
      EXPECT_EQ(z, want) << a.name;
      EXPECT_LE(max_pruned, min_kept) << a.name;
      zeros += z;
      weights += n;
    }
    EXPECT_NEAR(mag->sparsity, zeros / weights, 1e-12);

    EXPECT_FALSE(vision_variant(m, "wanda-50", nullptr).ok());  // needs calibration images
    auto wanda = vision_variant(m, "wanda-50", &train);
    ASSERT_TRUE(wanda.ok()) << wanda.status().to_string();
    for (const Param& p : wanda->model.params()) {
      if (p.shape.size() < 2) continue;
      const auto [rows, cols] = matrix_of(p);
      for (int64_t r = 0; r < rows; ++r) {
        int64_t z = 0;
        for (int64_t j = 0; j < cols; ++j) z += p.value[r * cols + j] == 0.0f;
        EXPECT_EQ(z, cols / 2) << p.name << " row " << r;
      }
    }
    EXPECT_FALSE(wanda->plan.calibration.is_null());
  }
}

// Every spec the studies use runs on both architectures; bits/weight follow the storage formulas
// (b bits + one f16 scale per group, ceil(cols / g) groups per row); mild variants keep accuracy.
TEST(VisionVariant, StudySpecsRunOnCnnAndMlp) {
  const ImageSet train = synthetic_set(800, 12, 32), test = synthetic_set(300, 12, 33);
  for (const VisionConfig& c : {small_cnn(12), small_mlp(12)}) {
    const VisionModel m = trained_model(c, train);
    const double base = recount_accuracy(m, test);
    EXPECT_GE(base, 0.8) << c.arch;
    for (const std::string spec : {"fp16", "int8", "int4-g32", "int4-pc", "int2-g16", "magnitude-50", "wanda-50",
                                   "gptq-4-g32", "sparsegpt-50", "q8_0"}) {
      auto v = vision_variant(m, spec, &train);
      ASSERT_TRUE(v.ok()) << c.arch << " " << spec << ": " << v.status().to_string();
      const double acc = recount_accuracy(v->model, test);
      double bits = 0, weights = 0;
      for (const Param& p : m.params()) {
        if (p.shape.size() < 2) continue;
        const auto [rows, cols] = matrix_of(p);
        (void)rows;
        double b = 32;
        if (spec == "fp16") b = 16;
        if (spec == "int8" || spec == "int4-pc") b = (spec == "int8" ? 8 : 4) + 16.0 / cols;
        if (spec == "int4-g32") b = 4 + 16.0 * std::ceil(cols / 32.0) / cols;
        if (spec == "int2-g16") b = 2 + 16.0 * std::ceil(cols / 16.0) / cols;
        if (spec == "q8_0") b = cols % 32 == 0 ? 8.5 : -1;  // fallback types are not predicted here
        if (b < 0) { bits = -1; break; }
        bits += b * p.numel();
        weights += p.numel();
      }
      if (bits >= 0 && (spec == "fp16" || spec.rfind("int", 0) == 0 || spec == "q8_0")) {
        EXPECT_NEAR(v->bits_per_weight, bits / weights, 1e-9) << c.arch << " " << spec;
      }
      if (spec == "fp16" || spec == "int8") {
        EXPECT_NEAR(acc, base, 0.02) << c.arch << " " << spec;
      }
      std::printf("[ %s %-13s ] accuracy %.3f (fp32 %.3f) bits/weight %.3f sparsity %.3f\n", c.arch.c_str(),
                  spec.c_str(), acc, base, v->bits_per_weight, v->sparsity);
    }
  }
}

// Calibration statistics recounted here: the centre im2col column of conv.0 (c 0, ky 1, kx 1) sees
// every pixel once, so its sum of squares is the sum of all squared pixels; a corner column misses
// the first row and column; fc inputs of the MLP are the pixels themselves.
TEST(VisionVariant, CalibrationColumnsAreIm2colColumns) {
  const ImageSet s = synthetic_set(40, 12, 34);
  auto cnn = VisionModel::init_random(small_cnn(12), 1);
  auto mlp = VisionModel::init_random(small_mlp(12), 1);
  ASSERT_TRUE(cnn.ok() && mlp.ok());
  auto cal = capture_vision_calibration(*cnn, s, 30, nullptr, true);
  ASSERT_TRUE(cal.ok()) << cal.status().to_string();
  const LinearInputStats* c0 = cal->find("conv.0.weight");
  ASSERT_NE(c0, nullptr);
  EXPECT_EQ(c0->k, 9);
  EXPECT_EQ(c0->rows, 30 * 12 * 12);
  double all = 0, corner = 0;
  for (int64_t i = 0; i < 30; ++i)
    for (int64_t y = 0; y < 12; ++y)
      for (int64_t x = 0; x < 12; ++x) {
        const double v = s.image(i)[y * 12 + x];
        all += v * v;
        if (y < 11 && x < 11) corner += v * v;  // column (ky 0, kx 0) reads (oy-1, ox-1)
      }
  EXPECT_NEAR(c0->sum_sq[4], all, 1e-9 * all);
  EXPECT_NEAR(c0->sum_sq[0], corner, 1e-9 * all);
  EXPECT_NEAR(c0->xtx[4 * 9 + 4], all, 1e-9 * all);
  const LinearInputStats* c1 = cal->find("conv.1.weight");
  ASSERT_NE(c1, nullptr);
  EXPECT_EQ(c1->k, 4 * 9);
  EXPECT_EQ(c1->rows, 30 * 6 * 6);
  ASSERT_NE(cal->find("fc.1.weight"), nullptr);
  EXPECT_EQ(cal->find("fc.1.weight")->rows, 30);
  auto calm = capture_vision_calibration(*mlp, s, 1000, nullptr);
  ASSERT_TRUE(calm.ok());
  const LinearInputStats* f0 = calm->find("fc.0.weight");
  ASSERT_NE(f0, nullptr);
  EXPECT_EQ(f0->rows, 40);
  for (int64_t j : {0, 13, 77, 143}) {
    double sq = 0, ab = 0;
    for (int64_t i = 0; i < 40; ++i) {
      sq += static_cast<double>(s.image(i)[j]) * s.image(i)[j];
      ab += std::fabs(s.image(i)[j]);
    }
    EXPECT_NEAR(f0->sum_sq[j], sq, 1e-9 * sq);
    EXPECT_NEAR(f0->sum_abs[j], ab, 1e-9 * ab);
  }
}

// Real images (dataset-fashion-mnist): an MLP trained briefly on 2000 training images must classify
// 1000 held-out test images well above chance (10%); a linear model alone reaches ~75%.
TEST(VisionTrain, MlpLearnsRealFashionMnist) {
  auto train = load_fashion_mnist("train", 2000);
  auto test = load_fashion_mnist("test", 1000);
  if (!train.ok() || !test.ok())
    GTEST_SKIP() << "Fashion-MNIST is absent (install dataset-fashion-mnist, scripts/setup): "
                 << (train.ok() ? test.status().to_string() : train.status().to_string());
  ASSERT_EQ(train->n, 2000);
  ASSERT_EQ(test->n, 1000);
  VisionConfig c;
  c.arch = "mlp";
  c.conv_channels.clear();
  c.hidden = {64};
  auto m = VisionModel::init_random(c, 1);
  ASSERT_TRUE(m.ok());
  VisionTrainConfig tc;
  tc.epochs = 3;
  tc.batch = 32;
  tc.lr = 2e-3;
  auto r = train_vision(*m, *train, tc);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const double acc = recount_accuracy(*m, *test);
  std::printf("[ fashion-mnist mlp 2000 images, 3 epochs ] test accuracy on 1000: %.3f (%.1f s)\n", acc, r->seconds);
  EXPECT_GE(acc, 0.7);
}

// The compress/ rules that admit the vision tensors, and leave the language-model rules alone.
TEST(VisionVariant, CompressRulesAdmitVisionTensorsOnly) {
  auto conv = Tensor::zeros("conv.1.weight", DType::F32, {8, 4, 3, 3});
  auto other4d = Tensor::zeros("blk.0.conv.weight", DType::F32, {8, 4, 3, 3});
  auto bias = Tensor::zeros("conv.1.bias", DType::F32, {8});
  ASSERT_TRUE(conv.ok() && other4d.ok() && bias.ok());
  EXPECT_TRUE(quant_is_conv_weight(*conv));
  EXPECT_TRUE(quant_is_weight_matrix(*conv));
  EXPECT_FALSE(quant_is_weight_matrix(*other4d));
  EXPECT_FALSE(quant_is_weight_matrix(*bias));
  EXPECT_TRUE(prune_is_block_linear("conv.0.weight"));
  EXPECT_TRUE(prune_is_block_linear("fc.12.weight"));
  EXPECT_FALSE(prune_is_block_linear("fc.weight"));
  EXPECT_FALSE(prune_is_block_linear("fc.0.bias"));
  EXPECT_FALSE(prune_is_block_linear("conv.x.weight"));
  EXPECT_FALSE(prune_is_block_linear("output.weight"));
  EXPECT_TRUE(prune_is_block_linear("blk.3.ffn_down.weight"));
}

// A block type keeps a conv weight as its (out, in*9) matrix: conv.1 of this CNN has 32 input
// channels, so its rows of 288 fit q8_0's 32-element blocks; from_store binds that shape, and the
// dequantized weights are within q8_0's error bound of the original: half a step d = max|block|/127
// plus up to 127 codes times the f16 rounding of d (2^-11 relative).
TEST(VisionVariant, BlockTypeVariantKeepsTheMatrixShape) {
  VisionConfig c = small_cnn(12);
  c.conv_channels = {32, 8};
  auto m = VisionModel::init_random(c, 3);
  ASSERT_TRUE(m.ok());
  auto store = m->to_store();
  ASSERT_TRUE(store.ok());
  auto out = compress_variant(*store, "q8_0", CompressContext{});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor* t = out->store.find("conv.1.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::Q8_0);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{8, 288}));
  auto v = vision_variant(*m, "q8_0", nullptr);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  const Param &a = *m->find("conv.1.weight"), &b = *v->model.find("conv.1.weight");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{8, 32, 3, 3}));
  for (size_t blk = 0; blk < a.value.size() / 32; ++blk) {
    double amax = 0;
    for (size_t i = blk * 32; i < blk * 32 + 32; ++i) amax = std::max(amax, static_cast<double>(std::fabs(a.value[i])));
    for (size_t i = blk * 32; i < blk * 32 + 32; ++i)
      EXPECT_LE(std::fabs(a.value[i] - b.value[i]), amax / 127 * (0.5 + 127 * std::ldexp(1.0, -11)) + 1e-7) << i;
  }
}

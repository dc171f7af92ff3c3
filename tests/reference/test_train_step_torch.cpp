// Training steps against PyTorch (tests/py/autograd_train_step.py, float64, torch.optim), same
// initial weights (written by this test) and same batch:
//  - a tiny Llama (2 layers, dim 32, 4 heads / 2 kv heads, ffn 64, vocab 50, seq 8, batch 2, with
//    ignored targets and per-sample weights 1 and 2), 3 AdamW steps (weight decay 0.1 on matrices,
//    none on norms, as two torch param groups) in each RoPE order;
//  - a tiny CNN (conv-relu-maxpool-conv-relu-avgpool-flatten-linear, CE), 3 SGD steps with momentum
//    0.9 and weight decay, with and without Nesterov.
// Checked: every step's loss (relative 1e-5) and every parameter after the last step.
// Parameter tolerance for AdamW: 5e-3 * lr per step. AdamW normalises each element's step to ~lr
// whatever the gradient's size, so for elements whose true gradient is tiny the float32 rounding of
// the gradient (absolute ~1e-7 of the largest terms) is a large relative error of m / sqrt(v): those
// move by a visible fraction of lr (measured 1.3e-3 lr per step on this case). A wrong gradient term moves
// weights by O(lr), 200x over the tolerance. For SGD, 1e-5 absolute (updates are lr * g, no
// normalisation; measured ~1e-7). Measured errors are printed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <nlohmann/json.hpp>

#include "safeshrink/autograd.h"
#include "safeshrink/rng.h"
#include "safeshrink/train.h"
#include "test_support.h"

using namespace ss;
using json = nlohmann::json;

namespace {

void write_params(const std::string& dir, const std::vector<Param>& params, json& spec) {
  std::vector<uint8_t> bytes;
  json list = json::array();
  for (const Param& p : params) {
    const size_t at = bytes.size();
    bytes.resize(at + p.value.size() * 4);
    std::memcpy(bytes.data() + at, p.value.data(), p.value.size() * 4);
    list.push_back({{"name", p.name}, {"shape", p.shape}, {"decay", p.decay}});
  }
  spec["params"] = list;
  test::write_bytes(dir + "/params.f32", bytes);
  std::ofstream(dir + "/spec.json") << spec.dump();
}

struct TorchRun {
  std::vector<double> losses;
  std::vector<double> params;
};

TorchRun read_torch(const std::string& dir) {
  TorchRun r;
  std::ifstream f(dir + "/result.json");
  r.losses = json::parse(f)["losses"].get<std::vector<double>>();
  auto b = test::read_bytes(dir + "/updated.f64");
  r.params.resize(b.size() / 8);
  std::memcpy(r.params.data(), b.data(), r.params.size() * 8);
  return r;
}

// Largest |ours - torch| over all parameters; checks sizes line up.
double max_param_diff(const std::vector<Param>& params, const std::vector<double>& ref) {
  size_t off = 0;
  double worst = 0;
  for (const Param& p : params) {
    EXPECT_LE(off + p.value.size(), ref.size());
    if (off + p.value.size() > ref.size()) return INFINITY;
    for (size_t i = 0; i < p.value.size(); ++i) worst = std::max(worst, std::fabs(p.value[i] - ref[off + i]));
    off += p.value.size();
  }
  EXPECT_EQ(off, ref.size());
  return worst;
}

}  // namespace

// One test, one Python process for all four runs (torch takes seconds to start on a busy machine).
TEST(TrainStepTorch, TinyLlamaAdamWAndTinyCnnSgdMatchPyTorch) {
  SS_REQUIRE_PYTHON("torch", "numpy");
  std::vector<std::function<void(const TorchRun&)>> checks;  // ours, after torch has run
  std::string dirs;
  for (RopeOrder order : {RopeOrder::NORM, RopeOrder::NEOX}) {
    LlamaConfig c;
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.rope_order = order;
    auto made = LlamaTrainModel::init_random(c, 17);
    ASSERT_TRUE(made.ok()) << made.status().to_string();
    auto m = std::make_shared<LlamaTrainModel>(std::move(made).value());
    Rng rng(23);
    for (Param& p : m->params()) {  // non-trivial norms; larger weights so attention is not uniform
      for (float& v : p.value) v = p.shape.size() == 1 ? static_cast<float>(1.0 + 0.2 * rng.normal()) : v * 5.0f;
    }
    TrainBatch b;
    b.batch = 2;
    b.seq = 8;
    for (int i = 0; i < 16; ++i) {
      b.tokens.push_back(static_cast<int32_t>(rng.below(50)));
      b.targets.push_back(i % 5 == 1 ? -1 : static_cast<int32_t>(rng.below(50)));
    }
    b.sample_weight = {1.0f, 2.0f};
    const AdamWConfig ac{1e-2, 0.9, 0.95, 1e-8, 0.1};
    const int steps = 3;
    const std::string dir = test::temp_dir(order == RopeOrder::NORM ? "train-step-llama-norm" : "train-step-llama-neox");
    json spec = {{"kind", "llama"}, {"steps", steps}, {"batch", 2}, {"seq", 8}, {"tokens", b.tokens},
                 {"targets", b.targets}, {"sample_weight", b.sample_weight},
                 {"opt", {{"lr", ac.lr}, {"beta1", ac.beta1}, {"beta2", ac.beta2}, {"eps", ac.eps}, {"weight_decay", ac.weight_decay}}},
                 {"config", {{"n_layers", 2}, {"n_heads", 4}, {"n_kv_heads", 2}, {"head_dim", 8}, {"rms_eps", c.rms_eps},
                             {"rope_theta", c.rope_theta}, {"rope_order", order == RopeOrder::NORM ? "NORM" : "NEOX"}}}};
    write_params(dir, m->params(), spec);
    dirs += " " + dir;
    checks.push_back([=](const TorchRun& ref) {
      ASSERT_EQ(ref.losses.size(), static_cast<size_t>(steps));
      const char* name = order == RopeOrder::NORM ? "NORM" : "NEOX";
      AdamW opt(ac);
      for (int s = 0; s < steps; ++s) {
        zero_grad(m->params());
        auto loss = m->forward_backward(b, {}, nullptr);
        ASSERT_TRUE(loss.ok()) << loss.status().to_string();
        EXPECT_NEAR(*loss, ref.losses[s], 1e-5 * ref.losses[s]) << "step " << s;
        std::printf("[ llama %s step %d ] loss ours %.8f torch %.8f\n", name, s, *loss, ref.losses[s]);
        opt.step(m->params(), ac.lr);
      }
      const double diff = max_param_diff(m->params(), ref.params);
      std::printf("[ llama %s ] max |param ours - torch| after %d AdamW steps: %.3g (lr %.g)\n", name, steps, diff, ac.lr);
      EXPECT_LT(diff, 5e-3 * ac.lr * steps);
    });
  }
  for (bool nesterov : {false, true}) {
    Rng rng(31);
    auto make = [&](const std::string& name, std::vector<int64_t> shape, double std, bool decay) {
      Param p;
      p.name = name;
      p.shape = std::move(shape);
      p.decay = decay;
      p.value.resize(p.numel());
      for (float& v : p.value) v = static_cast<float>(std * rng.normal());
      return p;
    };
    auto params = std::make_shared<std::vector<Param>>(std::vector<Param>{
        make("conv1.weight", {4, 1, 3, 3}, 0.4, true), make("conv1.bias", {4}, 0.1, false),
        make("conv2.weight", {8, 4, 3, 3}, 0.2, true), make("conv2.bias", {8}, 0.1, false),
        make("fc.weight", {10, 32}, 0.2, true), make("fc.bias", {10}, 0.1, false)});
    std::vector<float> images(4 * 64);
    for (float& v : images) v = static_cast<float>(rng.normal());
    const std::vector<int32_t> labels = {3, 7, 0, 9};
    const SgdConfig sc{0.1, 0.9, 1e-3, nesterov};
    const int steps = 3;
    const std::string dir = test::temp_dir(nesterov ? "train-step-cnn-nesterov" : "train-step-cnn");
    json spec = {{"kind", "cnn"}, {"steps", steps}, {"images", images}, {"images_shape", {4, 1, 8, 8}}, {"labels", labels},
                 {"opt", {{"lr", sc.lr}, {"momentum", sc.momentum}, {"weight_decay", sc.weight_decay}, {"nesterov", nesterov}}}};
    write_params(dir, *params, spec);
    dirs += " " + dir;
    checks.push_back([=](const TorchRun& ref) {
      ASSERT_EQ(ref.losses.size(), static_cast<size_t>(steps));
      Sgd opt(sc);
      for (int s = 0; s < steps; ++s) {
        ag::Tape<float> t;
        std::vector<ag::Var> w;
        for (const Param& p : *params) w.push_back(t.leaf(p.shape, p.value, true));
        ag::Var x = t.leaf({4, 1, 8, 8}, images, false);
        ag::Var y = ag::relu(t, ag::conv2d(t, x, w[0], w[1], 1, 1));   // (4, 4, 8, 8)
        y = ag::max_pool2d(t, y, 2, 2);                                 // (4, 4, 4, 4)
        y = ag::relu(t, ag::conv2d(t, y, w[2], w[3], 1, 1));            // (4, 8, 4, 4)
        y = ag::reshape(t, ag::avg_pool2d(t, y, 2, 2), {4, -1});        // (4, 32)
        ag::Var logits = ag::linear(t, y, w[4], w[5]);                  // (4, 10)
        ag::Var loss = ag::cross_entropy(t, logits, labels, {});
        ASSERT_TRUE(t.backward(loss).ok()) << t.status().to_string();
        EXPECT_NEAR(t.value(loss)[0], ref.losses[s], 1e-5 * ref.losses[s]) << "step " << s;
        for (size_t k = 0; k < params->size(); ++k) (*params)[k].grad = t.grad(w[k]);
        opt.step(*params, sc.lr);
      }
      const double diff = max_param_diff(*params, ref.params);
      std::printf("[ cnn sgd momentum%s ] max |param ours - torch| after %d steps: %.3g\n", nesterov ? " nesterov" : "", steps, diff);
      EXPECT_LT(diff, 1e-5);
    });
  }
  std::string log;
  ASSERT_EQ(test::run_python("py/autograd_train_step.py", dirs, &log), 0) << log;
  std::istringstream folders(dirs);
  for (auto& check : checks) {
    std::string dir;
    folders >> dir;
    check(read_torch(dir));
  }
}

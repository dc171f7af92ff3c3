// Every autograd op's gradients against central finite differences, in float64 (the ops are
// templates; Tape<double> runs the same code as training's Tape<float>). For each op: fresh random
// inputs (weights and inputs both require grad), loss = sum(out * r) for a random r, analytic grads
// from backward() vs (L(x + h) - L(x - h)) / 2h with h = 1e-6. Tolerance 1e-6 * max(1, |fd|): the
// central difference's truncation error is O(h^2 f''') ~ 1e-12 and its rounding error ~ 1e-16 / h =
// 1e-10, so 1e-6 leaves margin yet catches any wrong term (those are O(1)). Non-smooth ops (relu, max
// pool) get inputs whose kinks are far from every +-h step.
// Also: optimizers and schedules against their defining formulas on hand-checkable numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "safeshrink/autograd.h"
#include "safeshrink/rng.h"
#include "safeshrink/train.h"

using namespace ss;
using namespace ss::ag;

namespace {

struct Input {
  Shape shape;
  std::vector<double> value;
};
using Build = std::function<Var(Tape<double>&, const std::vector<Var>&)>;

Input random_input(Shape shape, Rng& rng, double scale = 1.0, double min_abs = 0.0) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  Input in{std::move(shape), std::vector<double>(n)};
  for (double& v : in.value) {
    do { v = scale * rng.normal(); } while (std::fabs(v) < min_abs);
  }
  return in;
}

double evaluate(const std::vector<Input>& inputs, const Build& build, const std::vector<double>& r,
                std::vector<std::vector<double>>* grads) {
  Tape<double> t;
  std::vector<Var> vars;
  for (const Input& in : inputs) vars.push_back(t.leaf(in.shape, in.value, true));
  Var out = build(t, vars);
  EXPECT_TRUE(t.status().ok()) << t.status().to_string();
  if (!out.valid()) return NAN;
  std::vector<double> rr = r;
  rr.resize(t.numel(out), 0.0);
  Var loss = dot_const(t, out, rr);
  if (grads) {
    EXPECT_TRUE(t.backward(loss).ok());
    grads->clear();
    for (Var v : vars) {
      std::vector<double> g = t.grad(v);
      g.resize(t.numel(v), 0.0);  // an input the loss does not reach has zero gradient
      grads->push_back(g);
    }
  }
  return t.value(loss)[0];
}

// Returns the largest |analytic - fd| / max(1, |fd|) over all inputs and elements.
double check_gradients(const std::string& name, std::vector<Input> inputs, const Build& build, uint64_t seed = 7) {
  Rng rng(seed);
  std::vector<double> r(1 << 16);
  for (double& v : r) v = rng.normal();
  std::vector<std::vector<double>> grads;
  evaluate(inputs, build, r, &grads);
  const double h = 1e-6;
  double worst = 0;
  for (size_t i = 0; i < inputs.size(); ++i)
    for (size_t j = 0; j < inputs[i].value.size(); ++j) {
      const double x0 = inputs[i].value[j];
      inputs[i].value[j] = x0 + h;
      const double lp = evaluate(inputs, build, r, nullptr);
      inputs[i].value[j] = x0 - h;
      const double lm = evaluate(inputs, build, r, nullptr);
      inputs[i].value[j] = x0;
      const double fd = (lp - lm) / (2 * h);
      const double err = std::fabs(grads[i][j] - fd) / std::max(1.0, std::fabs(fd));
      worst = std::max(worst, err);
      EXPECT_LT(err, 1e-6) << name << ": input " << i << " element " << j << ": analytic " << grads[i][j] << ", fd " << fd;
    }
  std::printf("[ %-22s ] max relative error vs finite differences %.2e\n", name.c_str(), worst);
  return worst;
}

std::vector<float> inv_freq(int64_t hd, double theta) {
  std::vector<float> f(hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i) f[i] = static_cast<float>(std::pow(theta, -2.0 * i / hd));
  return f;
}

}  // namespace

TEST(AutogradFiniteDifferences, MatrixOps) {
  Rng rng(1);
  check_gradients("embedding", {random_input({5, 3}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return embedding(t, v[0], {4, 0, 4, 2}); });
  check_gradients("linear+bias", {random_input({2, 3, 4}, rng), random_input({5, 4}, rng), random_input({5}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return linear(t, v[0], v[1], v[2]); });
  check_gradients("linear", {random_input({40, 20}, rng), random_input({24, 20}, rng)},  // big enough to split rows
                  [](Tape<double>& t, const std::vector<Var>& v) { return linear(t, v[0], v[1]); });
  check_gradients("matmul", {random_input({3, 4}, rng), random_input({4, 2}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return matmul(t, v[0], v[1]); });
}

TEST(AutogradFiniteDifferences, ElementwiseOps) {
  Rng rng(2);
  auto two = [&] { return std::vector<Input>{random_input({2, 5}, rng), random_input({2, 5}, rng)}; };
  check_gradients("add", two(), [](Tape<double>& t, const std::vector<Var>& v) { return add(t, v[0], v[1]); });
  check_gradients("mul", two(), [](Tape<double>& t, const std::vector<Var>& v) { return mul(t, v[0], v[1]); });
  check_gradients("mul(a, a)", {random_input({6}, rng)}, [](Tape<double>& t, const std::vector<Var>& v) { return mul(t, v[0], v[0]); });
  check_gradients("scale", {random_input({7}, rng)}, [](Tape<double>& t, const std::vector<Var>& v) { return scale(t, v[0], -1.7); });
  check_gradients("silu", {random_input({9}, rng, 2.0)}, [](Tape<double>& t, const std::vector<Var>& v) { return silu(t, v[0]); });
  check_gradients("swiglu", two(), [](Tape<double>& t, const std::vector<Var>& v) { return swiglu(t, v[0], v[1]); });
  check_gradients("relu", {random_input({12}, rng, 1.0, 1e-3)}, [](Tape<double>& t, const std::vector<Var>& v) { return relu(t, v[0]); });
  check_gradients("gelu tanh", {random_input({9}, rng, 2.0)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return gelu(t, v[0], GeluKind::TANH); });
  check_gradients("gelu erf", {random_input({9}, rng, 2.0)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return gelu(t, v[0], GeluKind::ERF); });
  check_gradients("softmax", {random_input({3, 6}, rng, 2.0)}, [](Tape<double>& t, const std::vector<Var>& v) { return softmax(t, v[0]); });
  check_gradients("log_softmax", {random_input({3, 6}, rng, 2.0)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return log_softmax(t, v[0]); });
  check_gradients("reshape", {random_input({2, 6}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return reshape(t, v[0], {3, -1}); });
  check_gradients("dropout p=0.3", {random_input({20}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return dropout(t, v[0], 0.3, 99); });
}

TEST(AutogradFiniteDifferences, TransformerOps) {
  Rng rng(3);
  check_gradients("rms_norm", {random_input({3, 8}, rng), random_input({8}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return rms_norm(t, v[0], v[1], 1e-5); });
  for (RopeOrder order : {RopeOrder::NORM, RopeOrder::NEOX})
    check_gradients(order == RopeOrder::NORM ? "rope NORM" : "rope NEOX", {random_input({2, 3, 2, 8}, rng)},
                    [order](Tape<double>& t, const std::vector<Var>& v) { return rope(t, v[0], inv_freq(8, 100.0), order); });
  // GQA: 4 query heads on 2 kv heads; and plain multi-head.
  check_gradients("attention GQA 4/2",
                  {random_input({2, 5, 4, 4}, rng), random_input({2, 5, 2, 4}, rng), random_input({2, 5, 2, 4}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return attention(t, v[0], v[1], v[2]); });
  check_gradients("attention MHA",
                  {random_input({1, 6, 2, 4}, rng), random_input({1, 6, 2, 4}, rng), random_input({1, 6, 2, 4}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return attention(t, v[0], v[1], v[2]); });
}

TEST(AutogradFiniteDifferences, ConvolutionAndPools) {
  Rng rng(4);
  check_gradients("conv2d s1 p1 +bias", {random_input({2, 2, 5, 5}, rng), random_input({3, 2, 3, 3}, rng), random_input({3}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return conv2d(t, v[0], v[1], v[2], 1, 1); });
  check_gradients("conv2d s2 p0", {random_input({1, 2, 6, 5}, rng), random_input({2, 2, 2, 3}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return conv2d(t, v[0], v[1], Var{}, 2, 0); });
  check_gradients("max_pool2d k2 s2", {random_input({2, 2, 4, 5}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return max_pool2d(t, v[0], 2, 2); });
  check_gradients("max_pool2d k3 s1", {random_input({1, 1, 5, 5}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return max_pool2d(t, v[0], 3, 1); });
  check_gradients("avg_pool2d k2 s2", {random_input({2, 2, 4, 5}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return avg_pool2d(t, v[0], 2, 2); });
}

TEST(AutogradFiniteDifferences, Losses) {
  Rng rng(5);
  const std::vector<int32_t> targets = {3, -1, 0, 5, 2};
  const std::vector<double> weights = {1.0, 2.0, 0.5, 3.0, 1.0};
  check_gradients("cross_entropy", {random_input({5, 6}, rng, 2.0)}, [&](Tape<double>& t, const std::vector<Var>& v) {
    return cross_entropy(t, v[0], targets, weights);
  });
  const Input teacher = random_input({5, 6}, rng, 2.0);
  check_gradients("kd_loss a=0.3 T=2", {random_input({5, 6}, rng, 2.0)}, [&](Tape<double>& t, const std::vector<Var>& v) {
    return kd_loss(t, v[0], teacher.value, targets, weights, 0.3, 2.0);
  });
  check_gradients("mse", {random_input({2, 3}, rng), random_input({2, 3}, rng)},
                  [](Tape<double>& t, const std::vector<Var>& v) { return mse(t, v[0], v[1]); });
}

TEST(Autograd, StickyErrorsAndShapes) {
  Tape<float> t;
  Var a = t.leaf({2, 3}, std::vector<float>(6, 1.0f), true);
  Var b = t.leaf({3, 3}, std::vector<float>(9, 1.0f), true);
  Var bad = add(t, a, b);
  EXPECT_FALSE(bad.valid());
  EXPECT_FALSE(t.status().ok());
  EXPECT_FALSE(relu(t, bad).valid());  // later ops propagate
  EXPECT_FALSE(t.backward(a).ok());
  Tape<float> t2;
  Var table = t2.leaf({4, 2}, std::vector<float>(8, 0.0f), true);
  EXPECT_FALSE(embedding(t2, table, {4}).valid());  // id out of range is an error, not a crash
  Tape<float> t3;
  Var x = t3.leaf({2, 3}, {1, 2, 3, 4, 5, 6}, false);
  t3.training = false;
  Var y = dropout(t3, x, 0.5, 1);
  EXPECT_EQ(t3.value(y), t3.value(x));  // identity at eval
}

TEST(Autograd, DropoutKeepsTheExpectedShare) {
  Tape<float> t;
  const int64_t n = 100000;
  Var x = t.leaf({n}, std::vector<float>(n, 1.0f), false);
  Var y = dropout(t, x, 0.25, 5);
  int64_t kept = 0;
  for (float v : t.value(y)) {
    if (v != 0) {
      ++kept;
      EXPECT_FLOAT_EQ(v, 1.0f / 0.75f);
    }
  }
  // Binomial(n, 0.75): sd = sqrt(n 0.75 0.25) ~ 137; 5 sd.
  EXPECT_NEAR(static_cast<double>(kept), 0.75 * n, 5 * 137.0);
}

// Optimizers against their defining formulas (torch.optim docs), on one parameter of two elements.
TEST(Optimizers, AdamWTwoStepsByHand) {
  std::vector<Param> ps(1);
  ps[0].value = {1.0f, -2.0f};
  ps[0].shape = {2};
  AdamW opt({0.1, 0.9, 0.999, 1e-8, 0.01});
  const double g1[2] = {0.5, -0.25}, g2[2] = {-1.0, 0.125};
  double p[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int step = 1; step <= 2; ++step) {
    const double* g = step == 1 ? g1 : g2;
    ps[0].grad = {static_cast<float>(g[0]), static_cast<float>(g[1])};
    opt.step(ps, 0.1);
    for (int i = 0; i < 2; ++i) {
      p[i] *= 1 - 0.1 * 0.01;
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(0.9, step)), vh = v[i] / (1 - std::pow(0.999, step));
      p[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
      EXPECT_NEAR(ps[0].value[i], p[i], 1e-6) << "step " << step;
    }
  }
  ps[0].decay = false;  // no decay: the first Adam step moves by exactly lr * sign(g)
  AdamW fresh({0.1, 0.9, 0.999, 1e-8, 0.5});
  ps[0].value = {0.0f, 0.0f};
  ps[0].grad = {3.0f, -0.001f};
  fresh.step(ps, 0.1);
  EXPECT_NEAR(ps[0].value[0], -0.1, 1e-6);
  EXPECT_NEAR(ps[0].value[1], 0.1, 1e-4);
}

TEST(Optimizers, SgdMomentumNesterovAndDecay) {
  for (bool nesterov : {false, true}) {
    std::vector<Param> ps(1);
    ps[0].value = {1.0f};
    ps[0].shape = {1};
    Sgd opt({0.1, 0.9, 0.1, nesterov});
    double p = 1.0, buf = 0.0;
    for (int step = 0; step < 3; ++step) {
      const double g0 = 0.5 - step;
      ps[0].grad = {static_cast<float>(g0)};
      opt.step(ps, 0.1);
      const double g = g0 + 0.1 * p;
      buf = step == 0 ? g : 0.9 * buf + g;
      p -= 0.1 * (nesterov ? g + 0.9 * buf : buf);
      EXPECT_NEAR(ps[0].value[0], p, 1e-6) << "nesterov " << nesterov << " step " << step;
    }
  }
}

TEST(Optimizers, ClipAndSchedules) {
  std::vector<Param> ps(2);
  ps[0].value = {0, 0};
  ps[0].grad = {3, 0};
  ps[1].value = {0};
  ps[1].grad = {4};
  EXPECT_NEAR(clip_grad_norm(ps, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(ps[0].grad[0], 0.6, 1e-6);
  EXPECT_NEAR(ps[1].grad[0], 0.8, 1e-6);
  EXPECT_NEAR(clip_grad_norm(ps, 10.0), 1.0, 1e-6);  // under the limit: unchanged
  EXPECT_NEAR(ps[1].grad[0], 0.8, 1e-6);
  zero_grad(ps);
  EXPECT_EQ(ps[0].grad, std::vector<float>({0, 0}));

  LrSchedule s{"cosine", 1.0, 0.1, 10, 110};
  EXPECT_NEAR(s.at(0), 0.1, 1e-12);    // warmup: (step + 1) / warmup
  EXPECT_NEAR(s.at(9), 1.0, 1e-12);
  EXPECT_NEAR(s.at(10), 1.0, 1e-12);   // cosine starts at lr
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);  // halfway: (lr + min) / 2
  EXPECT_NEAR(s.at(110), 0.1, 1e-12);
  EXPECT_NEAR(s.at(500), 0.1, 1e-12);
  s.kind = "linear";
  EXPECT_NEAR(s.at(35), 1.0 - 0.9 * 0.25, 1e-12);
  s.kind = "constant";
  EXPECT_NEAR(s.at(80), 1.0, 1e-12);
}

// Every autograd op (float32, as training runs it) against PyTorch float64 (tests/py/autograd_ops.py,
// written from torch.nn.functional): forward output and the gradients of sum(out * r) w.r.t. every
// input, weights and inputs both, on fresh random inputs sent through a temp JSON file.
// Tolerance: max |ours - torch| <= 2e-5 * max(1, max |torch|) per tensor: float32 rounding (6e-8
// relative) grown by sums of at most a few hundred terms, with margin; a wrong term is O(1).
// The KD loss is compared twice: all rows counted with weights 1 against the exact formula
// alpha * F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean') * T^2 + (1-alpha) * CE
// (batchmean divides by the number of rows = our count of counted positions), and with ignored rows
// and per-sample weights against the same per-row terms summed and divided by the counted rows.
// Dropout is not here (its mask is ours; tests/unit/test_autograd.cpp checks it).
// Also: LlamaTrainModel::from_store on the llama.cpp-made stories260K GGUFs (F32 and Q8_0, which
// from_store dequantizes) gives the logits of LlamaModel on the same store (dequantized), max |diff|
// < 1e-4, and its to_store() round-trips to the same logits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "safeshrink/autograd.h"
#include "safeshrink/formats.h"
#include "safeshrink/model.h"
#include "safeshrink/train.h"
#include "safeshrink/rng.h"
#include "test_support.h"

using namespace ss;
using namespace ss::ag;
using json = nlohmann::json;

namespace {

struct OpCase {
  std::string name, op;
  json attrs;
  std::vector<Shape> shapes;
  std::function<Var(Tape<float>&, const std::vector<Var>&)> build;
  double input_scale = 1.0;
};

struct Computed {
  std::vector<float> out;
  std::vector<std::vector<float>> grads;
};

std::vector<float> inv_freq(int64_t hd, double theta) {
  std::vector<float> f(hd / 2);
  for (int64_t i = 0; i < hd / 2; ++i) f[i] = static_cast<float>(std::pow(theta, -2.0 * i / hd));
  return f;
}

}  // namespace

TEST(AutogradTorch, EveryOpForwardAndGradientsMatchPyTorch) {
  SS_REQUIRE_PYTHON("torch");
  Rng rng(2024);
  const std::vector<int32_t> ids = {3, 0, 3, 6, 1};
  const std::vector<int32_t> targets = {4, -1, 0, 9, 2, 7};
  const std::vector<float> weights = {1.0f, 2.0f, 0.5f, 3.0f, 1.0f, 1.5f};
  const std::vector<int32_t> all_targets = {4, 1, 0, 9, 2, 7};
  std::vector<float> teacher(6 * 10);
  for (float& v : teacher) v = static_cast<float>(2.0 * rng.normal());
  const std::vector<float> freqs = inv_freq(8, 10000.0);

  std::vector<OpCase> cases = {
      {"embedding", "embedding", {{"ids", ids}}, {{7, 5}}, [&](auto& t, auto& v) { return embedding(t, v[0], ids); }},
      {"linear+bias", "linear", {}, {{2, 3, 16}, {12, 16}, {12}}, [](auto& t, auto& v) { return linear(t, v[0], v[1], v[2]); }},
      {"linear big", "linear", {}, {{64, 48}, {40, 48}}, [](auto& t, auto& v) { return linear(t, v[0], v[1]); }},
      {"matmul", "matmul", {}, {{5, 7}, {7, 3}}, [](auto& t, auto& v) { return matmul(t, v[0], v[1]); }},
      {"add", "add", {}, {{4, 5}, {4, 5}}, [](auto& t, auto& v) { return add(t, v[0], v[1]); }},
      {"mul", "mul", {}, {{4, 5}, {4, 5}}, [](auto& t, auto& v) { return mul(t, v[0], v[1]); }},
      {"scale", "scale", {{"s", 0.37}}, {{9}}, [](auto& t, auto& v) { return scale(t, v[0], 0.37); }},
      {"rms_norm", "rms_norm", {{"eps", 1e-5}}, {{6, 32}, {32}}, [](auto& t, auto& v) { return rms_norm(t, v[0], v[1], 1e-5); }},
      {"rope NORM", "rope", {{"inv_freq", freqs}, {"order", "NORM"}}, {{2, 7, 3, 8}},
       [&](auto& t, auto& v) { return rope(t, v[0], freqs, RopeOrder::NORM); }},
      {"rope NEOX", "rope", {{"inv_freq", freqs}, {"order", "NEOX"}}, {{2, 7, 3, 8}},
       [&](auto& t, auto& v) { return rope(t, v[0], freqs, RopeOrder::NEOX); }},
      {"attention GQA 4/2", "attention", {}, {{2, 9, 4, 8}, {2, 9, 2, 8}, {2, 9, 2, 8}},
       [](auto& t, auto& v) { return attention(t, v[0], v[1], v[2]); }},
      {"attention MQA 3/1", "attention", {}, {{1, 12, 3, 4}, {1, 12, 1, 4}, {1, 12, 1, 4}},
       [](auto& t, auto& v) { return attention(t, v[0], v[1], v[2]); }},
      {"softmax", "softmax", {}, {{4, 11}}, [](auto& t, auto& v) { return softmax(t, v[0]); }, 3.0},
      {"log_softmax", "log_softmax", {}, {{4, 11}}, [](auto& t, auto& v) { return log_softmax(t, v[0]); }, 3.0},
      {"silu", "silu", {}, {{20}}, [](auto& t, auto& v) { return silu(t, v[0]); }, 3.0},
      {"swiglu", "swiglu", {}, {{3, 7}, {3, 7}}, [](auto& t, auto& v) { return swiglu(t, v[0], v[1]); }, 2.0},
      {"relu", "relu", {}, {{20}}, [](auto& t, auto& v) { return relu(t, v[0]); }},
      {"gelu tanh", "gelu", {{"approximate", "tanh"}}, {{20}}, [](auto& t, auto& v) { return gelu(t, v[0], GeluKind::TANH); }, 2.0},
      {"gelu erf", "gelu", {{"approximate", "none"}}, {{20}}, [](auto& t, auto& v) { return gelu(t, v[0], GeluKind::ERF); }, 2.0},
      {"conv2d s1 p1 bias", "conv2d", {{"stride", 1}, {"pad", 1}}, {{2, 3, 6, 6}, {4, 3, 3, 3}, {4}},
       [](auto& t, auto& v) { return conv2d(t, v[0], v[1], v[2], 1, 1); }},
      {"conv2d s2 p2", "conv2d", {{"stride", 2}, {"pad", 2}}, {{1, 2, 7, 5}, {3, 2, 3, 2}},
       [](auto& t, auto& v) { return conv2d(t, v[0], v[1], Var{}, 2, 2); }},
      {"max_pool2d", "max_pool2d", {{"k", 2}, {"stride", 2}}, {{2, 3, 6, 7}}, [](auto& t, auto& v) { return max_pool2d(t, v[0], 2, 2); }},
      {"avg_pool2d", "avg_pool2d", {{"k", 3}, {"stride", 2}}, {{2, 3, 7, 7}}, [](auto& t, auto& v) { return avg_pool2d(t, v[0], 3, 2); }},
      {"reshape", "reshape", {{"shape", {3, 8}}}, {{2, 3, 4}}, [](auto& t, auto& v) { return reshape(t, v[0], {3, -1}); }},
      {"mse", "mse", {}, {{3, 5}, {3, 5}}, [](auto& t, auto& v) { return mse(t, v[0], v[1]); }},
      {"cross_entropy ignore+weights", "cross_entropy", {{"targets", targets}, {"weights", weights}}, {{6, 10}},
       [&](auto& t, auto& v) { return cross_entropy(t, v[0], targets, weights); }, 2.0},
      {"kd_loss batchmean", "kd_loss", {{"targets", all_targets}, {"teacher", teacher}, {"alpha", 0.7}, {"temperature", 2.0}},
       {{6, 10}}, [&](auto& t, auto& v) { return kd_loss(t, v[0], teacher, all_targets, {}, 0.7, 2.0); }, 2.0},
      {"kd_loss ignore+weights", "kd_loss",
       {{"targets", targets}, {"weights", weights}, {"teacher", teacher}, {"alpha", 0.4}, {"temperature", 3.0}},
       {{6, 10}}, [&](auto& t, auto& v) { return kd_loss(t, v[0], teacher, targets, weights, 0.4, 3.0); }, 2.0},
  };

  json requests = json::array();
  std::vector<Computed> ours;
  for (const OpCase& c : cases) {
    Tape<float> t;
    std::vector<Var> vars;
    json inputs = json::array();
    for (const Shape& s : c.shapes) {
      int64_t n = 1;
      for (int64_t d : s) n *= d;
      std::vector<float> v(n);
      for (float& x : v) x = static_cast<float>(c.input_scale * rng.normal());
      inputs.push_back({{"shape", s}, {"data", v}});
      vars.push_back(t.leaf(s, v, true));
    }
    Var out = c.build(t, vars);
    ASSERT_TRUE(t.status().ok()) << c.name << ": " << t.status().to_string();
    std::vector<float> r(t.numel(out));
    for (float& x : r) x = static_cast<float>(rng.normal());
    ASSERT_TRUE(t.backward(dot_const(t, out, r)).ok());
    Computed got{t.value(out), {}};
    for (Var v : vars) {
      std::vector<float> g = t.grad(v);
      g.resize(t.numel(v), 0.0f);
      got.grads.push_back(g);
    }
    ours.push_back(got);
    requests.push_back({{"name", c.name}, {"op", c.op}, {"attrs", c.attrs}, {"inputs", inputs}, {"r", r}});
  }
  const std::string dir = test::temp_dir("autograd-torch");
  std::ofstream(dir + "/cases.json") << requests.dump();
  std::string log;
  ASSERT_EQ(test::run_python("py/autograd_ops.py", dir + "/cases.json " + dir + "/results.json", &log), 0) << log;
  std::ifstream rf(dir + "/results.json");
  const json results = json::parse(rf);
  ASSERT_EQ(results.size(), cases.size());

  auto compare = [](const std::string& what, const std::vector<float>& got, const std::vector<double>& ref) -> double {
    EXPECT_EQ(got.size(), ref.size()) << what;
    if (got.size() != ref.size()) return INFINITY;
    double maxref = 1.0, maxerr = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      maxref = std::max(maxref, std::fabs(ref[i]));
      maxerr = std::max(maxerr, std::fabs(got[i] - ref[i]));
    }
    EXPECT_LE(maxerr, 2e-5 * maxref) << what;
    return maxerr / maxref;
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    double worst = compare(cases[k].name + " forward", ours[k].out, results[k]["out"].get<std::vector<double>>());
    const auto grads = results[k]["grads"].get<std::vector<std::vector<double>>>();
    ASSERT_EQ(grads.size(), ours[k].grads.size());
    for (size_t i = 0; i < grads.size(); ++i)
      worst = std::max(worst, compare(cases[k].name + " grad of input " + std::to_string(i), ours[k].grads[i], grads[i]));
    std::printf("[ %-30s ] max |ours f32 - torch f64| / max(1, |torch|) = %.2e\n", cases[k].name.c_str(), worst);
  }
}

TEST(AutogradTorch, FromStoreOfAModelWeDidNotMakeGivesLlamaModelLogits) {
  SS_REQUIRE_SHARED();
  for (const char* file : {"stories260K-f32.gguf", "stories260K-q8_0.gguf"}) {
    auto store = open_model(test::fixtures_dir() + "/stories260K/" + file);
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    auto shared = std::make_shared<const TensorStore>(std::move(store).value());
    auto trained = LlamaTrainModel::from_store(*shared);
    ASSERT_TRUE(trained.ok()) << trained.status().to_string();
    LoadOptions opts;
    opts.dequantize_weights = true;
    auto ref = LlamaModel::load(shared, opts);
    ASSERT_TRUE(ref.ok()) << ref.status().to_string();
    auto round = trained->to_store();
    ASSERT_TRUE(round.ok()) << round.status().to_string();
    auto again = LlamaModel::load(std::make_shared<const TensorStore>(std::move(round).value()));
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    const int64_t S = 16, V = trained->config().vocab_size;
    TrainBatch b;
    b.batch = 1;
    b.seq = S;
    Rng rng(5);
    for (int64_t i = 0; i < S; ++i) b.tokens.push_back(static_cast<int32_t>(1 + rng.below(V - 1)));
    auto ours = trained->logits(b, nullptr);
    ASSERT_TRUE(ours.ok()) << ours.status().to_string();
    double d_ref = 0, d_again = 0;
    for (const LlamaModel* m : {&*ref, &*again}) {
      KvCache cache = m->new_cache(S);
      std::vector<float> out(S * V);
      ASSERT_TRUE(m->forward(b.tokens.data(), S, cache, out.data(), true).ok());
      double& d = m == &*ref ? d_ref : d_again;
      for (int64_t i = 0; i < S * V; ++i) d = std::max(d, static_cast<double>(std::fabs(out[i] - (*ours)[i])));
    }
    std::printf("[ %s ] max |logit diff| from_store vs LlamaModel %.3g, after to_store %.3g\n", file, d_ref, d_again);
    EXPECT_LT(d_ref, 1e-4);
    EXPECT_LT(d_again, 1e-4);
  }
}

// The attacks' one step against PyTorch (tests/py/adversarial_reference.py rebuilds the model in
// float64 torch from the safetensors file we save): the input gradient of mean CE, FGSM, PGD's first
// step from the clean image and from a given random start (fixed noise tensor), on a small CNN and an
// MLP; and fake_quant_ste against torch.fake_quantize_per_tensor_affine (forward, and the backward
// STE mask through the gradient of sum(out * r)).
// Tolerances: input gradients max |ours - torch| <= 1e-4 * max |torch| (float32 forward/backward vs
// float64: a few hundred-term sums at 6e-8 relative each, with margin; a wrong term is O(1)).
// Attack outputs: every pixel whose torch gradient is not tiny (|g| > 1e-3 max |g|, so the sign is
// unambiguous) must equal torch's within 1e-6 (the outputs are sums/clips of exact float values; the
// difference is float32 vs float64 rounding of x + step); pixels with a near-zero gradient may take
// the other sign, and those must be < 1% of pixels. Fake quant: forward exact up to 1e-7 (both
// compute nearbyint(x * (1/scale)) in float32), backward mask identical.
// All cases go to Python in one request (one torch start), built deterministically and cached.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safeshrink/adversarial.h"
#include "safeshrink/rng.h"
#include "test_support.h"

using namespace ss;
using json = nlohmann::json;

namespace {

struct ModelCase {
  std::string name;
  VisionConfig cfg;
  VisionModel model;
  std::string path;
  int64_t n = 6, size = 0;
  double eps = 0.1, step = 0.03;
  std::vector<float> x, noise;
  std::vector<int32_t> labels;
};

struct FakeQuantCase {
  double scale;
  int64_t zp, qmin, qmax;
};

struct Reference {
  std::vector<ModelCase> models;
  std::vector<FakeQuantCase> fqs;
  std::vector<float> fq_x, fq_r;
  json response;
  std::string error;  // non-empty: the Python run failed
};

const Reference& reference() {
  static Reference ref = [] {
    Reference r;
    const std::string dir = test::temp_dir("adv_torch");
    VisionConfig cnn;
    cnn.arch = "cnn";
    cnn.height = cnn.width = 12;
    cnn.conv_channels = {4, 6};
    cnn.hidden = {16};
    VisionConfig mlp;
    mlp.arch = "mlp";
    mlp.height = mlp.width = 10;
    mlp.conv_channels = {};
    mlp.hidden = {32, 16};
    json req = {{"models", json::array()}, {"fake_quant", json::array()}};
    for (auto [name, cfg] : {std::pair{std::string("cnn"), cnn}, std::pair{std::string("mlp"), mlp}}) {
      ModelCase c;
      c.name = name;
      c.cfg = cfg;
      auto m = VisionModel::init_random(cfg, 7);
      if (!m.ok()) {
        r.error = m.status().to_string();
        return r;
      }
      c.model = std::move(*m);
      c.path = dir + "/" + name + ".safetensors";
      if (Status st = save_vision_model(c.model, c.path); !st.ok()) {
        r.error = st.to_string();
        return r;
      }
      c.size = cfg.channels * cfg.height * cfg.width;
      Rng rng(11);
      c.x.resize(c.n * c.size);
      c.noise.resize(c.n * c.size);
      c.labels.resize(c.n);
      for (auto& v : c.x) v = static_cast<float>(rng.uniform());
      for (int64_t i = 0; i < c.n * c.size; i += 7) c.x[i] = 0.0f;  // some pixels at the clip bounds
      for (int64_t i = 3; i < c.n * c.size; i += 11) c.x[i] = 1.0f;
      for (auto& v : c.noise) v = rng.uniform(-float(c.eps), float(c.eps));
      for (auto& l : c.labels) l = static_cast<int32_t>(rng.below(10));
      req["models"].push_back({{"model", c.path}, {"n", c.n}, {"x", c.x}, {"labels", c.labels}, {"noise", c.noise},
                               {"eps", c.eps}, {"step", c.step}});
      r.models.push_back(std::move(c));
    }
    Rng rng(5);
    r.fq_x.resize(400);
    r.fq_r.resize(400);
    for (auto& v : r.fq_x) v = static_cast<float>(3.0 * rng.normal());  // many values outside the range
    for (auto& v : r.fq_r) v = static_cast<float>(rng.normal());
    r.fqs = {{0.037, 0, 0, 255}, {0.41, 0, 0, 3}, {0.13, 5, 0, 15}, {0.02, 0, -128, 127}};
    for (const auto& q : r.fqs)
      req["fake_quant"].push_back({{"x", r.fq_x}, {"r", r.fq_r}, {"scale", q.scale}, {"zero_point", q.zp},
                                   {"qmin", q.qmin}, {"qmax", q.qmax}});
    const std::string req_path = dir + "/req.json", resp_path = dir + "/resp.json";
    std::ofstream(req_path) << req.dump();
    std::string out;
    if (test::run_python("py/adversarial_reference.py", req_path + " " + resp_path, &out) != 0) {
      r.error = out;
      return r;
    }
    r.response = json::parse(std::ifstream(resp_path));
    return r;
  }();
  return ref;
}

void expect_close_grad(const std::vector<float>& ours, const std::vector<double>& ref, const std::string& what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(ref[i]));
    max_diff = std::max(max_diff, std::abs(double(ours[i]) - ref[i]));
  }
  ASSERT_GT(max_ref, 0.0) << what << ": torch gradient is all zero; the case tests nothing";
  EXPECT_LE(max_diff, 1e-4 * max_ref) << what << " max diff " << max_diff << " max |torch| " << max_ref;
  std::printf("%s: GRADIENT OK, maxdiff = %.3g (max |g| %.3g)\n", what.c_str(), max_diff, max_ref);
}

void expect_step_matches(const std::vector<float>& ours, const std::vector<double>& ref, const std::vector<double>& grad,
                         const std::string& what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  double max_g = 0;
  for (double g : grad) max_g = std::max(max_g, std::abs(g));
  int64_t ambiguous_mismatch = 0;
  double max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(ours[i]) - ref[i]);
    if (std::abs(grad[i]) > 1e-3 * max_g) {
      EXPECT_LE(d, 1e-6) << what << " pixel " << i << ": ours " << ours[i] << " torch " << ref[i] << " grad " << grad[i];
      max_diff = std::max(max_diff, d);
    } else if (d > 1e-6) {
      ++ambiguous_mismatch;
    }
  }
  EXPECT_LE(ambiguous_mismatch, static_cast<int64_t>(ref.size() / 100)) << what;
  std::printf("%s: STEP OK, maxdiff = %.3g over %zu pixels, %lld near-zero-gradient pixels differ\n", what.c_str(),
              max_diff, ref.size(), static_cast<long long>(ambiguous_mismatch));
}

std::vector<double> as_doubles(const json& j) { return j.get<std::vector<double>>(); }

}  // namespace

TEST(AdversarialTorch, FgsmAndPgdOneStepMatchPyTorch) {
  SS_REQUIRE_PYTHON("torch", "numpy");
  const Reference& ref = reference();
  ASSERT_TRUE(ref.error.empty()) << ref.error;
  for (size_t k = 0; k < ref.models.size(); ++k) {
    const ModelCase& c = ref.models[k];
    const json& resp = ref.response["models"][k];
    SCOPED_TRACE(c.name);
    auto loss = model_loss_gradient(c.model);
    std::vector<float> g0;
    ASSERT_TRUE(loss(c.x.data(), c.labels.data(), c.n, g0).ok());
    auto fgsm = fgsm_attack(loss, c.x.data(), c.labels.data(), c.n, c.size, c.eps);
    ASSERT_TRUE(fgsm.ok()) << fgsm.status().to_string();
    PgdConfig pc;
    pc.eps = c.eps;
    pc.steps = 1;
    pc.step_size = c.step;
    pc.random_start = false;
    auto pgd_plain = pgd_attack(loss, c.x.data(), c.labels.data(), c.n, c.size, pc);
    ASSERT_TRUE(pgd_plain.ok()) << pgd_plain.status().to_string();
    pc.random_start = true;
    auto pgd_noise = pgd_attack(loss, c.x.data(), c.labels.data(), c.n, c.size, pc, c.noise.data());
    ASSERT_TRUE(pgd_noise.ok()) << pgd_noise.status().to_string();
    std::vector<float> start(c.n * c.size), g1;
    linf_random_start(c.x.data(), start.data(), c.noise.data(), c.n * c.size, c.eps);
    ASSERT_TRUE(loss(start.data(), c.labels.data(), c.n, g1).ok());
    const auto ref_start = as_doubles(resp["start"]);
    for (size_t i = 0; i < start.size(); ++i) ASSERT_NEAR(start[i], ref_start[i], 1e-6) << "random start pixel " << i;

    expect_close_grad(g0, as_doubles(resp["grad_clean"]), c.name + " grad at x");
    expect_close_grad(g1, as_doubles(resp["grad_start"]), c.name + " grad at random start");
    expect_step_matches(*fgsm, as_doubles(resp["fgsm"]), as_doubles(resp["grad_clean"]), c.name + " FGSM");
    expect_step_matches(*pgd_plain, as_doubles(resp["pgd_plain"]), as_doubles(resp["grad_clean"]), c.name + " PGD step");
    expect_step_matches(*pgd_noise, as_doubles(resp["pgd_noise"]), as_doubles(resp["grad_start"]),
                        c.name + " PGD step from noise");
    // The attack really moved the image (the comparison is not between two copies of x).
    double moved = 0;
    for (int64_t i = 0; i < c.n * c.size; ++i) moved = std::max(moved, double(std::abs((*pgd_noise)[i] - c.x[i])));
    EXPECT_GT(moved, 0.5 * c.eps);
  }
}

TEST(AdversarialTorch, FakeQuantSteMatchesTorchFakeQuantize) {
  SS_REQUIRE_PYTHON("torch", "numpy");
  const Reference& ref = reference();
  ASSERT_TRUE(ref.error.empty()) << ref.error;
  const int64_t n = static_cast<int64_t>(ref.fq_x.size());
  for (size_t k = 0; k < ref.fqs.size(); ++k) {
    const FakeQuantCase& q = ref.fqs[k];
    SCOPED_TRACE(q.scale);
    ag::Tape<float> t;
    ag::Var xv = t.leaf({n}, ref.fq_x, true);
    ag::Var y = fake_quant_ste(t, xv, q.scale, q.zp, q.qmin, q.qmax);
    ag::Var l = ag::dot_const(t, y, ref.fq_r);
    ASSERT_TRUE(t.backward(l).ok()) << t.status().to_string();
    auto ref_out = as_doubles(ref.response["fake_quant"][k]["out"]);
    auto ref_grad = as_doubles(ref.response["fake_quant"][k]["grad"]);
    int64_t clipped = 0;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(t.value(y)[i], ref_out[i], 1e-7 * std::max(1.0, std::abs(ref_out[i]))) << "x " << ref.fq_x[i];
      EXPECT_EQ(t.grad(xv)[i], static_cast<float>(ref_grad[i])) << "x " << ref.fq_x[i];
      clipped += ref_grad[i] == 0.0 ? 1 : 0;
    }
    EXPECT_GT(clipped, 0) << "no input fell outside the clip range: the mask is untested";
    EXPECT_LT(clipped, n) << "every input clipped: the pass-through is untested";
  }
}

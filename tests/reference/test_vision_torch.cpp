// The vision classifiers against PyTorch (tests/py/vision_reference.py: torch.nn.Sequential of
// Conv2d/ReLU/MaxPool2d/Flatten/Linear in float64, weights read from the safetensors file we
// write). Same weights, same images (uniform [0, 1), like pixels), for the default CNN (28x28,
// conv 16, 32, fc 128) and an MLP (fc 64, 32):
//  - logits: max |ours - torch| <= 1e-5 * max |logit| (float32 forward vs float64; measured ~1e-7);
//  - d mean CE / d image and d mean CE / d every parameter: max |ours - torch| <= 1e-4 * max |grad|
//    of that tensor (float32 sums of up to 1568 terms; measured ~1e-6; a wrong term is O(1));
//  - 3 full-batch training steps through train_vision: AdamW (lr 1e-2, weight decay 0.1 on
//    weights only) with every loss within 1e-5 relative and the parameters within 5e-3 * lr * steps
//    (AdamW normalises tiny gradients' float32 noise up to ~lr, see test_train_step_torch.cpp),
//    except at most 1e-4 of the elements, which must stay within AdamW's largest move
//    lr * steps * (1 + wd): fc.0 weights whose input feature sits within float32 rounding of a
//    ReLU kink get a gradient of ~1e-8 in one precision and 0 in the other, and AdamW turns that
//    into a step of ~lr (measured: 3 of 200704 elements of the CNN, 0.64 lr; in the MLP none);
//    SGD momentum 0.9 within 1e-5 absolute for every element.
// Printed: the measured differences.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safeshrink/rng.h"
#include "safeshrink/vision.h"
#include "test_support.h"

using namespace ss;
using json = nlohmann::json;

namespace {

std::vector<double> read_f64(const std::string& path) {
  auto b = test::read_bytes(path);
  std::vector<double> v(b.size() / 8);
  std::memcpy(v.data(), b.data(), v.size() * 8);
  return v;
}

// max |a - b| / max |b| (with a floor so an all-zero reference does not divide by zero).
double rel_max_diff(const float* a, const double* b, size_t n) {
  double worst = 0, scale = 1e-12;
  for (size_t i = 0; i < n; ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return worst / scale;
}

struct Case {
  std::string name, dir, optimizer;
  VisionConfig cfg;
  VisionModel model;
  std::vector<float> images;
  std::vector<int32_t> labels;
  double lr, weight_decay, momentum;
  int steps;
};

}  // namespace

TEST(VisionTorch, ForwardGradientsAndTrainingStepsMatchPyTorch) {
  SS_REQUIRE_PYTHON("torch", "numpy");
  std::vector<Case> cases;
  VisionConfig cnn;  // the default: conv 16, 32 + fc 128 on 28x28
  VisionConfig mlp;
  mlp.arch = "mlp";
  mlp.conv_channels.clear();
  mlp.hidden = {64, 32};
  const int64_t n = 6;
  std::string dirs;
  for (auto [name, cfg, opt] : {std::tuple{"cnn-adamw", cnn, "adamw"}, std::tuple{"mlp-adamw", mlp, "adamw"},
                                std::tuple{"cnn-sgd", cnn, "sgd"}}) {
    Case c;
    c.name = name;
    c.cfg = cfg;
    c.optimizer = opt;
    c.lr = c.optimizer == "adamw" ? 1e-2 : 5e-2;
    c.weight_decay = c.optimizer == "adamw" ? 0.1 : 1e-3;
    c.momentum = 0.9;
    c.steps = 3;
    auto m = VisionModel::init_random(cfg, 101);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    c.model = std::move(m).value();
    Rng rng(7);
    c.images.resize(static_cast<size_t>(n * 28 * 28));
    for (float& v : c.images) v = static_cast<float>(rng.uniform());
    for (int64_t i = 0; i < n; ++i) c.labels.push_back(static_cast<int32_t>(rng.below(10)));
    c.dir = test::temp_dir("vision-torch-" + c.name);
    ASSERT_TRUE(save_vision_model(c.model, c.dir + "/model.safetensors").ok());
    std::vector<uint8_t> img(c.images.size() * 4), lab(c.labels.size() * 4);
    std::memcpy(img.data(), c.images.data(), img.size());
    std::memcpy(lab.data(), c.labels.data(), lab.size());
    test::write_bytes(c.dir + "/images.f32", img);
    test::write_bytes(c.dir + "/labels.i32", lab);
    json names = json::array();
    for (const Param& p : c.model.params()) names.push_back(p.name);
    std::ofstream(c.dir + "/spec.json") << json{{"params", names},     {"optimizer", c.optimizer}, {"steps", c.steps},
                                                {"lr", c.lr},          {"weight_decay", c.weight_decay},
                                                {"momentum", c.momentum}}.dump();
    dirs += " " + c.dir;
    cases.push_back(std::move(c));
  }
  std::string log;
  ASSERT_EQ(test::run_python("py/vision_reference.py", dirs, &log), 0) << log;

  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::ifstream rf(c.dir + "/result.json");
    const json result = json::parse(rf);
    // Forward.
    auto z = c.model.logits(c.images.data(), n);
    ASSERT_TRUE(z.ok()) << z.status().to_string();
    const std::vector<double> z_ref = read_f64(c.dir + "/logits.f64");
    ASSERT_EQ(z_ref.size(), z->size());
    const double dz = rel_max_diff(z->data(), z_ref.data(), z->size());
    EXPECT_LT(dz, 1e-5);
    // Input gradient and loss.
    std::vector<float> gx;
    auto loss = c.model.input_gradient(c.images.data(), c.labels.data(), n, gx);
    ASSERT_TRUE(loss.ok()) << loss.status().to_string();
    EXPECT_NEAR(*loss, result["loss"].get<double>(), 1e-5 * result["loss"].get<double>());
    const std::vector<double> gx_ref = read_f64(c.dir + "/input_grad.f64");
    ASSERT_EQ(gx_ref.size(), gx.size());
    const double dgx = rel_max_diff(gx.data(), gx_ref.data(), gx.size());
    EXPECT_LT(dgx, 1e-4);
    // Parameter gradients: one tape over the batch, as training records it.
    ag::Tape<float> t;
    t.training = false;
    std::vector<ag::Var> leaves;
    ag::Var x = t.leaf({n, 1, 28, 28}, c.images, false);
    ag::Var l = ag::cross_entropy(t, c.model.forward(t, x, true, &leaves), c.labels, {});
    ASSERT_TRUE(t.backward(l).ok()) << t.status().to_string();
    const std::vector<double> gp_ref = read_f64(c.dir + "/param_grads.f64");
    size_t off = 0;
    double worst_gp = 0;
    for (size_t k = 0; k < leaves.size(); ++k) {
      const std::vector<float>& g = t.grad(leaves[k]);
      ASSERT_LE(off + g.size(), gp_ref.size());
      const double d = rel_max_diff(g.data(), gp_ref.data() + off, g.size());
      EXPECT_LT(d, 1e-4) << c.model.params()[k].name;
      worst_gp = std::max(worst_gp, d);
      off += g.size();
    }
    EXPECT_EQ(off, gp_ref.size());
    // Training steps (full batch: the shuffle only reorders the mean's terms).
    VisionTrainConfig tc;
    tc.epochs = c.steps;
    tc.batch = n;
    tc.optimizer = c.optimizer;
    tc.lr = c.lr;
    tc.weight_decay = c.weight_decay;
    tc.momentum = c.momentum;
    tc.schedule = "constant";
    std::vector<double> losses;
    tc.progress = [&](int64_t, int64_t, int64_t, double epoch_loss, double) { losses.push_back(epoch_loss); };
    VisionModel trained = c.model;
    ImageSet set;
    set.n = n;
    set.height = set.width = 28;
    set.pixels = c.images;
    set.labels = c.labels;
    set.source = "test batch";
    auto r = train_vision(trained, set, tc);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const auto ref_losses = result["losses"].get<std::vector<double>>();
    ASSERT_EQ(losses.size(), ref_losses.size());
    for (size_t s = 0; s < losses.size(); ++s) EXPECT_NEAR(losses[s], ref_losses[s], 1e-5 * ref_losses[s]) << "step " << s;
    // Per element: within `limit`, except (AdamW only) at most 1e-4 of the elements, which must stay
    // within AdamW's largest possible move, lr * steps * (1 + weight decay).
    const std::vector<double> after = read_f64(c.dir + "/updated.f64");
    const double limit = c.optimizer == "adamw" ? 5e-3 * c.lr * c.steps : 1e-5;
    const double outlier_limit = c.optimizer == "adamw" ? c.lr * c.steps * (1 + c.weight_decay) : limit;
    off = 0;
    double worst = 0, worst_outlier = 0;
    int64_t outliers = 0, elements = 0;
    for (const Param& p : trained.params()) {
      ASSERT_LE(off + p.value.size(), after.size());
      for (size_t i = 0; i < p.value.size(); ++i) {
        const double d = std::fabs(p.value[i] - after[off + i]);
        if (d > limit) {
          ++outliers;
          worst_outlier = std::max(worst_outlier, d);
        } else {
          worst = std::max(worst, d);
        }
      }
      elements += static_cast<int64_t>(p.value.size());
      off += p.value.size();
    }
    EXPECT_EQ(off, after.size());
    EXPECT_LE(outliers, c.optimizer == "adamw" ? elements / 10000 : 0);
    EXPECT_LT(worst_outlier, outlier_limit);
    std::printf("[ %s ] logits rel %.3g | input grad rel %.3g | param grads rel (worst tensor) %.3g | "
                "params after %d %s steps max abs %.3g (limit %.3g), %lld of %lld elements beyond it (worst %.3g)\n",
                c.name.c_str(), dz, dgx, worst_gp, c.steps, c.optimizer.c_str(), worst, limit,
                static_cast<long long>(outliers), static_cast<long long>(elements), worst_outlier);
  }
}

// The attacks of adversarial.h: the straight-through fake-quantization op, the loss-gradient
// callbacks (one model, a weighted combination, the QAA ensemble), FGSM, L-inf PGD with a seeded or
// given random start, the boundary search and its eps bisection, and the attack registry.
// Not here: the measuring run and its log (adversarial_run.cpp), the reports (adversarial_report.cpp),
// the model's forward and backward (src/model/vision/).
// To add an attack: write it against AttackLossGradient here, add its registry row below, and wire it
// into run_adversarial.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <mutex>

#include "safeshrink/adversarial.h"
#include "safeshrink/rng.h"

namespace ss {

// ---------------------------------------------------------------- registry

const std::vector<AttackInfo>& attack_registry() {
  static const std::vector<AttackInfo> kAttacks = {
      {"fgsm", "Fast gradient sign method: one step of size eps along sign(d CE / d x), crafted on the FP32 model",
       {{"eps", 0.05}},
       "Goodfellow, Shlens, Szegedy, Explaining and Harnessing Adversarial Examples, ICLR 2015"},
      {"pgd", "L-inf projected gradient descent with random start, crafted on the FP32 model, evaluated on every variant",
       {{"eps", 0.05}, {"steps", 10}, {"step_size", "2.5*eps/steps"}, {"random_start", true}},
       "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"},
      {"pgd_self", "White-box PGD crafted on each variant itself (its dequantized F32 weights)",
       {{"eps", 0.05}, {"steps", 10}, {"step_size", "2.5*eps/steps"}, {"random_start", true}},
       "Madry et al., ICLR 2018"},
      {"qaa", "Quantization-aware attack: PGD on the mean CE of quantization-simulated copies (weights of int8/int4/int2 "
              "variants, activations fake-quantized with a straight-through estimator), transferred to every variant",
       {{"specs", {"int8", "int4-g32", "int2-g16"}}, {"activation_quant", true}},
       "Yang et al., Quantization Aware Attack: Enhancing Transferable Adversarial Attacks by Model Quantization, "
       "IEEE TIFS 2024"},
      {"boundary", "Search within eps for inputs where the FP32 model keeps its label and the variant changes it "
                   "(PGD on CE_variant - lambda CE_fp), plus the smallest such eps by bisection",
       {{"lambda", 1.0}, {"bisect_samples", 20}, {"bisect_iterations", 7}},
       "quantization-boundary inputs as in the seed's BackdoorSurvivalTester; differential testing of compressed "
       "models (e.g. DiffChaser, Xie et al. ISSTA 2019)"},
  };
  return kAttacks;
}

// ---------------------------------------------------------------- fake quantization (STE)

template <class T>
ag::Var fake_quant_ste(ag::Tape<T>& t, ag::Var x, double scale, int64_t zero_point, int64_t qmin, int64_t qmax) {
  if (!t.check({x}, scale > 0 && std::isfinite(scale) && qmin < qmax, "fake_quant_ste",
               "scale must be > 0 and finite and qmin < qmax, got scale " + std::to_string(scale) + ", qmin " +
                   std::to_string(qmin) + ", qmax " + std::to_string(qmax)))
    return {};
  const std::vector<T>& xv = t.value(x);
  const T sc = static_cast<T>(scale);
  const T inv = T(1) / sc;  // as torch: multiply by the reciprocal computed in the tensor's type
  const T zp = static_cast<T>(zero_point), lo = static_cast<T>(qmin), hi = static_cast<T>(qmax);
  std::vector<T> out(xv.size());
  std::vector<uint8_t> pass(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    const T q = zp + std::nearbyint(xv[i] * inv);
    pass[i] = (q >= lo && q <= hi) ? 1 : 0;
    out[i] = (std::min(std::max(q, lo), hi) - zp) * sc;
  }
  return t.push(t.shape(x), std::move(out), {x}, [x, pass = std::move(pass)](ag::Tape<T>& tp, ag::Var o) {
    if (!tp.requires_grad(x)) return;
    const std::vector<T>& g = tp.grad(o);
    std::vector<T>& gx = tp.grad_mut(x);
    for (size_t i = 0; i < g.size(); ++i)
      if (pass[i]) gx[i] += g[i];
  });
}
template ag::Var fake_quant_ste<float>(ag::Tape<float>&, ag::Var, double, int64_t, int64_t, int64_t);
template ag::Var fake_quant_ste<double>(ag::Tape<double>&, ag::Var, double, int64_t, int64_t, int64_t);

namespace {
// The first layer reads the image itself, which is already 8-bit data: it is not fake-quantized.
std::string first_layer_name(const VisionModel& model) {
  return model.config().arch == "cnn" && !model.config().conv_channels.empty() ? "conv.0.weight" : "fc.0.weight";
}
}  // namespace

Result<std::map<std::string, float>> capture_activation_max(const VisionModel& model, const ImageSet& images,
                                                            int64_t n_samples, ThreadPool* pool) {
  if (n_samples <= 0) return invalid_argument("capture_activation_max: n_samples must be >= 1, got " + std::to_string(n_samples));
  const int64_t n = std::min(n_samples, images.n);
  if (n == 0) return invalid_argument("capture_activation_max: no calibration images");
  std::mutex mu;
  std::map<std::string, float> ranges;
  const std::string first = first_layer_name(model);
  VisionForwardHooks hooks;
  hooks.layer_input = [&](ag::Tape<float>& t, ag::Var x, const std::string& name) {
    if (name == first) return x;
    float m = 0.0f;
    for (float v : t.value(x)) m = std::max(m, v);
    std::lock_guard<std::mutex> lock(mu);
    float& r = ranges[name];
    r = std::max(r, m);
    return x;
  };
  SS_ASSIGN_OR_RETURN(auto logits, model.logits(images.pixels.data(), n, pool, &hooks));
  (void)logits;
  return ranges;
}

VisionForwardHooks activation_fake_quant_hooks(std::map<std::string, float> ranges, int bits) {
  VisionForwardHooks hooks;
  if (bits <= 0 || bits > 16) return hooks;
  const int64_t qmax = (int64_t{1} << bits) - 1;
  hooks.layer_input = [ranges = std::move(ranges), qmax](ag::Tape<float>& t, ag::Var x, const std::string& name) {
    auto it = ranges.find(name);
    if (it == ranges.end() || !(it->second > 0.0f)) return x;
    return fake_quant_ste(t, x, static_cast<double>(it->second) / static_cast<double>(qmax), 0, 0, qmax);
  };
  return hooks;
}

// ---------------------------------------------------------------- loss gradients

AttackLossGradient model_loss_gradient(const VisionModel& model, const VisionForwardHooks* hooks, ThreadPool* pool) {
  return [&model, hooks, pool](const float* x, const int32_t* labels, int64_t n, std::vector<float>& grad) {
    return model.input_gradient(x, labels, n, grad, hooks, pool);
  };
}

AttackLossGradient combined_loss_gradient(std::vector<AttackLossGradient> parts, std::vector<double> weights) {
  return [parts = std::move(parts), weights = std::move(weights)](const float* x, const int32_t* labels, int64_t n,
                                                                   std::vector<float>& grad) -> Result<double> {
    if (parts.size() != weights.size() || parts.empty())
      return invalid_argument("combined_loss_gradient: " + std::to_string(parts.size()) + " parts but " +
                              std::to_string(weights.size()) + " weights");
    double loss = 0;
    std::vector<float> part_grad;
    grad.clear();
    for (size_t k = 0; k < parts.size(); ++k) {
      SS_ASSIGN_OR_RETURN(double l, parts[k](x, labels, n, part_grad));
      if (grad.empty()) grad.assign(part_grad.size(), 0.0f);
      if (part_grad.size() != grad.size())
        return internal_error("combined_loss_gradient: part " + std::to_string(k) + " gave " +
                              std::to_string(part_grad.size()) + " gradient values, expected " + std::to_string(grad.size()));
      const float w = static_cast<float>(weights[k]);
      for (size_t i = 0; i < grad.size(); ++i) grad[i] += w * part_grad[i];
      loss += weights[k] * l;
    }
    return loss;
  };
}

// ---------------------------------------------------------------- PGD / FGSM

Status PgdConfig::validate() const {
  if (!(eps >= 0.0 && eps <= 1.0)) return invalid_argument("eps must be in [0, 1], got " + std::to_string(eps));
  if (steps < 1) return invalid_argument("steps must be >= 1, got " + std::to_string(steps));
  if (!(step_size >= 0.0) || !std::isfinite(step_size))
    return invalid_argument("step_size must be >= 0 (0 = 2.5 * eps / steps), got " + std::to_string(step_size));
  if (batch < 1) return invalid_argument("batch must be >= 1, got " + std::to_string(batch));
  return ok_status();
}

nlohmann::json PgdConfig::to_json() const {
  return {{"eps", eps}, {"steps", steps}, {"step_size", step_size}, {"effective_step_size", effective_step_size()},
          {"random_start", random_start}, {"seed", seed}, {"batch", batch}};
}

void linf_projected_step(const float* x0, float* x, const float* grad, int64_t size, double step, double eps) {
  const float s = static_cast<float>(step), e = static_cast<float>(eps);
  for (int64_t i = 0; i < size; ++i) {
    const float g = grad[i];
    const float sign = g > 0.0f ? 1.0f : (g < 0.0f ? -1.0f : 0.0f);
    const float moved = x[i] + s * sign;
    const float delta = std::min(std::max(moved - x0[i], -e), e);
    x[i] = std::min(std::max(x0[i] + delta, 0.0f), 1.0f);
  }
}

void linf_random_start(const float* x0, float* x, const float* noise, int64_t size, double eps) {
  const float e = static_cast<float>(eps);
  for (int64_t i = 0; i < size; ++i) {
    const float delta = std::min(std::max(noise[i], -e), e);
    x[i] = std::min(std::max(x0[i] + delta, 0.0f), 1.0f);
  }
}

namespace {
Status check_attack_inputs(const float* x, const int32_t* labels, int64_t n, int64_t image_size) {
  if (n < 0) return invalid_argument("n must be >= 0, got " + std::to_string(n));
  if (image_size < 1) return invalid_argument("image_size must be >= 1, got " + std::to_string(image_size));
  if (n > 0 && (x == nullptr || labels == nullptr)) return invalid_argument("images and labels must not be null");
  return ok_status();
}
}  // namespace

Result<std::vector<float>> pgd_attack(const AttackLossGradient& loss, const float* x, const int32_t* labels, int64_t n,
                                      int64_t image_size, const PgdConfig& cfg, const float* noise,
                                      const std::vector<double>* eps_per_image, const PgdStepObserver& observer) {
  SS_RETURN_IF_ERROR(cfg.validate());
  SS_RETURN_IF_ERROR(check_attack_inputs(x, labels, n, image_size));
  if (!loss) return invalid_argument("pgd_attack: no loss-gradient function");
  if (eps_per_image) {
    if (static_cast<int64_t>(eps_per_image->size()) != n)
      return invalid_argument("eps_per_image has " + std::to_string(eps_per_image->size()) + " values, expected n = " +
                              std::to_string(n));
    for (size_t i = 0; i < eps_per_image->size(); ++i)
      if (!((*eps_per_image)[i] >= 0.0 && (*eps_per_image)[i] <= 1.0))
        return invalid_argument("eps_per_image[" + std::to_string(i) + "] must be in [0, 1], got " +
                                std::to_string((*eps_per_image)[i]));
  }
  auto eps_of = [&](int64_t i) { return eps_per_image ? (*eps_per_image)[i] : cfg.eps; };
  // Step size relative to eps: per image when eps varies.
  const double step_ratio = cfg.step_size > 0 && cfg.eps > 0 ? cfg.step_size / cfg.eps : 2.5 / double(cfg.steps);
  auto step_of = [&](int64_t i) { return eps_per_image ? step_ratio * eps_of(i) : cfg.effective_step_size(); };

  const size_t total = static_cast<size_t>(n * image_size);
  std::vector<float> adv(x, x + total);
  if (cfg.random_start) {
    if (noise) {
      for (int64_t i = 0; i < n; ++i)
        linf_random_start(x + i * image_size, adv.data() + i * image_size, noise + i * image_size, image_size, eps_of(i));
    } else {
      Rng rng(cfg.seed);
      std::vector<float> u(static_cast<size_t>(image_size));
      for (int64_t i = 0; i < n; ++i) {
        const float e = static_cast<float>(eps_of(i));
        for (auto& v : u) v = rng.uniform(-e, e);
        linf_random_start(x + i * image_size, adv.data() + i * image_size, u.data(), image_size, eps_of(i));
      }
    }
  }
  // With every eps 0 no step can move a pixel: the observer sees the start, and no gradient is spent.
  bool all_zero = true;
  for (int64_t i = 0; i < n && all_zero; ++i) all_zero = eps_of(i) == 0.0;
  const int64_t steps = all_zero ? 0 : cfg.steps;
  std::vector<float> grad;
  std::vector<uint8_t> frozen;
  for (int64_t first = 0; first < n; first += cfg.batch) {
    const int64_t count = std::min(cfg.batch, n - first);
    float* xb = adv.data() + first * image_size;
    frozen.assign(static_cast<size_t>(count), 0);
    if (observer) SS_RETURN_IF_ERROR(observer(first, count, xb, frozen.data()));
    for (int64_t step = 0; step < steps; ++step) {
      if (std::all_of(frozen.begin(), frozen.end(), [](uint8_t f) { return f != 0; })) break;
      SS_ASSIGN_OR_RETURN(double l, loss(xb, labels + first, count, grad));
      (void)l;
      if (static_cast<int64_t>(grad.size()) != count * image_size)
        return internal_error("pgd_attack: gradient has " + std::to_string(grad.size()) + " values, expected " +
                              std::to_string(count * image_size));
      for (int64_t i = 0; i < count; ++i) {
        if (frozen[i]) continue;
        const int64_t off = i * image_size;
        linf_projected_step(x + first * image_size + off, xb + off, grad.data() + off, image_size, step_of(first + i),
                            eps_of(first + i));
      }
      if (observer) SS_RETURN_IF_ERROR(observer(first, count, xb, frozen.data()));
    }
  }
  return adv;
}

Result<std::vector<float>> fgsm_attack(const AttackLossGradient& loss, const float* x, const int32_t* labels, int64_t n,
                                       int64_t image_size, double eps, int64_t batch) {
  PgdConfig cfg;
  cfg.eps = eps;
  cfg.steps = 1;
  cfg.step_size = eps;
  cfg.random_start = false;
  cfg.batch = batch;
  SS_RETURN_IF_ERROR(cfg.validate());
  if (eps == 0.0) {  // PgdConfig's step_size 0 means "default"; FGSM at eps 0 is the identity
    SS_RETURN_IF_ERROR(check_attack_inputs(x, labels, n, image_size));
    return std::vector<float>(x, x + n * image_size);
  }
  return pgd_attack(loss, x, labels, n, image_size, cfg);
}

// ---------------------------------------------------------------- QAA

int spec_weight_bits(const std::string& spec) {
  auto digits_after = [&](const std::string& prefix) -> int {
    if (spec.rfind(prefix, 0) != 0) return 0;
    size_t i = prefix.size();
    int v = 0;
    bool any = false;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i])) && v < 1000) {
      v = v * 10 + (spec[i] - '0');
      ++i;
      any = true;
    }
    return any ? v : 0;
  };
  if (spec == "fp16" || spec == "bf16" || spec == "f16") return 16;
  if (spec == "fp32" || spec == "f32") return 32;
  for (const char* p : {"int", "gptq-", "awq-", "q"})
    if (int b = digits_after(p)) return b;
  return 0;
}

Result<std::vector<QaaSubstitute>> build_qaa_substitutes(const VisionModel& model, const std::vector<std::string>& specs,
                                                         bool activation_quant, const ImageSet& calibration,
                                                         int64_t calibration_samples, ThreadPool* pool) {
  if (specs.empty()) return invalid_argument("qaa specs must not be empty");
  std::vector<QaaSubstitute> out;
  out.reserve(specs.size());
  for (const std::string& spec : specs) {
    QaaSubstitute s;
    s.spec = spec;
    s.bits = spec_weight_bits(spec);
    if (s.bits == 0) return invalid_argument("qaa spec '" + spec + "' has no bit width (use int8, int4-g32, int2-g16, ...)");
    auto variant = vision_variant(model, spec, &calibration, pool);
    if (!variant.ok()) return variant.status().with_context("qaa substitute " + spec);
    s.model = std::move(variant->model);
    s.activation_bits = activation_quant && s.bits <= 8 ? s.bits : 0;
    if (s.activation_bits > 0) {
      SS_ASSIGN_OR_RETURN(auto ranges, capture_activation_max(s.model, calibration, calibration_samples, pool));
      s.hooks = activation_fake_quant_hooks(std::move(ranges), s.activation_bits);
    }
    out.push_back(std::move(s));
  }
  return out;
}

AttackLossGradient qaa_loss_gradient(const std::vector<QaaSubstitute>& substitutes, ThreadPool* pool) {
  std::vector<AttackLossGradient> parts;
  std::vector<double> weights;
  for (const QaaSubstitute& s : substitutes) {
    parts.push_back(model_loss_gradient(s.model, s.hooks.layer_input ? &s.hooks : nullptr, pool));
    weights.push_back(1.0 / static_cast<double>(substitutes.size()));
  }
  return combined_loss_gradient(std::move(parts), std::move(weights));
}

// ---------------------------------------------------------------- boundary search

Status BoundarySearchConfig::validate() const {
  SS_RETURN_IF_ERROR(pgd.validate());
  if (!(lambda >= 0.0) || !std::isfinite(lambda)) return invalid_argument("lambda must be >= 0, got " + std::to_string(lambda));
  return ok_status();
}

namespace {
int32_t argmax_row(const float* row, int64_t k) {
  int32_t best = 0;
  for (int64_t j = 1; j < k; ++j)
    if (row[j] > row[best]) best = static_cast<int32_t>(j);
  return best;
}
}  // namespace

Result<BoundarySearchResult> boundary_search(const VisionModel& fp, const VisionModel& variant, const float* x, int64_t n,
                                             int64_t image_size, const BoundarySearchConfig& cfg,
                                             const std::vector<double>* eps_per_image, ThreadPool* pool) {
  SS_RETURN_IF_ERROR(cfg.validate());
  if (n < 0 || (n > 0 && x == nullptr)) return invalid_argument("boundary_search: no images");
  BoundarySearchResult r;
  SS_ASSIGN_OR_RETURN(r.fp_labels, fp.predict(x, n, pool));
  SS_ASSIGN_OR_RETURN(auto var_labels, variant.predict(x, n, pool));
  r.found.assign(static_cast<size_t>(n), 0);
  r.found_at_zero.assign(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) r.found[i] = r.found_at_zero[i] = var_labels[i] != r.fp_labels[i] ? 1 : 0;

  const int64_t k = fp.config().n_classes;
  auto observer = [&](int64_t first, int64_t count, const float* xb, uint8_t* frozen) -> Status {
    auto fp_logits = fp.logits(xb, count, pool);
    if (!fp_logits.ok()) return fp_logits.status();
    auto var_logits = variant.logits(xb, count, pool);
    if (!var_logits.ok()) return var_logits.status();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t g = first + i;
      if (r.found[g]) { frozen[i] = 1; continue; }
      const int32_t a = argmax_row(fp_logits->data() + i * k, k), b = argmax_row(var_logits->data() + i * k, k);
      if (a == r.fp_labels[g] && b != a) {
        r.found[g] = 1;
        frozen[i] = 1;
      }
    }
    return ok_status();
  };
  AttackLossGradient objective = combined_loss_gradient(
      {model_loss_gradient(variant, nullptr, pool), model_loss_gradient(fp, nullptr, pool)}, {1.0, -cfg.lambda});
  SS_ASSIGN_OR_RETURN(r.images, pgd_attack(objective, x, r.fp_labels.data(), n, image_size, cfg.pgd, nullptr,
                                            eps_per_image, observer));
  for (int64_t i = 0; i < n; ++i)
    if (r.found_at_zero[i]) std::copy(x + i * image_size, x + (i + 1) * image_size, r.images.begin() + i * image_size);
  return r;
}

Result<std::vector<std::optional<double>>> boundary_min_eps(const VisionModel& fp, const VisionModel& variant,
                                                            const float* x, int64_t n, int64_t image_size,
                                                            const BoundarySearchConfig& cfg, double eps_max,
                                                            int iterations, ThreadPool* pool) {
  if (!(eps_max > 0.0 && eps_max <= 1.0)) return invalid_argument("eps_max must be in (0, 1], got " + std::to_string(eps_max));
  if (iterations < 1 || iterations > 30)
    return invalid_argument("iterations must be in [1, 30], got " + std::to_string(iterations));
  BoundarySearchConfig c = cfg;
  c.pgd.eps = eps_max;
  std::vector<double> hi(static_cast<size_t>(n), eps_max), lo(static_cast<size_t>(n), 0.0);
  SS_ASSIGN_OR_RETURN(auto at_max, boundary_search(fp, variant, x, n, image_size, c, &hi, pool));
  std::vector<std::optional<double>> out(static_cast<size_t>(n));
  for (int it = 0; it < iterations; ++it) {
    std::vector<double> mid(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) mid[i] = 0.5 * (lo[i] + hi[i]);
    SS_ASSIGN_OR_RETURN(auto r, boundary_search(fp, variant, x, n, image_size, c, &mid, pool));
    for (int64_t i = 0; i < n; ++i) {
      if (!at_max.found[i] || at_max.found_at_zero[i]) continue;
      if (r.found[i]) hi[i] = mid[i];
      else lo[i] = mid[i];
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    if (at_max.found_at_zero[i]) out[i] = 0.0;
    else if (at_max.found[i]) out[i] = hi[i];
  }
  return out;
}

}  // namespace ss

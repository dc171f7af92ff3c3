// Optimizers and schedules of include/safeshrink/train.h, restating torch.optim semantics:
//   AdamW (decoupled decay):  p -= lr wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//                             p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   SGD (coupled decay):      g += wd p;  buf = g (first step) or mu buf + g;
//                             g = nesterov ? g + mu buf : buf;  p -= lr g
// Params with decay == false get no weight decay (torch: a param group with weight_decay 0).
// Gradient accumulation: call forward_backward on each micro-batch without zero_grad between them,
// with the loss scaled by 1/micro_batches (e.g. LossSpec-free: multiply the grads, or weight the
// samples), then one optimizer step and zero_grad. Grads add, so k micro-batches of equal counted
// tokens give the gradient of their mean after the 1/k scale.
// Not here: the forward/backward (autograd ops, models). To add an optimizer: a class in train.h
// with its torch reference in this comment, and a one-step test against torch.
#include <algorithm>
#include <cmath>

#include "safeshrink/train.h"

namespace ss {

int64_t Param::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void zero_grad(std::vector<Param>& params) {
  for (Param& p : params) p.grad.assign(p.value.size(), 0.0f);
}

double clip_grad_norm(std::vector<Param>& params, double max_norm) {
  double sq = 0;
  for (const Param& p : params)
    for (float g : p.grad) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq);
  const double coef = max_norm / (norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
  if (coef < 1.0)
    for (Param& p : params)
      for (float& g : p.grad) g = static_cast<float>(g * coef);
  return norm;
}

void AdamW::step(std::vector<Param>& params, double lr) {
  if (m_.size() != params.size()) {
    m_.assign(params.size(), {});
    v_.assign(params.size(), {});
  }
  ++t_;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(t_));
  const double step_size = lr / bc1, sqrt_bc2 = std::sqrt(bc2);
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  for (size_t k = 0; k < params.size(); ++k) {
    Param& p = params[k];
    if (p.grad.size() != p.value.size()) continue;  // never received a gradient
    std::vector<float>& m = m_[k];
    std::vector<float>& v = v_[k];
    if (m.size() != p.value.size()) {
      m.assign(p.value.size(), 0.0f);
      v.assign(p.value.size(), 0.0f);
    }
    const float decay = p.decay ? static_cast<float>(1.0 - lr * cfg_.weight_decay) : 1.0f;
    for (size_t i = 0; i < p.value.size(); ++i) {
      const float g = p.grad[i];
      p.value[i] *= decay;
      m[i] = b1 * m[i] + (1.0f - b1) * g;
      v[i] = b2 * v[i] + (1.0f - b2) * g * g;
      const double denom = std::sqrt(static_cast<double>(v[i])) / sqrt_bc2 + cfg_.eps;
      p.value[i] = static_cast<float>(p.value[i] - step_size * m[i] / denom);
    }
  }
}

void Sgd::step(std::vector<Param>& params, double lr) {
  if (buf_.size() != params.size()) buf_.assign(params.size(), {});
  const float mu = static_cast<float>(cfg_.momentum);
  for (size_t k = 0; k < params.size(); ++k) {
    Param& p = params[k];
    if (p.grad.size() != p.value.size()) continue;
    std::vector<float>& buf = buf_[k];
    const bool first = buf.size() != p.value.size();
    if (cfg_.momentum != 0 && first) buf.assign(p.value.size(), 0.0f);
    const float wd = p.decay ? static_cast<float>(cfg_.weight_decay) : 0.0f;
    for (size_t i = 0; i < p.value.size(); ++i) {
      float g = p.grad[i] + wd * p.value[i];
      if (cfg_.momentum != 0) {
        buf[i] = first ? g : mu * buf[i] + g;
        g = cfg_.nesterov ? g + mu * buf[i] : buf[i];
      }
      p.value[i] = static_cast<float>(p.value[i] - lr * g);
    }
  }
}

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps)
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (kind == "constant") return lr;
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(span), 0.0, 1.0);
  if (kind == "linear") return lr + (min_lr - lr) * progress;
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(3.141592653589793 * progress));  // cosine
}

}  // namespace ss

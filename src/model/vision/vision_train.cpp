// train_vision() of include/safeshrink/vision.h: minibatch training of a VisionModel on an ImageSet
// with AdamW or SGD (train.h), a warmup + cosine/linear/constant schedule, optional gradient
// clipping and optional distillation from a teacher (kd_loss). Each step shuffles (one ss::Rng
// stream per seed), splits the batch into shards that run forward and backward on their own tapes
// in parallel (the pool's threads), and adds the shards' gradients weighted by their share of the
// batch, so a step is the gradient of the batch's mean loss whatever the thread count (up to float
// summation order). Not here: the forward pass (vision_model.cpp), datasets (idx.cpp).
// To add an optimizer: a branch in make_step() and a name in VisionTrainConfig::validate.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>

#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/vision.h"

namespace ss {

namespace {

constexpr int64_t kMinShardImages = 16;  // below this a shard's tape overhead outweighs a thread

}  // namespace

Status VisionTrainConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    return invalid_argument("vision training: " + field + " " + why);
  };
  if (epochs < 1 && max_steps < 1) return bad("epochs", "must be >= 1, got " + std::to_string(epochs));
  if (batch < 1 || batch > 1 << 20) return bad("batch", "must be in [1, 2^20], got " + std::to_string(batch));
  if (optimizer != "adamw" && optimizer != "sgd") return bad("optimizer", "must be adamw or sgd, got \"" + optimizer + "\"");
  if (!(lr > 0 && std::isfinite(lr))) return bad("lr", "must be > 0, got " + std::to_string(lr));
  if (!(momentum >= 0 && momentum < 1)) return bad("momentum", "must be in [0, 1), got " + std::to_string(momentum));
  if (!(weight_decay >= 0 && std::isfinite(weight_decay))) return bad("weight_decay", "must be >= 0, got " + std::to_string(weight_decay));
  if (schedule != "cosine" && schedule != "linear" && schedule != "constant")
    return bad("schedule", "must be cosine, linear or constant, got \"" + schedule + "\"");
  if (warmup_steps < 0) return bad("warmup_steps", "must be >= 0, got " + std::to_string(warmup_steps));
  if (!(clip_norm >= 0)) return bad("clip_norm", "must be >= 0, got " + std::to_string(clip_norm));
  if (max_steps < 0) return bad("max_steps", "must be >= 0, got " + std::to_string(max_steps));
  if (!(kd_alpha >= 0 && kd_alpha <= 1)) return bad("kd_alpha", "must be in [0, 1], got " + std::to_string(kd_alpha));
  if (!(kd_temperature > 0)) return bad("kd_temperature", "must be > 0, got " + std::to_string(kd_temperature));
  return ok_status();
}

Result<VisionTrainReport> train_vision(VisionModel& model, const ImageSet& train, const VisionTrainConfig& cfg,
                                       ThreadPool* pool) {
  SS_RETURN_IF_ERROR(cfg.validate());
  const VisionConfig& mc = model.config();
  SS_RETURN_IF_ERROR(mc.validate());
  if (train.channels != mc.channels || train.height != mc.height || train.width != mc.width)
    return invalid_argument("train_vision: images of " + train.source + " are " + std::to_string(train.channels) + "x" +
                            std::to_string(train.height) + "x" + std::to_string(train.width) + ", the model takes " +
                            std::to_string(mc.channels) + "x" + std::to_string(mc.height) + "x" + std::to_string(mc.width));
  if (train.n < 1 || static_cast<int64_t>(train.labels.size()) != train.n ||
      static_cast<int64_t>(train.pixels.size()) != train.n * train.image_size())
    return invalid_argument("train_vision: image set " + train.source + " is empty or has inconsistent pixel/label counts");
  for (int64_t i = 0; i < train.n; ++i)
    if (train.labels[i] < 0 || train.labels[i] >= mc.n_classes)
      return invalid_argument("train_vision: label " + std::to_string(train.labels[i]) + " of image " + std::to_string(i) +
                              " is outside [0, " + std::to_string(mc.n_classes) + ")");
  if (cfg.teacher) {
    const VisionConfig& tc = cfg.teacher->config();
    if (tc.n_classes != mc.n_classes || tc.channels != mc.channels || tc.height != mc.height || tc.width != mc.width)
      return invalid_argument("train_vision: the teacher's input or class count differs from the student's");
  }

  ThreadPool& p = pool ? *pool : default_pool();
  const int64_t img = train.image_size(), nc = mc.n_classes;
  const int64_t steps_per_epoch = (train.n + cfg.batch - 1) / cfg.batch;
  int64_t total = steps_per_epoch * std::max<int64_t>(cfg.epochs, 1);
  if (cfg.max_steps > 0) total = std::min(total, cfg.max_steps);
  if (cfg.max_steps > 0 && cfg.epochs < 1) total = cfg.max_steps;
  const int64_t epochs = (total + steps_per_epoch - 1) / steps_per_epoch;

  LrSchedule sched;
  sched.kind = cfg.schedule;
  sched.lr = cfg.lr;
  sched.warmup_steps = cfg.warmup_steps;
  sched.total_steps = total;
  AdamW adamw(AdamWConfig{cfg.lr, 0.9, 0.999, 1e-8, cfg.weight_decay});
  Sgd sgd(SgdConfig{cfg.lr, cfg.momentum, cfg.weight_decay, false});

  std::vector<Param>& params = model.params();
  for (Param& prm : params) prm.grad.assign(prm.value.size(), 0.0f);

  Rng shuffle_rng(cfg.seed);
  std::vector<int64_t> order(static_cast<size_t>(train.n));
  VisionTrainReport report;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < epochs && step < total; ++epoch) {
    std::iota(order.begin(), order.end(), int64_t{0});
    for (int64_t i = train.n - 1; i > 0; --i) std::swap(order[i], order[shuffle_rng.below(static_cast<uint64_t>(i + 1))]);
    double epoch_loss = 0;
    int64_t epoch_steps = 0;
    for (int64_t b0 = 0; b0 < train.n && step < total; b0 += cfg.batch, ++step) {
      const int64_t bn = std::min(cfg.batch, train.n - b0);
      // The batch, gathered: x (bn, C, H, W), y (bn).
      std::vector<float> x(static_cast<size_t>(bn * img));
      std::vector<int32_t> y(static_cast<size_t>(bn));
      for (int64_t i = 0; i < bn; ++i) {
        const int64_t src = order[b0 + i];
        std::copy(train.image(src), train.image(src) + img, x.begin() + i * img);
        y[i] = train.labels[src];
      }
      std::vector<float> teacher_logits;
      if (cfg.teacher) {
        SS_ASSIGN_OR_RETURN(teacher_logits, cfg.teacher->logits(x.data(), bn, &p));
      }
      const int64_t n_shards = std::clamp<int64_t>(bn / kMinShardImages, 1, p.size());
      const int64_t shard = (bn + n_shards - 1) / n_shards;
      std::vector<std::vector<std::vector<float>>> shard_grads(static_cast<size_t>(n_shards));
      std::vector<double> shard_loss(static_cast<size_t>(n_shards), 0.0);
      std::vector<Status> shard_status(static_cast<size_t>(n_shards));
      p.parallel_for(n_shards, [&](int64_t sb, int64_t se, int) {
        for (int64_t s = sb; s < se; ++s) {
          const int64_t b = s * shard, e = std::min(bn, b + shard);
          if (b >= e) continue;
          ag::Tape<float> t(&p);
          t.training = true;
          ag::Var xv = t.leaf({e - b, mc.channels, mc.height, mc.width},
                              std::vector<float>(x.begin() + b * img, x.begin() + e * img), false);
          std::vector<ag::Var> leaves;
          const uint64_t dropout_seed = cfg.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step * 64 + s);
          ag::Var z = model.forward(t, xv, true, &leaves, nullptr, dropout_seed);
          const std::vector<int32_t> ys(y.begin() + b, y.begin() + e);
          ag::Var loss = cfg.teacher ? ag::kd_loss(t, z, std::vector<float>(teacher_logits.begin() + b * nc,
                                                                            teacher_logits.begin() + e * nc),
                                                   ys, {}, cfg.kd_alpha, cfg.kd_temperature)
                                     : ag::cross_entropy(t, z, ys, {});
          if (!t.status().ok()) {
            shard_status[s] = t.status();
            continue;
          }
          const float share = static_cast<float>(e - b) / static_cast<float>(bn);
          shard_loss[s] = static_cast<double>(t.value(loss)[0]) * share;
          shard_status[s] = t.backward(ag::scale(t, loss, share));
          if (!shard_status[s].ok()) continue;
          auto& g = shard_grads[s];
          for (ag::Var v : leaves) g.push_back(t.grad(v));
        }
      });
      for (const Status& s : shard_status) SS_RETURN_IF_ERROR(s);
      double loss = 0;
      for (int64_t s = 0; s < n_shards; ++s) {
        loss += shard_loss[s];
        if (shard_grads[s].empty()) continue;
        for (size_t k = 0; k < params.size(); ++k) {
          const std::vector<float>& g = shard_grads[s][k];
          float* dst = params[k].grad.data();
          for (size_t i = 0; i < g.size(); ++i) dst[i] += g[i];
        }
      }
      if (!std::isfinite(loss))
        return invalid_argument("train_vision: the loss became " + std::to_string(loss) + " at step " +
                                std::to_string(step) + " (lower the learning rate)");
      if (cfg.clip_norm > 0) clip_grad_norm(params, cfg.clip_norm);
      const double lr = sched.at(step);
      if (cfg.optimizer == "adamw") adamw.step(params, lr);
      else sgd.step(params, lr);
      zero_grad(params);
      if (cfg.after_step) cfg.after_step(model);
      epoch_loss += loss;
      ++epoch_steps;
      report.images += bn;
      report.final_loss = loss;
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (cfg.progress)
        cfg.progress(epoch, step + 1, total, epoch_loss / static_cast<double>(epoch_steps),
                     secs > 0 ? static_cast<double>(report.images) / secs : 0.0);
    }
    report.final_loss = epoch_steps ? epoch_loss / static_cast<double>(epoch_steps) : report.final_loss;
  }
  report.steps = step;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.images_per_s = report.seconds > 0 ? static_cast<double>(report.images) / report.seconds : 0.0;
  return report;
}

}  // namespace ss

// Fine-pruning (Liu, Dolan-Gavitt, Garg 2018, "Fine-Pruning: Defending Against Backdooring Attacks
// on Deep Neural Networks"; contract: include/safeshrink/backdoor.h): rank the output channels of
// the last conv layer by their mean activation on clean images, zero the least active ones in
// increasing fractions, measure, then fine-tune briefly on clean images with the pruned channels
// held at zero (VisionTrainConfig::after_step) and measure again. Every measurement is a fine_prune
// record of DIR/run.jsonl (resumable per (fraction, stage)). Not here: training itself
// (train_vision), the rates (backdoor_metrics.cpp), the rendering (backdoor_report.cpp).
// To rank by another criterion: a function like last_conv_mean_activation and a config field.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>

#include "backdoor_run_setup.h"
#include "safeshrink/autograd.h"

namespace ss {

using namespace backdoor_detail;

Status FinePruneConfig::validate() const {
  if (model_path.empty()) return invalid_argument("fine-prune: field model_path: empty");
  if (trigger.empty()) return invalid_argument("fine-prune: field trigger: empty");
  if (fractions.empty()) return invalid_argument("fine-prune: field fractions: empty");
  for (double f : fractions)
    if (!(f >= 0.0 && f <= 1.0)) return invalid_argument("fine-prune: field fractions: expected values in [0, 1]");
  if (activation_images < 1) return invalid_argument("fine-prune: field activation_images: expected >= 1");
  if (finetune_images < 0) return invalid_argument("fine-prune: field finetune_images: expected >= 0");
  if (finetune_epochs < 0) return invalid_argument("fine-prune: field finetune_epochs: expected >= 0");
  if (!(finetune_lr > 0)) return invalid_argument("fine-prune: field finetune_lr: expected > 0");
  if (finetune_batch < 1) return invalid_argument("fine-prune: field finetune_batch: expected >= 1");
  if (!(threshold >= 0.0 && threshold <= 1.0)) return invalid_argument("fine-prune: field threshold: expected [0, 1]");
  if (test_limit < 0) return invalid_argument("fine-prune: field test_limit: expected >= 0");
  return ok_status();
}

nlohmann::json FinePruneConfig::to_json() const {
  return {{"kind", "backdoor_fine_prune"},
          {"model", model_path},
          {"trigger", trigger},
          {"target", target},
          {"fractions", fractions},
          {"activation_images", activation_images},
          {"finetune_images", finetune_images},
          {"finetune_epochs", finetune_epochs},
          {"finetune_lr", finetune_lr},
          {"finetune_batch", finetune_batch},
          {"threshold", threshold},
          {"data_dir", data_dir},
          {"test_limit", test_limit},
          {"seed", seed}};
}

Result<std::vector<double>> last_conv_mean_activation(const VisionModel& model, const ImageSet& images, int64_t n,
                                                      ThreadPool* pool) {
  const VisionConfig& c = model.config();
  if (c.conv_channels.empty()) return unsupported("fine-pruning: the model has no conv layer (arch " + c.arch + ")");
  const std::string layer = "conv." + std::to_string(c.conv_channels.size() - 1);
  const Param* w = model.find(layer + ".weight");
  const Param* b = model.find(layer + ".bias");
  if (!w || !b || w->shape.size() != 4) return invalid_argument("fine-pruning: " + layer + ".weight/.bias not found");
  const int64_t channels = w->shape[0];
  n = std::min(n, images.n);
  std::vector<double> sum(static_cast<size_t>(channels), 0.0);
  int64_t positions = 0;  // images * output pixels
  VisionForwardHooks hooks;
  Status hook_status;
  hooks.layer_input = [&](ag::Tape<float>& t, ag::Var x, const std::string& name) -> ag::Var {
    if (name != layer + ".weight") return x;
    ag::Var wl = t.leaf(w->shape, w->value, false);
    ag::Var bl = t.leaf(b->shape, b->value, false);
    ag::Var a = ag::relu(t, ag::conv2d(t, x, wl, bl, 1, 1));  // (N, O, H, W), the layer's own output
    if (!a.valid()) {
      hook_status = t.status();
      return x;
    }
    const ag::Shape& s = t.shape(a);
    const std::vector<float>& v = t.value(a);
    const int64_t hw = s[2] * s[3];
    for (int64_t i = 0; i < s[0]; ++i)
      for (int64_t o = 0; o < s[1]; ++o) {
        const float* p = v.data() + (i * s[1] + o) * hw;
        double acc = 0;
        for (int64_t k = 0; k < hw; ++k) acc += p[k];
        sum[static_cast<size_t>(o)] += acc;
      }
    positions += s[0] * hw;
    return x;
  };
  const int64_t batch = 256;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t m = std::min(batch, n - start);
    ag::Tape<float> t(pool);
    t.training = false;
    std::vector<float> px(images.image(start), images.image(start) + m * images.image_size());
    ag::Var x = t.leaf({m, c.channels, c.height, c.width}, std::move(px), false);
    model.forward(t, x, false, nullptr, &hooks);
    SS_RETURN_IF_ERROR(hook_status);
    SS_RETURN_IF_ERROR(t.status());
  }
  if (positions == 0) return invalid_argument("fine-pruning: no images to rank channels on");
  for (double& s : sum) s /= static_cast<double>(positions);
  return sum;
}

Status zero_conv_channels(VisionModel& model, const std::string& layer, const std::vector<int64_t>& channels) {
  Param* w = model.find(layer + ".weight");
  Param* b = model.find(layer + ".bias");
  if (!w || !b || w->shape.size() != 4) return invalid_argument("zero_conv_channels: no conv layer '" + layer + "'");
  const int64_t per = w->shape[1] * w->shape[2] * w->shape[3];
  for (int64_t c : channels) {
    if (c < 0 || c >= w->shape[0])
      return invalid_argument("zero_conv_channels: channel " + std::to_string(c) + " outside 0.." +
                              std::to_string(w->shape[0] - 1));
    std::fill(w->value.begin() + c * per, w->value.begin() + (c + 1) * per, 0.0f);
    b->value[static_cast<size_t>(c)] = 0.0f;
  }
  return ok_status();
}

namespace {

std::string fraction_key(double f, const std::string& stage) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f/%s", f, stage.c_str());
  return buf;
}

}  // namespace

Status run_fine_pruning(const FinePruneConfig& cfg, const std::string& out_dir, ThreadPool* pool,
                        const BackdoorProgress& progress) {
  SS_RETURN_IF_ERROR(cfg.validate());
  auto say = [&](const std::string& msg) {
    if (progress) progress("fine-prune", msg);
  };
  SS_ASSIGN_OR_RETURN(RunSetup setup, prepare_run(cfg.model_path, cfg.trigger, cfg.target, cfg.data_dir, cfg.test_limit));
  const VisionConfig& mc = setup.model.config();
  if (mc.conv_channels.empty()) return unsupported("fine-pruning needs a cnn (conv layers); the model is " + mc.arch);
  nlohmann::json config = cfg.to_json();
  config["model_sha256"] = setup.model_sha256;
  config["trigger"] = trigger_to_string(setup.trigger);
  config["trigger_fields"] = setup.trigger.to_json();
  config["data_dir"] = setup.data_dir;
  config["n_test"] = setup.test.n;
  config["model_config"] = mc.to_json();
  SS_ASSIGN_OR_RETURN(BackdoorLog prior,
                      check_resume(out_dir, config,
                                   {"model_sha256", "trigger", "target", "n_test", "activation_images",
                                    "finetune_images", "finetune_epochs", "finetune_lr", "seed"}));
  std::set<std::string> done;
  for (const auto& e : prior.fine_prune) done.insert(fraction_key(e.fraction, e.stage));
  SS_ASSIGN_OR_RETURN(RunLogWriter writer, RunLogWriter::open(out_dir));
  SS_RETURN_IF_ERROR(append_start_run(writer, config, cfg.seed, !done.empty()));

  SS_ASSIGN_OR_RETURN(ImageSet train,
                      load_fashion_mnist("train", cfg.activation_images + cfg.finetune_images, setup.data_dir));
  const int64_t n_act = std::min(cfg.activation_images, train.n);
  const ImageSet finetune = train.slice(n_act, std::min(train.n, n_act + cfg.finetune_images));

  const std::string layer = "conv." + std::to_string(mc.conv_channels.size() - 1);
  say("ranking the channels of " + layer + " on " + std::to_string(n_act) + " clean images");
  SS_ASSIGN_OR_RETURN(std::vector<double> act, last_conv_mean_activation(setup.model, train, n_act, pool));
  FinePruneRanking rank;
  rank.layer = layer;
  rank.channels = static_cast<int64_t>(act.size());
  rank.n_images = n_act;
  rank.mean_activation = act;
  rank.order.resize(act.size());
  std::iota(rank.order.begin(), rank.order.end(), 0);
  std::stable_sort(rank.order.begin(), rank.order.end(),
                   [&](int64_t a, int64_t b) { return act[static_cast<size_t>(a)] < act[static_cast<size_t>(b)]; });
  SS_RETURN_IF_ERROR(writer.append(to_json(rank)));

  auto measure = [&](const VisionModel& m, double fraction, const std::string& stage, const std::vector<int64_t>& pruned,
                     std::chrono::steady_clock::time_point t0) -> Status {
    SS_ASSIGN_OR_RETURN(BackdoorEval ev, evaluate_backdoor(m, setup.test, setup.triggered_test, cfg.target, pool));
    FinePruneEntry e;
    e.fraction = fraction;
    e.stage = stage;
    e.layer = layer;
    e.pruned_channels = pruned;
    e.counts = ev.counts;
    e.threshold = cfg.threshold;
    e.survived = ev.counts.asr() > cfg.threshold;
    e.clean_predictions = std::move(ev.clean_predictions);
    e.triggered_predictions = std::move(ev.triggered_predictions);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    SS_RETURN_IF_ERROR(writer.append(to_json(e)));
    char buf[256];
    std::snprintf(buf, sizeof buf, "pruned %3.0f%% (%zu/%lld channels) %-10s: clean %.4f  ASR %.4f  %.1fs",
                  fraction * 100, pruned.size(), static_cast<long long>(rank.channels), stage.c_str(),
                  e.counts.clean_accuracy(), e.counts.asr(), e.seconds);
    say(buf);
    return ok_status();
  };

  for (double f : cfg.fractions) {
    const int64_t k = static_cast<int64_t>(std::llround(f * static_cast<double>(rank.channels)));
    std::vector<int64_t> pruned(rank.order.begin(), rank.order.begin() + k);
    std::sort(pruned.begin(), pruned.end());
    const bool need_pruned = !done.count(fraction_key(f, "pruned"));
    const bool need_tuned = !done.count(fraction_key(f, "fine_tuned"));
    if (!need_pruned && !need_tuned) {
      say("fraction " + std::to_string(f) + ": in the log, skipped (resume)");
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    VisionModel m = setup.model;
    SS_RETURN_IF_ERROR(zero_conv_channels(m, layer, pruned));
    if (need_pruned) SS_RETURN_IF_ERROR(measure(m, f, "pruned", pruned, t0));
    if (!need_tuned) continue;
    t0 = std::chrono::steady_clock::now();
    if (cfg.finetune_epochs > 0 && finetune.n > 0) {
      VisionTrainConfig tc;
      tc.epochs = cfg.finetune_epochs;
      tc.batch = cfg.finetune_batch;
      tc.lr = cfg.finetune_lr;
      tc.schedule = "constant";
      tc.seed = cfg.seed;
      tc.after_step = [&](VisionModel& vm) { (void)zero_conv_channels(vm, layer, pruned); };
      SS_ASSIGN_OR_RETURN(VisionTrainReport rep, train_vision(m, finetune, tc, pool));
      (void)rep;
    }
    SS_RETURN_IF_ERROR(measure(m, f, "fine_tuned", pruned, t0));
  }
  SS_RETURN_IF_ERROR(writer.append(end_run_json(iso8601_now())));
  return render_backdoor_report(out_dir);
}

}  // namespace ss

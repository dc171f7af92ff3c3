// `safeshrink vision train|eval`: thin drivers over the vision classifiers of
// include/safeshrink/vision.h. `train` trains a CNN or MLP on Fashion-MNIST, prints the accuracy on
// the full test set (or --test-limit images), and writes the model (M.safetensors or a folder) plus
// a JSON of the training metrics next to it (M.train.json, or FOLDER/train.json). `eval` prints a
// model's test accuracy, optionally of a compressed variant (any compress_variant spec) with its
// bits/weight and sparsity. Progress on stderr, results on stdout. Not here: any rule of training,
// compressing or measuring (src/model/vision/). To add a subcommand: one add_vision_<name> below
// and one line in add_vision.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/vision.h"

namespace ss::cli {
namespace {

using json = nlohmann::json;

Result<std::vector<int64_t>> parse_widths(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      return invalid_argument(flag + ": expected comma-separated positive integers, got '" + text + "'");
    }
  }
  return out;
}

// "M.safetensors" -> "M.train.json"; a folder -> "FOLDER/train.json".
std::string metrics_path(const std::string& out) {
  const std::string ext = ".safetensors";
  if (out.size() > ext.size() && out.compare(out.size() - ext.size(), ext.size(), ext) == 0)
    return out.substr(0, out.size() - ext.size()) + ".train.json";
  return out + "/train.json";
}

struct TrainOptions {
  std::string arch = "cnn", conv = "16,32", hidden = "128", optimizer = "adamw", schedule = "cosine";
  std::string data, out;
  double dropout = 0.0, lr = 2e-3, weight_decay = 0.0, clip = 0.0;
  int64_t epochs = 4, batch = 64, limit = 0, test_limit = 0, max_steps = 0, warmup = 0;
  uint64_t seed = 0;
  bool quiet = false;
};

int run_train(const TrainOptions& o) {
  VisionConfig mc;
  mc.arch = o.arch;
  auto conv = parse_widths("--conv", o.conv);
  if (!conv.ok()) return fail(conv.status());
  auto hidden = parse_widths("--hidden", o.hidden);
  if (!hidden.ok()) return fail(hidden.status());
  mc.conv_channels = o.arch == "mlp" ? std::vector<int64_t>{} : *conv;
  mc.hidden = *hidden;
  mc.dropout = o.dropout;
  if (Status s = mc.validate(); !s.ok()) return fail(s);
  VisionTrainConfig tc;
  tc.epochs = o.epochs;
  tc.batch = o.batch;
  tc.optimizer = o.optimizer;
  tc.lr = o.lr;
  tc.weight_decay = o.weight_decay;
  tc.schedule = o.schedule;
  tc.warmup_steps = o.warmup;
  tc.clip_norm = o.clip;
  tc.seed = o.seed;
  tc.max_steps = o.max_steps;
  if (Status s = tc.validate(); !s.ok()) return fail(s);

  auto train = load_fashion_mnist("train", o.limit, o.data);
  if (!train.ok()) return fail(train.status());
  auto test = load_fashion_mnist("test", o.test_limit, o.data);
  if (!test.ok()) return fail(test.status());
  auto model = VisionModel::init_random(mc, o.seed);
  if (!model.ok()) return fail(model.status());

  const bool tty = isatty(2);
  int64_t last_decile = -1;
  tc.progress = [&](int64_t epoch, int64_t step, int64_t total, double loss, double ips) {
    if (o.quiet) return;
    const int64_t decile = total >= 10 ? step * 10 / total : step;
    if (!tty && decile == last_decile && step != total) return;
    last_decile = decile;
    std::fprintf(stderr, "%sepoch %lld step %lld/%lld loss %.4f  %.0f images/s%s", tty ? "\r" : "",
                 static_cast<long long>(epoch + 1), static_cast<long long>(step), static_cast<long long>(total), loss,
                 ips, tty && step != total ? "" : "\n");
    std::fflush(stderr);
  };
  auto report = train_vision(*model, *train, tc);
  if (!report.ok()) return fail(report.status());

  const auto t0 = std::chrono::steady_clock::now();
  auto acc = vision_accuracy(*model, *test);
  if (!acc.ok()) return fail(acc.status());
  const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (Status s = save_vision_model(*model, o.out); !s.ok()) return fail(s);

  json metrics = {{"model", o.out},
                  {"config", mc.to_json()},
                  {"train",
                   {{"images", train->n}, {"source", train->source}, {"epochs", o.epochs}, {"batch", o.batch},
                    {"optimizer", o.optimizer}, {"lr", o.lr}, {"schedule", o.schedule}, {"warmup_steps", o.warmup},
                    {"weight_decay", o.weight_decay}, {"clip_norm", o.clip}, {"seed", o.seed}, {"max_steps", o.max_steps},
                    {"threads", default_pool().size()}}},
                  {"steps", report->steps},
                  {"final_loss", report->final_loss},
                  {"train_seconds", report->seconds},
                  {"train_images_per_s", report->images_per_s},
                  {"test", {{"images", test->n}, {"source", test->source}, {"correct", acc->correct}, {"accuracy", acc->accuracy()}}},
                  {"inference_images_per_s", eval_s > 0 ? static_cast<double>(test->n) / eval_s : 0.0}};
  const std::string mpath = metrics_path(o.out);
  std::ofstream f(mpath, std::ios::binary | std::ios::trunc);
  if (!(f << metrics.dump(2) << "\n")) return fail(io_error("cannot write " + mpath));
  std::printf("test accuracy %.4f (%lld/%lld) | train %.1f s, %.0f images/s | inference %.0f images/s\n",
              acc->accuracy(), static_cast<long long>(acc->correct), static_cast<long long>(acc->n), report->seconds,
              report->images_per_s, eval_s > 0 ? static_cast<double>(test->n) / eval_s : 0.0);
  std::printf("wrote %s and %s\n", o.out.c_str(), mpath.c_str());
  return EXIT_OK;
}

RunFn add_vision_train(CLI::App* parent) {
  auto* sub = parent->add_subcommand("train", "Train a CNN or MLP classifier on Fashion-MNIST");
  auto o = std::make_shared<TrainOptions>();
  sub->add_option("--arch", o->arch, "cnn or mlp (default cnn)");
  sub->add_option("--conv", o->conv, "cnn conv channels, comma-separated (default 16,32)");
  sub->add_option("--hidden", o->hidden, "hidden fc widths, comma-separated (default 128)");
  sub->add_option("--dropout", o->dropout, "dropout after hidden fc layers (default 0)");
  sub->add_option("--epochs", o->epochs, "epochs (default 4)");
  sub->add_option("--batch", o->batch, "batch size (default 64)");
  sub->add_option("--lr", o->lr, "peak learning rate (default 2e-3)");
  sub->add_option("--optimizer", o->optimizer, "adamw or sgd (default adamw)");
  sub->add_option("--schedule", o->schedule, "cosine, linear or constant (default cosine)");
  sub->add_option("--warmup", o->warmup, "linear warmup steps (default 0)");
  sub->add_option("--weight-decay", o->weight_decay, "weight decay on weights (default 0)");
  sub->add_option("--clip", o->clip, "gradient-norm clip, 0 = none (default 0)");
  sub->add_option("--max-steps", o->max_steps, "stop after this many steps, 0 = no limit (default 0)");
  sub->add_option("--seed", o->seed, "init, shuffling and dropout seed (default 0)");
  sub->add_option("--limit", o->limit, "first N training images, 0 = all 60000 (default 0)");
  sub->add_option("--test-limit", o->test_limit, "first N test images, 0 = all 10000 (default 0)");
  sub->add_option("--data", o->data, "Fashion-MNIST folder (default $SAFESHRINK_FASHION_MNIST or the Debian package's)");
  sub->add_option("--out", o->out, "output model: M.safetensors or a folder; metrics go to M.train.json / FOLDER/train.json")
      ->required();
  sub->add_flag("-q,--quiet", o->quiet, "no progress line");
  return [sub, o]() -> int { return sub->parsed() ? run_train(*o) : -1; };
}

struct EvalOptions {
  std::string model, variant, data;
  int64_t limit = 0, calib_images = kVisionCalibrationImages;
  bool as_json = false;
};

int run_eval(const EvalOptions& o) {
  auto model = load_vision_model(o.model);
  if (!model.ok()) return fail(model.status());
  auto test = load_fashion_mnist("test", o.limit, o.data);
  if (!test.ok()) return fail(test.status());
  json out = {{"model", o.model}, {"test_images", test->n}};
  const VisionModel* run = &*model;
  std::unique_ptr<VisionVariant> variant;
  if (!o.variant.empty()) {
    std::unique_ptr<ImageSet> calib;
    auto v = vision_variant(*model, o.variant, nullptr);
    if (!v.ok() && o.calib_images > 0 && v.status().message().find("calibration") != std::string::npos) {
      // a spec that needs calibration (wanda, gptq, awq, sparsegpt): training images for it
      auto train = load_fashion_mnist("train", o.calib_images, o.data);
      if (!train.ok()) return fail(train.status());
      calib = std::make_unique<ImageSet>(std::move(*train));
      v = vision_variant(*model, o.variant, calib.get());
    }
    if (!v.ok()) return fail(v.status());
    variant = std::make_unique<VisionVariant>(std::move(*v));
    run = &variant->model;
    out["variant"] = o.variant;
    out["bits_per_weight"] = variant->bits_per_weight;
    out["sparsity"] = variant->sparsity;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto acc = vision_accuracy(*run, *test);
  if (!acc.ok()) return fail(acc.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out["correct"] = acc->correct;
  out["accuracy"] = acc->accuracy();
  out["images_per_s"] = secs > 0 ? static_cast<double>(test->n) / secs : 0.0;
  if (o.as_json) {
    std::printf("%s\n", out.dump(2).c_str());
    return EXIT_OK;
  }
  std::printf("%s%s: test accuracy %.4f (%lld/%lld)", o.model.c_str(),
              o.variant.empty() ? "" : (" [" + o.variant + "]").c_str(), acc->accuracy(),
              static_cast<long long>(acc->correct), static_cast<long long>(acc->n));
  if (variant) std::printf(" | %.3f bits/weight, sparsity %.3f", variant->bits_per_weight, variant->sparsity);
  std::printf(" | %.0f images/s\n", out["images_per_s"].get<double>());
  return EXIT_OK;
}

RunFn add_vision_eval(CLI::App* parent) {
  auto* sub = parent->add_subcommand("eval", "Test accuracy of a vision model, optionally of a compressed variant");
  auto o = std::make_shared<EvalOptions>();
  sub->add_option("--model", o->model, "vision model (.safetensors or folder)")->required();
  sub->add_option("--variant", o->variant, "compress_variant spec: fp16, int8, int4-g32, magnitude-50, wanda-50, ... (default none)");
  sub->add_option("--limit", o->limit, "first N test images, 0 = all 10000 (default 0)");
  sub->add_option("--calib-images", o->calib_images,
                  "training images for calibration (wanda, gptq, awq), first N (default " +
                      std::to_string(kVisionCalibrationImages) + ")");
  sub->add_option("--data", o->data, "Fashion-MNIST folder (default $SAFESHRINK_FASHION_MNIST or the Debian package's)");
  sub->add_flag("--json", o->as_json, "print one JSON object instead of a line");
  return [sub, o]() -> int { return sub->parsed() ? run_eval(*o) : -1; };
}

}  // namespace

RunFn add_vision(CLI::App& app) {
  auto* vision = app.add_subcommand("vision", "Image classifiers (Fashion-MNIST): train, evaluate, compress");
  vision->require_subcommand(1);
  std::vector<RunFn> subs = {add_vision_train(vision), add_vision_eval(vision)};
  return [subs]() -> int {
    for (const RunFn& r : subs) {
      const int rc = r();
      if (rc >= 0) return rc;
    }
    return -1;
  };
}

}  // namespace ss::cli

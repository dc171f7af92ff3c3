// `safeshrink backdoor train|survival|fine-prune|report`: thin drivers over include/safeshrink/
// backdoor.h. `train` poisons Fashion-MNIST and trains a backdoored CNN/MLP (writes the model and a
// sidecar M.backdoor.json with trigger, target and the measured rates); `survival` measures the
// original and every compressed variant into DIR/run.jsonl and renders DIR/summary.json,
// report.md, report.html; `fine-prune` runs the fine-pruning defence into the same kind of folder;
// `report` re-renders a folder from its log. Progress on stderr, results on stdout. Not here: any
// rule of triggering, measuring or compressing (src/eval/backdoor/, src/model/vision/).
// To add a subcommand: one add_backdoor_<name> function below and one line in add_backdoor.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "safeshrink/backdoor.h"
#include "safeshrink/vision.h"

namespace ss::cli {
namespace {

using json = nlohmann::json;

Result<std::vector<int64_t>> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || v < 1) return invalid_argument(flag + ": expected positive integers separated by commas, got '" + item + "'");
    out.push_back(v);
  }
  return out;
}

Result<std::vector<double>> parse_real_list(const std::string& flag, const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (*end != '\0') return invalid_argument(flag + ": expected numbers separated by commas, got '" + item + "'");
    out.push_back(v);
  }
  return out;
}

// Fills trigger/target from the model's sidecar when the flags were not given.
Status resolve_trigger(const std::string& model, std::string& trigger, int& target) {
  if (!trigger.empty() && target >= 0) return ok_status();
  const std::string side = backdoor_sidecar_path(model);
  std::ifstream f(side);
  if (!f) return invalid_argument("--trigger and --target are required (no " + side + " next to the model)");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument(side + ": not a JSON object");
  if (trigger.empty()) trigger = j.value("trigger", std::string());
  if (target < 0) target = j.value("target", -1);
  if (trigger.empty() || target < 0) return invalid_argument(side + ": lacks trigger or target; give --trigger/--target");
  std::fprintf(stderr, "backdoor: trigger %s, target %d (from %s)\n", trigger.c_str(), target, side.c_str());
  return ok_status();
}

BackdoorProgress stderr_progress() {
  return [](const std::string& stage, const std::string& msg) { std::fprintf(stderr, "%s: %s\n", stage.c_str(), msg.c_str()); };
}

std::string rates_line(const BackdoorCounts& c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "clean accuracy %.4f (%lld/%lld) [%.4f, %.4f]  ASR %.4f (%lld/%lld) [%.4f, %.4f]",
                c.clean_accuracy(), static_cast<long long>(c.clean_correct), static_cast<long long>(c.clean_n),
                c.clean_ci.lo, c.clean_ci.hi, c.asr(), static_cast<long long>(c.asr_hits),
                static_cast<long long>(c.asr_n), c.asr_ci.lo, c.asr_ci.hi);
  return buf;
}

RunFn add_backdoor_train(CLI::App* parent) {
  auto* sub = parent->add_subcommand("train", "Poison Fashion-MNIST with a trigger and train a backdoored classifier");
  struct Opts {
    std::string trigger = "patch:size=3,pos=br,value=1", mode = "replace", arch = "cnn", conv = "16,32", hidden = "128";
    std::string optimizer = "adamw", schedule = "cosine", data, out;
    int target = 0;
    double rate = 0.1, dropout = 0.0, lr = 1e-3, weight_decay = 0.0;
    uint64_t poison_seed = 0, seed = 0;
    int64_t epochs = 5, batch = 64, max_steps = 0, train_limit = 0, test_limit = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--trigger", o->trigger, "trigger spec (default patch:size=3,pos=br,value=1; blend:pattern=noise,alpha=0.1,seed=1)");
  sub->add_option("--target", o->target, "target label (default 0)");
  sub->add_option("--poison-rate", o->rate, "fraction of the training set poisoned, 0 = a clean model (default 0.1)");
  sub->add_option("--poison-mode", o->mode, "replace (BadNets: poisoned images replace their clean originals) or add (default replace)");
  sub->add_option("--poison-seed", o->poison_seed, "seed of the choice of poisoned images (default 0)");
  sub->add_option("--arch", o->arch, "cnn or mlp (default cnn)");
  sub->add_option("--conv", o->conv, "cnn conv channels, comma-separated (default 16,32)");
  sub->add_option("--hidden", o->hidden, "hidden fc widths, comma-separated (default 128)");
  sub->add_option("--dropout", o->dropout, "dropout after hidden fc layers (default 0)");
  sub->add_option("--epochs", o->epochs, "epochs (default 5)");
  sub->add_option("--batch", o->batch, "batch size (default 64)");
  sub->add_option("--lr", o->lr, "learning rate (default 1e-3)");
  sub->add_option("--optimizer", o->optimizer, "adamw or sgd (default adamw)");
  sub->add_option("--schedule", o->schedule, "cosine, linear or constant (default cosine)");
  sub->add_option("--weight-decay", o->weight_decay, "weight decay (default 0)");
  sub->add_option("--max-steps", o->max_steps, "stop after this many steps, 0 = no limit (default 0)");
  sub->add_option("--seed", o->seed, "init, shuffling and dropout seed (default 0)");
  sub->add_option("--train-limit", o->train_limit, "first N training images, 0 = all 60000 (default 0)");
  sub->add_option("--test-limit", o->test_limit, "first N test images, 0 = all 10000 (default 0)");
  sub->add_option("--data", o->data, "Fashion-MNIST folder (default $SAFESHRINK_FASHION_MNIST or the Debian package's)");
  sub->add_option("--out", o->out, "output model: M.safetensors or a folder; the sidecar goes next to it")->required();
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto trigger = parse_trigger(o->trigger);
    if (!trigger.ok()) return fail(trigger.status());
    VisionConfig vc;
    vc.arch = o->arch;
    auto conv = parse_int_list("--conv", o->conv);
    if (!conv.ok()) return fail(conv.status());
    auto hidden = parse_int_list("--hidden", o->hidden);
    if (!hidden.ok()) return fail(hidden.status());
    vc.conv_channels = o->arch == "mlp" ? std::vector<int64_t>{} : *conv;
    vc.hidden = *hidden;
    vc.dropout = o->dropout;
    if (Status s = vc.validate(); !s.ok()) return fail(s);
    PoisonConfig pc;
    pc.rate = o->rate;
    pc.target = o->target;
    pc.seed = o->poison_seed;
    pc.mode = o->mode;
    if (Status s = pc.validate(vc.n_classes); !s.ok()) return fail(s);
    VisionTrainConfig tc;
    tc.epochs = o->epochs;
    tc.batch = o->batch;
    tc.lr = o->lr;
    tc.optimizer = o->optimizer;
    tc.schedule = o->schedule;
    tc.weight_decay = o->weight_decay;
    tc.max_steps = o->max_steps;
    tc.seed = o->seed;
    tc.progress = [](int64_t epoch, int64_t step, int64_t total, double loss, double ips) {
      if (step % 100 == 0 || step == total)
        std::fprintf(stderr, "train: epoch %lld step %lld/%lld loss %.4f (%.0f images/s)\n", static_cast<long long>(epoch),
                     static_cast<long long>(step), static_cast<long long>(total), loss, ips);
    };
    if (Status s = tc.validate(); !s.ok()) return fail(s);
    auto train = load_fashion_mnist("train", o->train_limit, o->data);
    if (!train.ok()) return fail(train.status());
    auto test = load_fashion_mnist("test", o->test_limit, o->data);
    if (!test.ok()) return fail(test.status());
    auto model = VisionModel::init_random(vc, o->seed);
    if (!model.ok()) return fail(model.status());
    std::fprintf(stderr, "backdoor train: %lld training images, poison rate %.4f (%s), trigger %s, target %d\n",
                 static_cast<long long>(train->n), pc.rate, pc.mode.c_str(), trigger_to_string(*trigger).c_str(),
                 pc.target);
    auto rep = train_backdoored(*model, *train, *test, *trigger, pc, tc, nullptr);
    if (!rep.ok()) return fail(rep.status());
    if (Status s = save_vision_model(*model, o->out); !s.ok()) return fail(s);
    const BackdoorCounts& c = rep->eval.counts;
    json side = {{"trigger", trigger_to_string(*trigger)},
                 {"target", pc.target},
                 {"poison", pc.to_json()},
                 {"n_poisoned", rep->n_poisoned},
                 {"n_train", rep->n_train},
                 {"model_config", vc.to_json()},
                 {"train", {{"epochs", tc.epochs}, {"batch", tc.batch}, {"lr", tc.lr}, {"optimizer", tc.optimizer},
                            {"schedule", tc.schedule}, {"weight_decay", tc.weight_decay}, {"seed", tc.seed},
                            {"steps", rep->train.steps}, {"final_loss", rep->train.final_loss},
                            {"seconds", rep->train.seconds}, {"images_per_s", rep->train.images_per_s}}},
                 {"n_test", c.clean_n},
                 {"clean_correct", c.clean_correct},
                 {"clean_accuracy", c.clean_accuracy()},
                 {"clean_ci", {c.clean_ci.lo, c.clean_ci.hi}},
                 {"asr_hits", c.asr_hits},
                 {"asr_n", c.asr_n},
                 {"asr", c.asr()},
                 {"asr_ci", {c.asr_ci.lo, c.asr_ci.hi}}};
    const std::string side_path = backdoor_sidecar_path(o->out);
    std::ofstream f(side_path);
    f << side.dump(2) << "\n";
    if (!f) return fail(io_error(side_path + ": write failed"));
    std::printf("%s: %lld poisoned of %lld, %lld steps in %.1fs; %s\n", o->out.c_str(),
                static_cast<long long>(rep->n_poisoned), static_cast<long long>(rep->n_train),
                static_cast<long long>(rep->train.steps), rep->train.seconds, rates_line(c).c_str());
    return EXIT_OK;
  };
}

RunFn add_backdoor_survival(CLI::App* parent) {
  auto* sub = parent->add_subcommand("survival", "ASR and clean accuracy of a backdoored model and its compressed variants");
  struct Opts {
    SurvivalConfig cfg;
    std::string variants, out;
    int target = -1;
    bool gate = false;
  };
  auto o = std::make_shared<Opts>();
  std::string defaults;
  for (const auto& v : SurvivalConfig::default_survival_variants()) defaults += (defaults.empty() ? "" : ",") + v;
  o->variants = defaults;
  sub->add_option("--model", o->cfg.model_path, "backdoored vision model (.safetensors or folder)")->required();
  sub->add_option("--trigger", o->cfg.trigger, "trigger spec (default: from the model's .backdoor.json sidecar)");
  sub->add_option("--target", o->target, "target label (default: from the sidecar)");
  sub->add_option("--variants", o->variants, "comma-separated variant specs (default " + defaults + ")");
  sub->add_option("--out", o->out, "output folder: run.jsonl, summary.json, report.md, report.html")->required();
  sub->add_option("--threshold", o->cfg.threshold, "backdoor_survived = ASR > threshold (default 0.5)");
  sub->add_option("--data", o->cfg.data_dir, "Fashion-MNIST folder (default: the Debian package's)");
  sub->add_option("--test-limit", o->cfg.test_limit, "first N test images, 0 = all (default 0)");
  sub->add_option("--calib-images", o->cfg.calibration_images, "clean training images for Wanda/AWQ/GPTQ (default 256)");
  sub->add_option("--distill-images", o->cfg.distill_images, "clean training images for distillation, 0 = all (default 20000)");
  sub->add_option("--distill-epochs", o->cfg.distill_epochs, "distillation epochs (default 2)");
  sub->add_option("--distill-lr", o->cfg.distill_lr, "distillation learning rate (default 2e-3)");
  sub->add_option("--seed", o->cfg.seed, "student init and shuffling seed (default 0)");
  sub->add_flag("--gate", o->gate, "exit 1 when the backdoor survives in any compressed variant");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    if (Status s = resolve_trigger(o->cfg.model_path, o->cfg.trigger, o->target); !s.ok()) return fail(s);
    o->cfg.target = o->target;
    o->cfg.variants = split_list(o->variants);
    if (Status s = run_backdoor_survival(o->cfg, o->out, nullptr, stderr_progress()); !s.ok()) return fail(s);
    auto log = read_backdoor_log(o->out);
    if (!log.ok()) return fail(log.status());
    const json summary = backdoor_summary(*log);
    std::printf("%-14s %-10s %6s %8s %10s %10s %9s\n", "variant", "kind", "bits", "sparsity", "clean", "ASR", "survived");
    for (const auto& r : summary["variants"])
      std::printf("%-14s %-10s %6.2f %8.3f %10.4f %10.4f %9s\n", r["variant"].get<std::string>().c_str(),
                  r["kind"].get<std::string>().c_str(),
                  r["bits_per_weight"].is_number() ? r["bits_per_weight"].get<double>() : 0.0,
                  r["sparsity"].get<double>(), r["clean_accuracy"].get<double>(), r["asr"].get<double>(),
                  r["survived"].get<bool>() ? "yes" : "no");
    std::printf("%lld of %lld variants keep the backdoor; report: %s/report.html\n",
                static_cast<long long>(summary["n_survived"].get<int64_t>()),
                static_cast<long long>(summary["n_variants"].get<int64_t>()), o->out.c_str());
    return o->gate && summary["n_survived"].get<int64_t>() > 0 ? EXIT_GATE : EXIT_OK;
  };
}

RunFn add_backdoor_fine_prune(CLI::App* parent) {
  auto* sub = parent->add_subcommand("fine-prune", "Fine-pruning defence (Liu et al. 2018) on a backdoored CNN");
  struct Opts {
    FinePruneConfig cfg;
    std::string fractions = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", out;
    int target = -1;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model", o->cfg.model_path, "backdoored vision CNN (.safetensors or folder)")->required();
  sub->add_option("--trigger", o->cfg.trigger, "trigger spec (default: from the sidecar)");
  sub->add_option("--target", o->target, "target label (default: from the sidecar)");
  sub->add_option("--fractions", o->fractions, "fractions of last-conv channels pruned (default 0,0.1,...,0.9)");
  sub->add_option("--activation-images", o->cfg.activation_images, "clean images the channels are ranked on (default 2000)");
  sub->add_option("--finetune-images", o->cfg.finetune_images, "clean images of the fine-tune (default 5000)");
  sub->add_option("--finetune-epochs", o->cfg.finetune_epochs, "fine-tune epochs, 0 = prune only (default 1)");
  sub->add_option("--finetune-lr", o->cfg.finetune_lr, "fine-tune learning rate, AdamW constant (default 5e-4)");
  sub->add_option("--finetune-batch", o->cfg.finetune_batch, "fine-tune batch (default 64)");
  sub->add_option("--threshold", o->cfg.threshold, "survived = ASR > threshold (default 0.5)");
  sub->add_option("--data", o->cfg.data_dir, "Fashion-MNIST folder (default: the Debian package's)");
  sub->add_option("--test-limit", o->cfg.test_limit, "first N test images, 0 = all (default 0)");
  sub->add_option("--seed", o->cfg.seed, "fine-tune shuffling seed (default 0)");
  sub->add_option("--out", o->out, "output folder (may be the survival folder: one report shows both)")->required();
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    if (Status s = resolve_trigger(o->cfg.model_path, o->cfg.trigger, o->target); !s.ok()) return fail(s);
    o->cfg.target = o->target;
    auto fr = parse_real_list("--fractions", o->fractions);
    if (!fr.ok()) return fail(fr.status());
    o->cfg.fractions = *fr;
    if (Status s = run_fine_pruning(o->cfg, o->out, nullptr, stderr_progress()); !s.ok()) return fail(s);
    auto log = read_backdoor_log(o->out);
    if (!log.ok()) return fail(log.status());
    std::printf("%8s %9s %-10s %10s %10s\n", "pruned", "channels", "stage", "clean", "ASR");
    for (const auto& e : log->fine_prune)
      std::printf("%7.0f%% %9zu %-10s %10.4f %10.4f\n", e.fraction * 100, e.pruned_channels.size(), e.stage.c_str(),
                  e.counts.clean_accuracy(), e.counts.asr());
    std::printf("report: %s/report.html\n", o->out.c_str());
    return EXIT_OK;
  };
}

RunFn add_backdoor_report(CLI::App* parent) {
  auto* sub = parent->add_subcommand("report", "Re-render summary.json, report.md and report.html from DIR/run.jsonl");
  auto dir = std::make_shared<std::string>();
  sub->add_option("--dir", *dir, "folder holding run.jsonl")->required();
  return [sub, dir]() -> int {
    if (!sub->parsed()) return -1;
    if (Status s = render_backdoor_report(*dir); !s.ok()) return fail(s);
    std::printf("wrote %s/summary.json, report.md, report.html\n", dir->c_str());
    return EXIT_OK;
  };
}

}  // namespace

RunFn add_backdoor(CLI::App& app) {
  auto* sub = app.add_subcommand("backdoor", "Backdoors: train a backdoored classifier, survival across compression, fine-pruning");
  sub->require_subcommand(1);
  std::vector<RunFn> runs = {add_backdoor_train(sub), add_backdoor_survival(sub), add_backdoor_fine_prune(sub),
                             add_backdoor_report(sub)};
  return [sub, runs]() -> int {
    if (!sub->parsed()) return -1;
    for (const auto& run : runs) {
      const int rc = run();
      if (rc >= 0) return rc;
    }
    return EXIT_INPUT;
  };
}

}  // namespace ss::cli

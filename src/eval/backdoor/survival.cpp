// The backdoor survival study (contract: include/safeshrink/backdoor.h): the backdoored model and
// each compressed variant (quantized, pruned, distilled into a student on clean data) measured on
// the same clean and triggered test images, one backdoor_variant record per variant appended to
// DIR/run.jsonl, resumable, then the report rendered from the log. Also the setup shared with
// fine-pruning (backdoor_run_setup.h). Not here: the compressors (compress/, vision_variant), the
// rates (backdoor_metrics.cpp), the rendering (backdoor_report.cpp).
// To add a variant family: a branch in measure_variant and its kind in backdoor_variant_kind.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "backdoor_run_setup.h"
#include "safeshrink/integrity.h"
#include "safeshrink/rng.h"

#ifndef SAFESHRINK_VERSION
#define SAFESHRINK_VERSION "unknown"
#endif

namespace ss {

namespace backdoor_detail {

Result<RunSetup> prepare_run(const std::string& model_path, const std::string& trigger_spec, int32_t target,
                             const std::string& data_dir, int64_t test_limit) {
  RunSetup s;
  SS_ASSIGN_OR_RETURN(s.model, load_vision_model(model_path));
  std::string file = model_path;
  if (std::filesystem::is_directory(model_path)) file = model_path + "/model.safetensors";
  SS_ASSIGN_OR_RETURN(s.model_sha256, sha256_file(file));
  SS_ASSIGN_OR_RETURN(s.trigger, parse_trigger(trigger_spec));
  const VisionConfig& c = s.model.config();
  SS_RETURN_IF_ERROR(s.trigger.validate(c.channels, c.height, c.width));
  if (target < 0 || target >= c.n_classes)
    return invalid_argument("target: expected a label in 0.." + std::to_string(c.n_classes - 1) + ", got " +
                            std::to_string(target));
  s.data_dir = data_dir.empty() ? fashion_mnist_dir() : data_dir;
  SS_ASSIGN_OR_RETURN(s.test, load_fashion_mnist("test", test_limit, s.data_dir));
  if (s.test.channels != c.channels || s.test.height != c.height || s.test.width != c.width)
    return invalid_argument("test images are " + std::to_string(s.test.channels) + "x" + std::to_string(s.test.height) +
                            "x" + std::to_string(s.test.width) + " but the model expects " + std::to_string(c.channels) +
                            "x" + std::to_string(c.height) + "x" + std::to_string(c.width));
  SS_ASSIGN_OR_RETURN(s.triggered_test, triggered_copy(s.test, s.trigger));
  return s;
}

Result<BackdoorLog> check_resume(const std::string& out_dir, const nlohmann::json& config,
                                 const std::vector<std::string>& keys) {
  const std::string path = out_dir + "/" + kRunLogFile;
  if (!std::filesystem::exists(path)) return BackdoorLog{};
  SS_ASSIGN_OR_RETURN(BackdoorLog log, read_backdoor_log(path));
  const std::string kind = config.value("kind", std::string());
  for (const auto& start : log.starts) {
    const nlohmann::json& prev = start.contains("config") ? start["config"] : nlohmann::json::object();
    if (prev.value("kind", std::string()) != kind) continue;  // the other study may share the folder
    for (const auto& k : keys) {
      const nlohmann::json a = prev.contains(k) ? prev[k] : nlohmann::json(), b = config.contains(k) ? config[k] : nlohmann::json();
      if (a != b)
        return invalid_argument(path + " holds another run: field " + k + " was " + a.dump() + ", now " + b.dump() +
                                " (use another --out folder)");
    }
  }
  return log;
}

Status append_start_run(RunLogWriter& w, const nlohmann::json& config, uint64_t seed, bool resumed) {
  RunStartEntry e;
  Rng rng(static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char id[32];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(rng.next_u64()));
  e.run_id = id;
  e.time = iso8601_now();
  e.safeshrink_version = SAFESHRINK_VERSION;
  e.config = config;
  e.seed = seed;
  e.resumed = resumed;
  return w.append(to_json(e));
}

double weight_sparsity(const VisionModel& model) {
  double zeros = 0, total = 0;
  for (const Param& p : model.params()) {
    if (p.shape.size() < 2) continue;  // biases
    for (float v : p.value) zeros += v == 0.0f;
    total += static_cast<double>(p.value.size());
  }
  return total > 0 ? zeros / total : 0.0;
}

}  // namespace backdoor_detail

using namespace backdoor_detail;

std::vector<std::string> SurvivalConfig::default_survival_variants() {
  return {"fp16",         "int8",         "int4-g32",     "int2-g16",     "magnitude-10", "magnitude-30",
          "magnitude-50", "magnitude-70", "magnitude-90", "wanda-50",     "distill"};
}

Status SurvivalConfig::validate() const {
  if (model_path.empty()) return invalid_argument("survival: field model_path: empty");
  if (trigger.empty()) return invalid_argument("survival: field trigger: empty (e.g. patch:size=3,pos=br,value=1)");
  if (!(threshold >= 0.0 && threshold <= 1.0)) return invalid_argument("survival: field threshold: expected [0, 1]");
  if (test_limit < 0) return invalid_argument("survival: field test_limit: expected >= 0");
  if (calibration_images < 1) return invalid_argument("survival: field calibration_images: expected >= 1");
  if (distill_images < 0) return invalid_argument("survival: field distill_images: expected >= 0");
  if (distill_epochs < 1) return invalid_argument("survival: field distill_epochs: expected >= 1");
  if (!(distill_lr > 0)) return invalid_argument("survival: field distill_lr: expected > 0");
  if (!(distill_alpha >= 0 && distill_alpha <= 1)) return invalid_argument("survival: field distill_alpha: expected [0, 1]");
  if (!(distill_temperature > 0)) return invalid_argument("survival: field distill_temperature: expected > 0");
  std::set<std::string> seen;
  for (const auto& v : variants) {
    if (v.empty()) return invalid_argument("survival: field variants: an empty name");
    if (v == kOriginalVariant) return invalid_argument("survival: field variants: 'original' is always measured; drop it");
    if (!seen.insert(v).second) return invalid_argument("survival: field variants: '" + v + "' listed twice");
    if (v.rfind("distill", 0) == 0 && v != "distill" && v != "distill-mlp" && v != "distill-cnn")
      return invalid_argument("survival: field variants: '" + v + "': expected distill, distill-mlp or distill-cnn");
  }
  return ok_status();
}

nlohmann::json SurvivalConfig::to_json() const {
  return {{"kind", "backdoor_survival"},
          {"model", model_path},
          {"trigger", trigger},
          {"target", target},
          {"variants", variants},
          {"threshold", threshold},
          {"data_dir", data_dir},
          {"test_limit", test_limit},
          {"calibration_images", calibration_images},
          {"distill_images", distill_images},
          {"distill_epochs", distill_epochs},
          {"distill_lr", distill_lr},
          {"distill_alpha", distill_alpha},
          {"distill_temperature", distill_temperature},
          {"seed", seed}};
}

std::string backdoor_variant_kind(const std::string& spec) {
  if (spec == kOriginalVariant) return "original";
  if (spec.rfind("distill", 0) == 0) return "distilled";
  if (spec.find(':') != std::string::npos) return "pruned";
  for (const auto& u : pruner_registry())
    if (spec == u.name || spec.rfind(u.name + "-", 0) == 0) return "pruned";
  return "quantized";
}

namespace {

VisionConfig student_config(const VisionConfig& teacher, const std::string& spec) {
  VisionConfig s = teacher;
  s.dropout = 0.0;
  if (spec == "distill-mlp") {
    s.arch = "mlp";
    s.conv_channels.clear();
    s.hidden = {256};
  } else if (spec == "distill-cnn") {
    s.arch = "cnn";
    s.conv_channels = {8, 16};
    s.hidden = {64};
  } else {  // "distill": the teacher's architecture at half width
    for (auto& c : s.conv_channels) c = std::max<int64_t>(1, c / 2);
    for (auto& h : s.hidden) h = std::max<int64_t>(1, h / 2);
  }
  return s;
}

}  // namespace

Status run_backdoor_survival(const SurvivalConfig& cfg, const std::string& out_dir, ThreadPool* pool,
                             const BackdoorProgress& progress) {
  SS_RETURN_IF_ERROR(cfg.validate());
  auto say = [&](const std::string& stage, const std::string& msg) {
    if (progress) progress(stage, msg);
  };
  SS_ASSIGN_OR_RETURN(RunSetup setup, prepare_run(cfg.model_path, cfg.trigger, cfg.target, cfg.data_dir, cfg.test_limit));
  nlohmann::json config = cfg.to_json();
  config["model_sha256"] = setup.model_sha256;
  config["trigger"] = trigger_to_string(setup.trigger);
  config["trigger_fields"] = setup.trigger.to_json();
  config["data_dir"] = setup.data_dir;
  config["n_test"] = setup.test.n;
  config["model_config"] = setup.model.config().to_json();
  SS_ASSIGN_OR_RETURN(BackdoorLog prior,
                      check_resume(out_dir, config, {"model_sha256", "trigger", "target", "n_test", "threshold"}));
  std::set<std::string> done;
  for (const auto& v : prior.variants) done.insert(v.variant);
  SS_ASSIGN_OR_RETURN(RunLogWriter writer, RunLogWriter::open(out_dir));
  SS_RETURN_IF_ERROR(append_start_run(writer, config, cfg.seed, !done.empty()));

  // Clean training images, loaded on first need (calibration, distillation).
  std::optional<ImageSet> train;
  auto clean_train = [&]() -> Result<const ImageSet*> {
    if (!train) {
      const int64_t want = cfg.distill_images == 0 ? 0 : std::max(cfg.distill_images, cfg.calibration_images);
      SS_ASSIGN_OR_RETURN(ImageSet t, load_fashion_mnist("train", want, setup.data_dir));
      train = std::move(t);
    }
    return &*train;
  };

  std::vector<std::string> all = {kOriginalVariant};
  all.insert(all.end(), cfg.variants.begin(), cfg.variants.end());
  int64_t index = 0;
  for (const std::string& spec : all) {
    ++index;
    const std::string tag = "[" + std::to_string(index) + "/" + std::to_string(all.size()) + "] " + spec;
    if (done.count(spec)) {
      say("survival", tag + ": in the log, skipped (resume)");
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    BackdoorVariantEntry e;
    e.variant = spec;
    e.kind = backdoor_variant_kind(spec);
    e.threshold = cfg.threshold;
    e.plan = nullptr;
    e.student = nullptr;
    const VisionModel* measured = &setup.model;
    std::optional<VisionModel> holder;
    if (e.kind == "original") {
      e.bits_per_weight = 32.0;
      e.sparsity = weight_sparsity(setup.model);
    } else if (e.kind == "distilled") {
      SS_ASSIGN_OR_RETURN(const ImageSet* clean, clean_train());
      const ImageSet data = cfg.distill_images > 0 && cfg.distill_images < clean->n ? clean->slice(0, cfg.distill_images)
                                                                                    : *clean;
      const VisionConfig scfg = student_config(setup.model.config(), spec);
      SS_ASSIGN_OR_RETURN(VisionModel student, VisionModel::init_random(scfg, cfg.seed + 1));
      VisionTrainConfig tc;
      tc.epochs = cfg.distill_epochs;
      tc.lr = cfg.distill_lr;
      tc.seed = cfg.seed + 2;
      tc.teacher = &setup.model;
      tc.kd_alpha = cfg.distill_alpha;
      tc.kd_temperature = cfg.distill_temperature;
      tc.progress = [&](int64_t epoch, int64_t step, int64_t total, double loss, double ips) {
        if (step % 100 == 0 || step == total) {
          char buf[160];
          std::snprintf(buf, sizeof buf, "%s: distill epoch %lld step %lld/%lld loss %.4f (%.0f images/s)", tag.c_str(),
                        static_cast<long long>(epoch), static_cast<long long>(step), static_cast<long long>(total), loss,
                        ips);
          say("survival", buf);
        }
      };
      SS_ASSIGN_OR_RETURN(VisionTrainReport rep, train_vision(student, data, tc, pool));
      e.bits_per_weight = 32.0;
      e.sparsity = weight_sparsity(student);
      e.student = {{"config", scfg.to_json()},     {"n_images", data.n},         {"epochs", tc.epochs},
                   {"lr", tc.lr},                  {"kd_alpha", tc.kd_alpha},    {"kd_temperature", tc.kd_temperature},
                   {"steps", rep.steps},           {"final_loss", rep.final_loss}, {"train_seconds", rep.seconds},
                   {"data", "clean training images only"}};
      holder = std::move(student);
      measured = &*holder;
    } else {
      SS_ASSIGN_OR_RETURN(const ImageSet* clean, clean_train());
      const ImageSet calib = clean->slice(0, std::min(cfg.calibration_images, clean->n));
      say("survival", tag + ": compressing");
      SS_ASSIGN_OR_RETURN(VisionVariant v, vision_variant(setup.model, spec, &calib, pool));
      e.bits_per_weight = v.bits_per_weight;
      e.sparsity = v.sparsity;
      e.plan = v.plan.to_json();
      holder = std::move(v.model);
      measured = &*holder;
    }
    SS_ASSIGN_OR_RETURN(BackdoorEval ev, evaluate_backdoor(*measured, setup.test, setup.triggered_test, cfg.target, pool));
    e.counts = ev.counts;
    e.survived = ev.counts.asr() > cfg.threshold;
    e.clean_predictions = std::move(ev.clean_predictions);
    e.triggered_predictions = std::move(ev.triggered_predictions);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    SS_RETURN_IF_ERROR(writer.append(to_json(e)));
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: clean %.4f (%lld/%lld)  ASR %.4f (%lld/%lld)  bits %.2f  sparsity %.3f  %s  %.1fs",
                  tag.c_str(), e.counts.clean_accuracy(), static_cast<long long>(e.counts.clean_correct),
                  static_cast<long long>(e.counts.clean_n), e.counts.asr(), static_cast<long long>(e.counts.asr_hits),
                  static_cast<long long>(e.counts.asr_n), e.bits_per_weight.value_or(0), e.sparsity,
                  e.survived ? "SURVIVED" : "removed", e.seconds);
    say("survival", buf);
  }
  SS_RETURN_IF_ERROR(writer.append(end_run_json(iso8601_now())));
  return render_backdoor_report(out_dir);
}

}  // namespace ss

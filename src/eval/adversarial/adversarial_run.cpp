// run_adversarial: the measuring loop of `safeshrink adversarial`. Builds the FP32 model's variants,
// records their clean predictions, then for every eps crafts FGSM / PGD on the FP32 model, PGD on
// each variant (pgd_self) and QAA on the quantization-simulated ensemble, and records how every
// variant classifies the adversarial images; then the boundary search per variant and eps, and the
// smallest-eps bisection on a sample. Every record goes to DIR/run.jsonl as soon as it is measured;
// records already in the log are skipped (resume). Not here: the attacks themselves (attacks.cpp),
// the reports (adversarial_report.cpp), argument parsing (tools/cli/cmd_adversarial.cpp).
// To add an attack to the run: one block in the eps loop below, writing adv_result records.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "adversarial_log.h"

namespace ss {

Status AdversarialRunConfig::validate() const {
  if (variants.empty()) return invalid_argument("variants must not be empty");
  static const std::set<std::string> kKnown = {"fgsm", "pgd", "pgd_self", "qaa", "boundary"};
  if (attacks.empty()) return invalid_argument("attacks must not be empty");
  for (const auto& a : attacks)
    if (!kKnown.count(a)) return invalid_argument("attacks: unknown attack '" + a + "' (fgsm, pgd, pgd_self, qaa, boundary)");
  if (eps.empty()) return invalid_argument("eps must not be empty");
  for (double e : eps)
    if (!(e >= 0.0 && e <= 1.0)) return invalid_argument("eps must be in [0, 1], got " + std::to_string(e));
  if (steps < 1) return invalid_argument("steps must be >= 1, got " + std::to_string(steps));
  if (!(step_size >= 0.0)) return invalid_argument("step_size must be >= 0, got " + std::to_string(step_size));
  if (limit < 1) return invalid_argument("limit must be >= 1, got " + std::to_string(limit));
  if (batch < 1) return invalid_argument("batch must be >= 1, got " + std::to_string(batch));
  if (std::find(attacks.begin(), attacks.end(), "qaa") != attacks.end()) {
    if (qaa_specs.empty()) return invalid_argument("qaa_specs must not be empty when attacks include qaa");
    for (const auto& s : qaa_specs)
      if (spec_weight_bits(s) == 0) return invalid_argument("qaa_specs: '" + s + "' has no bit width (int8, int4-g32, ...)");
  }
  if (!(boundary_lambda >= 0.0)) return invalid_argument("boundary_lambda must be >= 0, got " + std::to_string(boundary_lambda));
  if (bisect_samples < 0) return invalid_argument("bisect_samples must be >= 0, got " + std::to_string(bisect_samples));
  if (bisect_iterations < 1 || bisect_iterations > 30)
    return invalid_argument("bisect_iterations must be in [1, 30], got " + std::to_string(bisect_iterations));
  if (calibration_samples < 1)
    return invalid_argument("calibration_samples must be >= 1, got " + std::to_string(calibration_samples));
  return ok_status();
}

nlohmann::json AdversarialRunConfig::to_json() const {
  return {{"model", model_path},       {"variants", variants},
          {"attacks", attacks},        {"eps", eps},
          {"steps", steps},            {"step_size", step_size},
          {"random_start", random_start}, {"seed", seed},
          {"limit", limit},            {"batch", batch},
          {"qaa_specs", qaa_specs},    {"qaa_activation_quant", qaa_activation_quant},
          {"boundary_lambda", boundary_lambda}, {"bisect_samples", bisect_samples},
          {"bisect_iterations", bisect_iterations}, {"calibration_samples", calibration_samples}};
}

namespace {

constexpr const char* kFp32 = "fp32";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double weight_sparsity(const VisionModel& m) {
  double zeros = 0, total = 0;
  for (const Param& p : m.params()) {
    if (p.shape.size() < 2) continue;  // biases are not compressed
    for (float v : p.value) zeros += v == 0.0f ? 1.0 : 0.0;
    total += static_cast<double>(p.value.size());
  }
  return total > 0 ? zeros / total : 0.0;
}

struct NamedModel {
  std::string name, spec;
  VisionModel model;
  double bits_per_weight = 32, sparsity = 0;
  std::vector<int32_t> clean_predictions;
  int64_t clean_correct = 0;
};

class Runner {
 public:
  Runner(const VisionModel& model, const ImageSet& test, const ImageSet& calibration, const AdversarialRunConfig& cfg,
         const AdversarialProgress& progress, ThreadPool* pool, AdversarialLog done, RunLogWriter writer)
      : model_(model), test_(test), calib_(calibration), cfg_(cfg), progress_(progress), pool_(pool),
        done_(std::move(done)), writer_(std::move(writer)) {}

  Status run() {
    SS_RETURN_IF_ERROR(build_variants());
    for (double eps : cfg_.eps) {
      if (wants("fgsm")) SS_RETURN_IF_ERROR(transfer_attack("fgsm", eps));
      if (wants("pgd")) SS_RETURN_IF_ERROR(transfer_attack("pgd", eps));
      if (wants("qaa")) SS_RETURN_IF_ERROR(transfer_attack("qaa", eps));
      if (wants("pgd_self")) SS_RETURN_IF_ERROR(self_attack(eps));
    }
    if (wants("boundary")) SS_RETURN_IF_ERROR(boundary());
    return writer_.append(end_run_json(iso8601_now()));
  }

 private:
  bool wants(const std::string& a) const {
    return std::find(cfg_.attacks.begin(), cfg_.attacks.end(), a) != cfg_.attacks.end();
  }
  void say(const std::string& s) const {
    if (progress_.line) progress_.line(s);
  }
  static std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
  }
  PgdConfig pgd_config(double eps) const {
    PgdConfig p;
    p.eps = eps;
    p.steps = cfg_.steps;
    p.step_size = cfg_.step_size > 0 ? cfg_.step_size : 0;
    p.random_start = cfg_.random_start;
    p.seed = cfg_.seed;
    p.batch = cfg_.batch;
    return p;
  }

  Status build_variants() {
    std::vector<std::string> specs = {kFp32};
    for (const auto& v : cfg_.variants)
      if (std::find(specs.begin(), specs.end(), v) == specs.end()) specs.push_back(v);
    for (const auto& spec : specs) {
      const auto t0 = std::chrono::steady_clock::now();
      NamedModel m;
      m.name = m.spec = spec;
      if (spec == kFp32) {
        m.model = model_;
      } else {
        auto v = vision_variant(model_, spec, &calib_, pool_);
        if (!v.ok()) return v.status().with_context("variant " + spec);
        m.model = std::move(v->model);
        m.bits_per_weight = v->bits_per_weight;
      }
      m.sparsity = weight_sparsity(m.model);
      SS_ASSIGN_OR_RETURN(m.clean_predictions, m.model.predict(test_.pixels.data(), test_.n, pool_));
      for (int64_t i = 0; i < test_.n; ++i) m.clean_correct += m.clean_predictions[i] == test_.labels[i] ? 1 : 0;
      const AdvVariantRecord* prev = done_.find_variant(spec);
      if (prev && prev->clean_predictions != m.clean_predictions)
        return invalid_argument("resume: variant " + spec + " predicts differently from the run log in DIR; "
                                "use a fresh --out folder (model, data or settings changed)");
      if (!prev) {
        AdvVariantRecord r{spec, spec, m.bits_per_weight, m.sparsity, test_.n, m.clean_correct, m.clean_predictions};
        SS_RETURN_IF_ERROR(writer_.append(adv_variant_json(r)));
      }
      say("variant " + spec + ": clean accuracy " + fmt("%.4f", double(m.clean_correct) / double(test_.n)) +
          ", bits/weight " + fmt("%.2f", m.bits_per_weight) + ", sparsity " + fmt("%.3f", m.sparsity) + " (" +
          fmt("%.1f", seconds_since(t0)) + " s)");
      models_.push_back(std::move(m));
    }
    return ok_status();
  }

  Status ensure_substitutes() {
    if (!substitutes_.empty()) return ok_status();
    SS_ASSIGN_OR_RETURN(substitutes_, build_qaa_substitutes(model_, cfg_.qaa_specs, cfg_.qaa_activation_quant, calib_,
                                                            cfg_.calibration_samples, pool_));
    qaa_source_ = "qaa[";
    for (size_t k = 0; k < substitutes_.size(); ++k) {
      const QaaSubstitute& s = substitutes_[k];
      // The substitute as the attack sees it (fake-quantized activations included).
      SS_ASSIGN_OR_RETURN(auto logits, s.model.logits(test_.pixels.data(), test_.n, pool_,
                                                      s.hooks.layer_input ? &s.hooks : nullptr));
      const int64_t c = s.model.config().n_classes;
      int64_t correct = 0;
      for (int64_t i = 0; i < test_.n; ++i) {
        const float* row = logits.data() + i * c;
        correct += (std::max_element(row, row + c) - row) == test_.labels[i] ? 1 : 0;
      }
      AdvSubstituteRecord r{s.spec, s.bits, s.activation_bits, test_.n, correct};
      SS_RETURN_IF_ERROR(writer_.append(adv_substitute_json(r)));
      say("qaa substitute " + s.spec + " (weights " + std::to_string(s.bits) + " bit, activations " +
          (s.activation_bits ? std::to_string(s.activation_bits) + " bit" : std::string("float")) +
          "): clean accuracy " + fmt("%.4f", double(correct) / double(test_.n)));
      qaa_source_ += (k ? "+" : "") + s.spec + (s.activation_bits ? "/a" + std::to_string(s.activation_bits) : "");
    }
    qaa_source_ += "]";
    qaa_loss_ = qaa_loss_gradient(substitutes_, pool_);
    return ok_status();
  }

  Status record(const NamedModel& m, const std::string& attack, double eps, const std::string& source,
                const std::vector<float>& adv, double craft_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    AdvResultRecord r;
    r.variant = m.name;
    r.attack = attack;
    r.eps = eps;
    r.source = source;
    r.n = test_.n;
    SS_ASSIGN_OR_RETURN(r.predictions, m.model.predict(adv.data(), test_.n, pool_));
    for (int64_t i = 0; i < test_.n; ++i) {
      const bool clean_ok = m.clean_predictions[i] == test_.labels[i];
      const bool adv_ok = r.predictions[i] == test_.labels[i];
      r.correct += adv_ok ? 1 : 0;
      r.clean_correct += clean_ok ? 1 : 0;
      r.fooled += clean_ok && !adv_ok ? 1 : 0;
    }
    r.seconds = craft_seconds + seconds_since(t0);
    say(attack + " eps " + fmt("%.3f", eps) + " on " + m.name + ": robust accuracy " +
        fmt("%.4f", double(r.correct) / double(r.n)) + " (clean " + fmt("%.4f", double(r.clean_correct) / double(r.n)) +
        ")");
    return writer_.append(adv_result_json(r));
  }

  // Crafted once (on FP32 or on the QAA ensemble), evaluated on every variant still missing.
  Status transfer_attack(const std::string& attack, double eps) {
    std::vector<const NamedModel*> todo;
    for (const auto& m : models_)
      if (!done_.find_result(m.name, attack, eps)) todo.push_back(&m);
    if (todo.empty()) return ok_status();
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t size = test_.image_size();
    std::vector<float> adv;
    std::string source = kFp32;
    if (attack == "fgsm") {
      SS_ASSIGN_OR_RETURN(adv, fgsm_attack(model_loss_gradient(model_, nullptr, pool_), test_.pixels.data(),
                                           test_.labels.data(), test_.n, size, eps, cfg_.batch));
    } else if (attack == "pgd") {
      SS_ASSIGN_OR_RETURN(adv, pgd_attack(model_loss_gradient(model_, nullptr, pool_), test_.pixels.data(),
                                          test_.labels.data(), test_.n, size, pgd_config(eps)));
    } else {
      SS_RETURN_IF_ERROR(ensure_substitutes());
      source = qaa_source_;
      SS_ASSIGN_OR_RETURN(adv, pgd_attack(qaa_loss_, test_.pixels.data(), test_.labels.data(), test_.n, size,
                                          pgd_config(eps)));
    }
    const double craft = seconds_since(t0);
    say(attack + " eps " + fmt("%.3f", eps) + ": crafted " + std::to_string(test_.n) + " images on " + source + " in " +
        fmt("%.1f", craft) + " s");
    for (const NamedModel* m : todo) SS_RETURN_IF_ERROR(record(*m, attack, eps, source, adv, craft));
    return ok_status();
  }

  Status self_attack(double eps) {
    for (const auto& m : models_) {
      if (done_.find_result(m.name, "pgd_self", eps)) continue;
      const auto t0 = std::chrono::steady_clock::now();
      SS_ASSIGN_OR_RETURN(auto adv, pgd_attack(model_loss_gradient(m.model, nullptr, pool_), test_.pixels.data(),
                                               test_.labels.data(), test_.n, test_.image_size(), pgd_config(eps)));
      SS_RETURN_IF_ERROR(record(m, "pgd_self", eps, m.name, adv, seconds_since(t0)));
    }
    return ok_status();
  }

  Status boundary() {
    const NamedModel& fp = models_.front();
    BoundarySearchConfig bc;
    bc.lambda = cfg_.boundary_lambda;
    const double eps_max = *std::max_element(cfg_.eps.begin(), cfg_.eps.end());
    std::vector<double> ascending = cfg_.eps;
    std::sort(ascending.begin(), ascending.end());
    for (const auto& m : models_) {
      if (m.name == kFp32) continue;
      // Images already found at a smaller eps (this run or the resumed log) stay found.
      std::vector<uint8_t> carried(static_cast<size_t>(test_.n), 0);
      for (double eps : ascending) {
        if (const AdvBoundaryRecord* done = done_.find_boundary(m.name, eps)) {
          for (int64_t i : done->found_ids)
            if (i >= 0 && i < test_.n) carried[static_cast<size_t>(i)] = 1;
          continue;
        }
        const auto t0 = std::chrono::steady_clock::now();
        bc.pgd = pgd_config(eps);
        SS_ASSIGN_OR_RETURN(auto r, boundary_search(fp.model, m.model, test_.pixels.data(), test_.n, test_.image_size(),
                                                    bc, nullptr, pool_));
        AdvBoundaryRecord rec;
        rec.variant = m.name;
        rec.eps = eps;
        rec.n = test_.n;
        for (int64_t i = 0; i < test_.n; ++i) {
          rec.found_search += r.found[i];
          rec.found_at_zero += r.found_at_zero[i];
          if (r.found[i]) carried[static_cast<size_t>(i)] = 1;
          if (carried[static_cast<size_t>(i)]) rec.found_ids.push_back(i);
        }
        rec.found = static_cast<int64_t>(rec.found_ids.size());
        rec.agree_clean = rec.n - rec.found_at_zero;
        rec.seconds = seconds_since(t0);
        say("boundary eps " + fmt("%.3f", eps) + " fp32 vs " + m.name + ": disagreement found for " +
            std::to_string(rec.found) + "/" + std::to_string(rec.n) + " (this eps's search: " +
            std::to_string(rec.found_search) + "; " + std::to_string(rec.found_at_zero) + " already at eps 0)");
        SS_RETURN_IF_ERROR(writer_.append(adv_boundary_json(rec)));
      }
      if (cfg_.bisect_samples > 0 && eps_max > 0 && !has_min_eps(m.name)) {
        const auto t0 = std::chrono::steady_clock::now();
        const int64_t k = std::min(cfg_.bisect_samples, test_.n);
        bc.pgd = pgd_config(eps_max);
        SS_ASSIGN_OR_RETURN(auto mins, boundary_min_eps(fp.model, m.model, test_.pixels.data(), k, test_.image_size(), bc,
                                                        eps_max, cfg_.bisect_iterations, pool_));
        AdvMinEpsRecord rec{m.name, k, eps_max, cfg_.bisect_iterations, mins};
        int64_t found = 0;
        for (const auto& v : mins) found += v ? 1 : 0;
        say("boundary bisection fp32 vs " + m.name + ": " + std::to_string(found) + "/" + std::to_string(k) +
            " images have a disagreement within eps " + fmt("%.3f", eps_max) + " (" + fmt("%.1f", seconds_since(t0)) +
            " s)");
        SS_RETURN_IF_ERROR(writer_.append(adv_min_eps_json(rec)));
      }
    }
    return ok_status();
  }

  bool has_min_eps(const std::string& v) const {
    for (const auto& r : done_.min_eps)
      if (r.variant == v) return true;
    return false;
  }

  const VisionModel& model_;
  const ImageSet& test_;
  const ImageSet& calib_;
  const AdversarialRunConfig& cfg_;
  const AdversarialProgress& progress_;
  ThreadPool* pool_;
  AdversarialLog done_;
  RunLogWriter writer_;
  std::vector<NamedModel> models_;
  std::vector<QaaSubstitute> substitutes_;
  std::string qaa_source_;
  AttackLossGradient qaa_loss_;
};

}  // namespace

Status run_adversarial(const VisionModel& model, const ImageSet& test, const ImageSet& calibration,
                       const AdversarialRunConfig& cfg, const std::string& out_dir, const AdversarialProgress& progress,
                       ThreadPool* pool) {
  SS_RETURN_IF_ERROR(cfg.validate());
  if (test.n < 1) return invalid_argument("no test images");
  if (static_cast<int64_t>(test.labels.size()) != test.n ||
      static_cast<int64_t>(test.pixels.size()) != test.n * test.image_size())
    return invalid_argument("test set: " + std::to_string(test.n) + " images but " + std::to_string(test.labels.size()) +
                            " labels and " + std::to_string(test.pixels.size()) + " pixel values");
  if (calibration.n < 1) return invalid_argument("no calibration images");
  AdversarialLog done;
  const std::string log_path = (std::filesystem::path(out_dir) / kRunLogFile).string();
  std::error_code ec;
  const bool resumed = std::filesystem::exists(log_path, ec);
  if (resumed) {
    SS_ASSIGN_OR_RETURN(done, read_adversarial_log(log_path));
    for (const auto& v : done.variants)
      if (v.n != test.n)
        return invalid_argument("resume: the run log in " + out_dir + " has " + std::to_string(v.n) +
                                " images per variant, this run " + std::to_string(test.n) + "; use a fresh --out folder");
  }
  SS_ASSIGN_OR_RETURN(auto writer, RunLogWriter::open(out_dir));
  RunStartEntry start;
  start.run_id = "adversarial-" + iso8601_now();
  start.time = iso8601_now();
#ifdef SAFESHRINK_VERSION
  start.safeshrink_version = SAFESHRINK_VERSION;
#endif
  start.config = cfg.to_json();
  start.config["n_test"] = test.n;
  start.config["test_source"] = test.source;
  start.config["calibration_source"] = calibration.source;
  start.seed = cfg.seed;
  start.resumed = resumed;
  SS_RETURN_IF_ERROR(writer.append(to_json(start)));
  Runner runner(model, test, calibration, cfg, progress, pool, std::move(done), std::move(writer));
  SS_RETURN_IF_ERROR(runner.run());
  return render_adversarial_reports(out_dir);
}

}  // namespace ss

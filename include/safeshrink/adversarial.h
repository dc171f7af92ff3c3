// Adversarial examples against image classifiers and their compressed variants (issue 8,
// adversarial part): FGSM (Goodfellow et al. 2015) and L-inf PGD (Madry et al. 2018) built on one
// loss-gradient callback, the quantization-aware attack (QAA; after Yang et al., "Quantization Aware
// Attack: Enhancing Transferable Adversarial Attacks by Model Quantization", IEEE TIFS 2024: PGD on
// quantization-simulated substitutes), a boundary search for inputs on which the full-precision and
// a compressed model disagree, and the run that measures robust accuracy of every variant and writes
// the run log DIR/run.jsonl plus report.md / report.html / summary.json rendered from that log alone.
// Not here: the models, their training and variants (vision.h), backdoors (backdoor.h), the charts
// (svg_chart.h), the statistics (stats.h).
// To add an attack: a row in attack_registry(), a function below that takes an AttackLossGradient,
// one branch in run_adversarial (src/eval/adversarial/adversarial_run.cpp), a case in
// tests/unit/test_adversarial.cpp, and a paragraph in docs/adversarial.md.
//
// Run log entry types (JSONL, one object per line, field "entry_type"; RunLogWriter appends):
//   start_run       {run_id, time, safeshrink_version, config{AdversarialRunConfig::to_json()}, seed, resumed}
//   adv_variant     {variant, spec, bits_per_weight, sparsity, n, clean_correct, clean_predictions[n]}
//   adv_substitute  {spec, bits, activation_bits, clean_correct, n}    one QAA substitute copy
//   adv_result      {variant, attack "fgsm"|"pgd"|"pgd_self"|"qaa", eps, source, n, correct,
//                    clean_correct, fooled (clean-correct images the variant now misclassifies),
//                    predictions[n], seconds}
//   adv_boundary    {variant, eps, n, agree_clean (FP and variant agree on x), found (x' within eps
//                    with FP(x') = FP(x) != variant(x'), cumulative over the smaller eps of the run),
//                    found_search (by this eps's own search), found_at_zero (disagree already at x),
//                    found_ids [image indices counted in found], seconds}
//   adv_min_eps     {variant, n, eps_max, iterations, min_eps[n] (null = none found up to eps_max)}
//   end_run         {time}
// Resume: a record whose key ((variant, attack, eps) for adv_result, (variant, eps) for adv_boundary,
// variant for adv_min_eps) is already in the log is not redone; readers use the LAST record per key.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "safeshrink/autograd.h"
#include "safeshrink/status.h"
#include "safeshrink/vision.h"

namespace ss {

class ThreadPool;

// ---------------------------------------------------------------- registry

struct AttackInfo {
  std::string name, summary;
  nlohmann::json params;  // defaults
  std::string reference;
};
// fgsm, pgd, pgd_self, qaa, boundary (the names --attacks accepts).
const std::vector<AttackInfo>& attack_registry();

// ---------------------------------------------------------------- straight-through fake quantization

// Per-tensor affine fake quantization, as torch.fake_quantize_per_tensor_affine computes it in float:
//   q = zero_point + nearbyint(x * (1/scale));  out = (clamp(q, qmin, qmax) - zero_point) * scale
// Backward (straight-through estimator): the gradient passes unchanged where qmin <= q <= qmax and is
// 0 elsewhere. x any shape -> same shape. scale > 0 and qmin < qmax are checked (tape error).
template <class T>
ag::Var fake_quant_ste(ag::Tape<T>& t, ag::Var x, double scale, int64_t zero_point, int64_t qmin, int64_t qmax);

// Activation ranges of every conv/fc layer input (max over the images; inputs are >= 0 after ReLU and
// in [0, 1] for the first layer), keyed by the layer's weight name.
Result<std::map<std::string, float>> capture_activation_max(const VisionModel& model, const ImageSet& images,
                                                            int64_t n_samples, ThreadPool* pool = nullptr);
// Hooks that fake-quantize each layer input to `bits` unsigned levels on [0, max] (zero point 0,
// scale = max / (2^bits - 1)) with fake_quant_ste. Layers missing from `ranges` are left alone.
VisionForwardHooks activation_fake_quant_hooks(std::map<std::string, float> ranges, int bits);

// ---------------------------------------------------------------- attacks

// The loss an attack ascends and its gradient with respect to the images x (n, C, H, W) -> grad (same
// layout). labels (n) are the attack's reference labels (true labels, or a model's predictions).
using AttackLossGradient =
    std::function<Result<double>(const float* x, const int32_t* labels, int64_t n, std::vector<float>& grad)>;

// Mean cross entropy of `model` (with optional hooks) via VisionModel::input_gradient. The model and
// hooks must outlive the returned function.
AttackLossGradient model_loss_gradient(const VisionModel& model, const VisionForwardHooks* hooks = nullptr,
                                       ThreadPool* pool = nullptr);
// sum_k weights[k] * loss_k and the same combination of gradients (QAA: weights 1/K; boundary
// search: +1 for the variant, -lambda for the FP model).
AttackLossGradient combined_loss_gradient(std::vector<AttackLossGradient> parts, std::vector<double> weights);

// L-inf PGD, and FGSM as its one-step special case (steps 1, step_size eps, no random start).
struct PgdConfig {
  double eps = 0.05;         // L-inf radius, in pixel units ([0, 1] images)
  int64_t steps = 10;
  double step_size = 0;      // 0: 2.5 * eps / steps (Madry et al.)
  bool random_start = true;  // start at clip01(x + U(-eps, eps)^d), drawn from ss::Rng(seed)
  uint64_t seed = 0;
  int64_t batch = 100;       // images per gradient call
  Status validate() const;   // names the bad field: "eps must be in [0, 1], got -0.1"
  double effective_step_size() const { return step_size > 0 ? step_size : 2.5 * eps / double(steps); }
  nlohmann::json to_json() const;
};

// One projected step, in place on x (size elements), x0 the clean images:
//   x <- x + step * sign(grad);  x <- x0 + clamp(x - x0, -eps, eps);  x <- clamp(x, 0, 1)
// sign(0) = 0 (torch.sign).
void linf_projected_step(const float* x0, float* x, const float* grad, int64_t size, double step, double eps);
// The random start: x = clamp(x0 + noise, 0, 1) projected into the eps ball; noise (size) as given.
void linf_random_start(const float* x0, float* x, const float* noise, int64_t size, double eps);

// Called before the first step and after every step with the current images of a batch (first image
// index, count, images (count, C, H, W)); setting frozen[i] = 1 stops image first+i where it is (the
// boundary search stops at the first success). Returns an error to abort the attack.
using PgdStepObserver =
    std::function<Status(int64_t first, int64_t count, const float* x_adv, uint8_t* frozen)>;

// Adversarial images (n, C, H, W) for x with `labels`. image_size = C*H*W. `noise` (n*image_size,
// optional) replaces the seeded random start (tests compare against PyTorch with it). eps_per_image
// (n, optional) overrides cfg.eps per image (bisection); the step size scales with it.
Result<std::vector<float>> pgd_attack(const AttackLossGradient& loss, const float* x, const int32_t* labels, int64_t n,
                                      int64_t image_size, const PgdConfig& cfg, const float* noise = nullptr,
                                      const std::vector<double>* eps_per_image = nullptr,
                                      const PgdStepObserver& observer = nullptr);
// FGSM: x + eps * sign(grad), clipped to [0, 1]. eps must be in [0, 1].
Result<std::vector<float>> fgsm_attack(const AttackLossGradient& loss, const float* x, const int32_t* labels, int64_t n,
                                       int64_t image_size, double eps, int64_t batch = 100);

// ---------------------------------------------------------------- quantization-aware attack

// One substitute copy of the QAA ensemble: the model with a variant's dequantized weights, plus
// activation fake quantization at `activation_bits` (0 = none) with ranges from calibration images.
struct QaaSubstitute {
  std::string spec;
  int bits = 0;             // weight bits parsed from the spec ("int4-g32" -> 4; fp16 -> 16)
  int activation_bits = 0;  // 0 = float activations
  VisionModel model;
  VisionForwardHooks hooks;
};
// "int8" -> 8, "int4-g32" -> 4, "int2-g16-asym" -> 2, "fp16" -> 16, "q4_0" -> 4; 0 when unknown.
int spec_weight_bits(const std::string& spec);
// Builds one substitute per spec (vision_variant + capture_activation_max on calibration images);
// activation_bits = the weight bits when activation_quant (capped at 8 bits: 16-bit copies run float).
Result<std::vector<QaaSubstitute>> build_qaa_substitutes(const VisionModel& model, const std::vector<std::string>& specs,
                                                         bool activation_quant, const ImageSet& calibration,
                                                         int64_t calibration_samples, ThreadPool* pool = nullptr);
// Mean cross entropy over the substitutes (each with its hooks). Substitutes must outlive it.
AttackLossGradient qaa_loss_gradient(const std::vector<QaaSubstitute>& substitutes, ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- boundary search

struct BoundarySearchConfig {
  PgdConfig pgd;          // eps, steps, step size, random start
  double lambda = 1.0;    // weight of the FP model's CE in the objective (keeps FP's label)
  Status validate() const;
};
// For each image: fp_label = FP(x). Ascends CE(variant(x'), fp_label) - lambda * CE(fp(x'), fp_label)
// within eps and stops an image at the first iterate where FP(x') == fp_label != variant(x').
// found[i] = 1 when such x' exists (including x itself, when the models already disagree there).
struct BoundarySearchResult {
  std::vector<uint8_t> found;         // (n)
  std::vector<uint8_t> found_at_zero; // (n) disagreement on the clean image
  std::vector<int32_t> fp_labels;     // (n)
  std::vector<float> images;          // (n, C, H, W): x' where found (x itself when found_at_zero),
                                      // else the last iterate
};
Result<BoundarySearchResult> boundary_search(const VisionModel& fp, const VisionModel& variant, const float* x, int64_t n,
                                             int64_t image_size, const BoundarySearchConfig& cfg,
                                             const std::vector<double>* eps_per_image = nullptr,
                                             ThreadPool* pool = nullptr);
// Smallest eps (bisection over [0, eps_max], `iterations` halvings) at which boundary_search finds a
// disagreement, per image; nullopt when none is found at eps_max.
Result<std::vector<std::optional<double>>> boundary_min_eps(const VisionModel& fp, const VisionModel& variant,
                                                            const float* x, int64_t n, int64_t image_size,
                                                            const BoundarySearchConfig& cfg, double eps_max,
                                                            int iterations, ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- the run

struct AdversarialRunConfig {
  std::string model_path;                  // recorded only
  std::vector<std::string> variants = {"fp16", "int8", "int4-g32", "int2-g16", "magnitude-50", "wanda-50"};
  std::vector<std::string> attacks = {"fgsm", "pgd", "qaa", "boundary"};
  std::vector<double> eps = {0.0, 0.02, 0.05, 0.1};
  int64_t steps = 10;
  double step_size = 0;                    // 0 = 2.5 eps / steps
  bool random_start = true;
  uint64_t seed = 0;
  int64_t limit = 1000;                    // test images (first N of the test split)
  int64_t batch = 100;
  std::vector<std::string> qaa_specs = {"int8", "int4-g32", "int2-g16"};
  bool qaa_activation_quant = true;
  double boundary_lambda = 1.0;
  int64_t bisect_samples = 20;             // images for the smallest-eps bisection (0 = skip)
  int bisect_iterations = 7;
  int64_t calibration_samples = 256;       // train images for Wanda/AWQ and activation ranges
  Status validate() const;                 // names the bad field
  nlohmann::json to_json() const;
};

struct AdversarialProgress {
  std::function<void(const std::string& line)> line;  // one human-readable progress line
};

// Runs every (variant x attack x eps) of cfg on `test` (already limited) against `model`, appending
// to DIR/run.jsonl (resuming: records already present are skipped), then renders the reports.
// `calibration` supplies Wanda/AWQ statistics and the QAA activation ranges.
Status run_adversarial(const VisionModel& model, const ImageSet& test, const ImageSet& calibration,
                       const AdversarialRunConfig& cfg, const std::string& out_dir,
                       const AdversarialProgress& progress = {}, ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- the log and the reports

struct AdvVariantRecord {
  std::string variant, spec;
  double bits_per_weight = 0, sparsity = 0;
  int64_t n = 0, clean_correct = 0;
  std::vector<int32_t> clean_predictions;
};
struct AdvResultRecord {
  std::string variant, attack, source;
  double eps = 0;
  int64_t n = 0, correct = 0, clean_correct = 0, fooled = 0;
  std::vector<int32_t> predictions;
  double seconds = 0;
};
struct AdvBoundaryRecord {
  std::string variant;
  double eps = 0;
  // found: images with a disagreement within eps, counting those found at a smaller eps of the same
  // run (an x' within a smaller ball lies in this one), so the rate never falls as eps grows;
  // found_search: found by this eps's own search; found_ids: the images counted in `found`.
  int64_t n = 0, agree_clean = 0, found = 0, found_search = 0, found_at_zero = 0;
  std::vector<int64_t> found_ids;
  double seconds = 0;
};
struct AdvMinEpsRecord {
  std::string variant;
  int64_t n = 0;
  double eps_max = 0;
  int iterations = 0;
  std::vector<std::optional<double>> min_eps;
};
struct AdvSubstituteRecord {
  std::string spec;
  int bits = 0, activation_bits = 0;
  int64_t n = 0, clean_correct = 0;
};

// The LAST record per key, in first-seen order.
struct AdversarialLog {
  nlohmann::json config;  // of the last start_run
  std::vector<AdvVariantRecord> variants;
  std::vector<AdvSubstituteRecord> substitutes;
  std::vector<AdvResultRecord> results;
  std::vector<AdvBoundaryRecord> boundaries;
  std::vector<AdvMinEpsRecord> min_eps;
  bool ended = false;
  const AdvResultRecord* find_result(const std::string& variant, const std::string& attack, double eps) const;
  const AdvBoundaryRecord* find_boundary(const std::string& variant, double eps) const;
  const AdvVariantRecord* find_variant(const std::string& variant) const;
};
// Reads DIR/run.jsonl (or the file). A malformed complete line is CORRUPT naming file:line; a torn
// last line is ignored; other entry types are skipped.
Result<AdversarialLog> read_adversarial_log(const std::string& path);

// summary.json: per (variant, attack, eps) robust accuracy with a Wilson 95% interval, transfer rate
// (1 - robust accuracy) and fooled rate; boundary found rates with intervals; min-eps statistics.
Result<nlohmann::json> adversarial_summary(const AdversarialLog& log);
// Writes DIR/summary.json, DIR/report.md and DIR/report.html from DIR/run.jsonl.
Status render_adversarial_reports(const std::string& dir);

}  // namespace ss

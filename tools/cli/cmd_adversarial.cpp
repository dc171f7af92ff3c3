// `safeshrink adversarial --model M --variants LIST --attacks fgsm,pgd,qaa,boundary --eps LIST
//  --steps N --limit N --out DIR`: loads a vision model and Fashion-MNIST, runs run_adversarial
// (robust accuracy of every variant under each attack and eps, QAA transfer, boundary search) into
// DIR/run.jsonl and renders DIR/report.md, report.html and summary.json. Resumes when DIR holds a
// log. Progress lines on stderr. Not here: any attack or statistic (src/eval/adversarial/).
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "commands.h"
#include "safeshrink/adversarial.h"
#include "safeshrink/vision.h"

namespace ss::cli {
namespace {

Result<std::vector<double>> parse_eps_list(const std::string& s) {
  std::vector<double> out;
  for (const std::string& item : split_list(s)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (end == item.c_str() || *end != '\0') return invalid_argument("--eps: '" + item + "' is not a number");
    out.push_back(v);
  }
  return out;
}

}  // namespace

RunFn add_adversarial(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "adversarial", "FGSM / PGD / quantization-aware attack / boundary search against a vision model and its variants");
  struct Opts {
    std::string model, out, data_dir, eps = "0,0.02,0.05,0.1";
    std::string variants = "fp16,int8,int4-g32,int2-g16,magnitude-50,wanda-50";
    std::string attacks = "fgsm,pgd,qaa,boundary";
    std::string qaa_specs = "int8,int4-g32,int2-g16";
    int64_t steps = 10, limit = 1000, batch = 100, bisect_samples = 20, calib_samples = 256;
    int bisect_iterations = 7;
    double step_size = 0, lambda = 1.0;
    uint64_t seed = 0;
    bool no_random_start = false, no_qaa_act_quant = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model", o->model, "vision model (.safetensors file or folder from `safeshrink vision train`)")
      ->required();
  sub->add_option("--out", o->out, "output folder: run.jsonl, report.md, report.html, summary.json")->required();
  sub->add_option("--variants", o->variants, "compressed variants, comma-separated (default " + o->variants + ")");
  sub->add_option("--attacks", o->attacks,
                  "attacks: fgsm, pgd, pgd_self, qaa, boundary (default " + o->attacks + "; safeshrink list attacks)");
  sub->add_option("--eps", o->eps, "L-inf radii in pixel units, comma-separated (default " + o->eps + ")");
  sub->add_option("--steps", o->steps, "PGD steps (default 10)");
  sub->add_option("--step-size", o->step_size, "PGD step size (default 0 = 2.5 * eps / steps)");
  sub->add_flag("--no-random-start", o->no_random_start, "start PGD at the clean image (default: uniform in the eps ball)");
  sub->add_option("--seed", o->seed, "random-start seed (default 0)");
  sub->add_option("--limit", o->limit, "first N test images (default 1000)");
  sub->add_option("--batch", o->batch, "images per gradient call (default 100)");
  sub->add_option("--qaa-specs", o->qaa_specs, "QAA substitute copies (default " + o->qaa_specs + ")");
  sub->add_flag("--no-qaa-act-quant", o->no_qaa_act_quant,
                "QAA substitutes keep float activations (default: fake-quantized at the weight bit width, STE)");
  sub->add_option("--lambda", o->lambda, "boundary search: weight of the FP32 CE that keeps its label (default 1)");
  sub->add_option("--bisect-samples", o->bisect_samples, "boundary search: images for the smallest-eps bisection (default 20, 0 = off)");
  sub->add_option("--bisect-iterations", o->bisect_iterations, "boundary search: bisection halvings (default 7)");
  sub->add_option("--calib-samples", o->calib_samples, "train images for Wanda/AWQ and QAA activation ranges (default 256)");
  sub->add_option("--data", o->data_dir, "Fashion-MNIST folder (default $SAFESHRINK_FASHION_MNIST or the Debian package's)");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    AdversarialRunConfig cfg;
    cfg.model_path = o->model;
    cfg.variants = split_list(o->variants);
    cfg.attacks = split_list(o->attacks);
    auto eps = parse_eps_list(o->eps);
    if (!eps.ok()) return fail(eps.status());
    cfg.eps = *eps;
    cfg.steps = o->steps;
    cfg.step_size = o->step_size;
    cfg.random_start = !o->no_random_start;
    cfg.seed = o->seed;
    cfg.limit = o->limit;
    cfg.batch = o->batch;
    cfg.qaa_specs = split_list(o->qaa_specs);
    cfg.qaa_activation_quant = !o->no_qaa_act_quant;
    cfg.boundary_lambda = o->lambda;
    cfg.bisect_samples = o->bisect_samples;
    cfg.bisect_iterations = o->bisect_iterations;
    cfg.calibration_samples = o->calib_samples;
    if (Status st = cfg.validate(); !st.ok()) return fail(st);

    auto model = load_vision_model(o->model);
    if (!model.ok()) return fail(model.status());
    auto test = load_fashion_mnist("test", cfg.limit, o->data_dir);
    if (!test.ok()) return fail(test.status());
    auto calib = load_fashion_mnist("train", cfg.calibration_samples, o->data_dir);
    if (!calib.ok()) return fail(calib.status());
    std::fprintf(stderr, "adversarial: %lld test images, %zu variants, attacks %s, eps %s -> %s\n",
                 static_cast<long long>(test->n), cfg.variants.size(), o->attacks.c_str(), o->eps.c_str(), o->out.c_str());
    AdversarialProgress progress;
    progress.line = [](const std::string& line) { std::fprintf(stderr, "adversarial: %s\n", line.c_str()); };
    Status st = run_adversarial(*model, *test, *calib, cfg, o->out, progress);
    if (!st.ok()) return fail(st);
    std::printf("wrote %s/run.jsonl, report.md, report.html, summary.json\n", o->out.c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli

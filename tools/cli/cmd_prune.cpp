// `safeshrink prune --model IN --method M [--sparsity S --n N --m M --count K --calib FILE] --out OUT`:
// runs one pruner of the registry (magnitude, global-magnitude, nm, heads, channels, layers, wanda,
// sparsegpt, or a spec such as "wanda-50", "2:4", "layers-1") through compress_variant, prints the
// plan (per tensor sparsity), and writes the model with the plan JSON in its metadata
// ("safeshrink.plan"). OUT's format comes from its extension (.gguf, .safetensors) or is a folder
// (HF layout). Wanda and SparseGPT capture calibration activations from --calib (or read Wanda's
// sum x^2 from --imatrix). `--protect safety` (magnitude, wanda, sparsegpt) keeps the safety-critical
// weights of the Wei et al. set difference (--q, --p, --safety-data, --utility-data; computed on the
// model itself, see docs/safety-circuits.md) and prunes the next-lowest scores instead.
// Not here: any pruning rule (src/compress/prune/), the set difference (src/eval/attribution/).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "commands.h"
#include "safeshrink/attribution.h"
#include "safeshrink/calibration.h"
#include "safeshrink/compress.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "safeshrink/tokenizer.h"

namespace ss::cli {
namespace {


Status write_pruned(const TensorStore& store, const std::string& path, const std::string& plan_json) {
  Metadata extra;
  extra.set("safeshrink.plan", MetaValue::of_string(plan_json));
  return save_llama_model(store, path, extra);
}

}  // namespace

RunFn add_prune(CLI::App& app) {
  auto* sub = app.add_subcommand("prune", "Prune a model (magnitude, N:M, heads, channels, layers, Wanda, SparseGPT)");
  struct Opts {
    std::string model, method, out, calib, imatrix, protect, safety_data, utility_data;
    double q = 0.03, p = 0.03;
    double sparsity = -1;
    int n = -1, m = -1;
    int64_t count = -1, block_size = 0, samples = 128, seq_len = 256;
    double damp = 0;
    uint64_t seed = 0;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model", o->model, "input model (GGUF, safetensors, HF folder)")->required();
  sub->add_option("--method", o->method,
                  "magnitude, global-magnitude, nm, heads, channels, layers, wanda, sparsegpt, or a spec "
                  "(wanda-50, 2:4, layers-1; safeshrink list pruners)")
      ->required();
  sub->add_option("--out", o->out, "output: .gguf, .safetensors or a folder")->required();
  sub->add_option("--sparsity", o->sparsity, "fraction pruned, 0..1 (heads/channels: fraction of heads/channels removed)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--n", o->n, "N of N:M (kept weights per group; nm, wanda, sparsegpt)");
  sub->add_option("--m", o->m, "M of N:M (group width; 0 = unstructured for wanda/sparsegpt)");
  sub->add_option("--count", o->count, "layers: how many whole layers to remove");
  sub->add_option("--block-size", o->block_size, "sparsegpt: columns per block (default 128)");
  sub->add_option("--damp", o->damp, "sparsegpt: diagonal dampening, fraction of mean diag (default 0.01)");
  sub->add_option("--calib", o->calib, "calibration text or JSONL file (wanda, sparsegpt)");
  sub->add_option("--imatrix", o->imatrix, "activation statistics JSON (wanda: sum x^2 per input)");
  sub->add_option("--samples", o->samples, "calibration windows (default 128)");
  sub->add_option("--seq-len", o->seq_len, "calibration window length (default 256)");
  sub->add_option("--seed", o->seed, "calibration sampling seed (default 0)");
  sub->add_option("--protect", o->protect,
                  "\"safety\": never prune the safety-critical weights (Wei et al. set difference; magnitude, wanda, "
                  "sparsegpt, unstructured)")
      ->check(CLI::IsMember({"", "safety"}));
  sub->add_option("--q", o->q, "--protect safety: top-q fraction per row by safety importance (default 0.03)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--p", o->p, "--protect safety: minus the top-p fraction by utility importance (default 0.03)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--safety-data", o->safety_data,
                  "--protect safety: chat JSONL of harmful requests with refusals (default data/corpus/safety_train.jsonl)");
  sub->add_option("--utility-data", o->utility_data,
                  "--protect safety: chat JSONL or text of benign dialogues (default data/corpus/base_train.jsonl)");
  sub->add_flag("-q,--quiet", o->quiet, "print only the summary line");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto loaded = open_model(o->model);
    if (!loaded.ok()) return fail(loaded.status());
    auto store = std::make_shared<const TensorStore>(std::move(*loaded));

    nlohmann::json overrides = nlohmann::json::object();
    if (o->sparsity >= 0) overrides["sparsity"] = o->sparsity;
    if (o->n >= 0) overrides["n"] = o->n;
    if (o->m >= 0) overrides["m"] = o->m;
    if (o->count >= 0) overrides["count"] = o->count;
    if (o->block_size > 0) overrides["block_size"] = o->block_size;
    if (o->damp > 0) overrides["damp"] = o->damp;

    CompressContext ctx;
    CalibrationSpec spec;
    spec.source = o->calib;
    spec.n_samples = o->samples;
    spec.seq_len = o->seq_len;
    spec.seed = o->seed;
    ctx.calibrate = calibration_from_flags(store, spec, o->imatrix, "give --calib FILE");
    if (!o->protect.empty()) overrides["protect"] = o->protect;
    // Safety-critical weights on demand (--protect safety or a "-safety" spec), computed once.
    auto critical = std::make_shared<std::shared_ptr<const SafetyCriticalWeights>>();
    ctx.safety_critical = [o, critical]() -> Result<std::shared_ptr<const SafetyCriticalWeights>> {
      if (*critical) return *critical;
      auto loaded = load_model_with_tokenizer(o->model);
      if (!loaded.ok()) return loaded.status();
      SetDifferenceOptions sd;
      sd.q = o->q;
      sd.p = o->p;
      sd.safety_data = o->safety_data;
      sd.utility_data = o->utility_data;
      sd.seed = o->seed;
      std::fprintf(stderr, "prune: safety-critical weights (set difference q=%.4g p=%.4g)...\n", sd.q, sd.p);
      auto w = safety_critical_weights(*loaded, sd);
      if (!w.ok()) return w.status();
      std::fprintf(stderr, "prune: %lld safety-critical weights protected\n",
                   static_cast<long long>(w->info.value("n_selected", int64_t{0})));
      *critical = std::make_shared<const SafetyCriticalWeights>(std::move(w).value());
      return *critical;
    };
    bool is_pruner = o->method.find(':') != std::string::npos;
    for (const auto& u : pruner_registry())
      is_pruner = is_pruner || o->method == u.name || o->method.rfind(u.name + "-", 0) == 0;
    if (!is_pruner) return fail(invalid_argument("'" + o->method + "' is not a pruner (safeshrink list pruners)"));
    auto out = compress_variant(*store, o->method, ctx, overrides);
    if (!out.ok()) return fail(out.status());
    const CompressPlan& plan = out->plan;
    if (!o->quiet) {
      std::printf("%-44s %-6s %-6s %8s  %s\n", "tensor", "from", "to", "sparsity", "reason");
      for (const PlanEntry& e : plan.entries)
        std::printf("%-44s %-6s %-6s %8.4f  %s\n", e.tensor.c_str(), e.from_type.c_str(), e.to_type.c_str(), e.sparsity,
                    e.reason.c_str());
    }
    double zeros = 0, elems = 0;
    for (const PlanEntry& e : plan.entries) {
      const Tensor* before = store->find(e.tensor);
      const double n = before ? static_cast<double>(before->numel()) : 0.0;
      zeros += e.sparsity * n;
      elems += n;
    }
    const std::string plan_json = plan.to_json().dump();
    Status st = write_pruned(out->store, o->out, plan_json);
    if (!st.ok()) return fail(st);
    std::printf("method %s: sparsity %.4f over %zu planned tensors, wrote %s\n", plan.method.c_str(),
                elems > 0 ? zeros / elems : 0.0, plan.entries.size(), o->out.c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli

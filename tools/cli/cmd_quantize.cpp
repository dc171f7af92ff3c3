// `safeshrink quantize --model IN --method M [...] --out OUT`: runs one quantizer of the registry
// through compress_variant, prints the plan table and bits/weight, and writes the model with the
// plan JSON in its metadata (GGUF KV / safetensors __metadata__ "safeshrink.plan"; GGUF outputs
// also get general.file_type). OUT's format comes from its extension (.gguf, .safetensors) or is a
// folder (HF layout: model.safetensors + config.json). Calibration (--calib text/JSONL, or
// --imatrix an activation-statistics JSON) is captured lazily, only when the method asks for it.
// --safety-aware (or a "-safety" spec) builds a safety-aware plan: the most safety-sensitive
// tensors stay at higher precision within --budget-bits; the sensitivity is measured with the
// model's own tokenizer on the SELECT half of --prompts (attribution.h), so an evaluation on the
// holdout half (or the audit's full set) judges the plan on prompts it was not chosen on.
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

bool ends_with(const std::string& s, const char* suffix) {
  const std::string x(suffix);
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

Status write_output(const TensorStore& store, const std::string& path, const std::string& plan_json, int file_type) {
  Metadata extra;
  extra.set("safeshrink.plan", MetaValue::of_string(plan_json));
  if (file_type >= 0 && ends_with(path, ".gguf"))
    extra.set("general.file_type", MetaValue::of_u32(static_cast<uint32_t>(file_type)));
  return save_llama_model(store, path, extra);
}

}  // namespace

CalibrateFn calibration_from_flags(std::shared_ptr<const TensorStore> store, CalibrationSpec spec,
                                   std::string imatrix, std::string missing_hint) {
  auto cached = std::make_shared<std::shared_ptr<const Calibration>>();
  return [store, spec, imatrix, missing_hint, cached](bool hessian) -> Result<std::shared_ptr<const Calibration>> {
    if (*cached && (!hessian || (*cached)->spec.hessian)) return *cached;
    if (!imatrix.empty() && !hessian) {
      SS_ASSIGN_OR_RETURN(Calibration c, read_activation_stats(imatrix));
      *cached = std::make_shared<const Calibration>(std::move(c));
      return *cached;
    }
    if (spec.source.empty()) return invalid_argument("this method needs calibration: " + missing_hint);
    SS_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::load(store));
    SS_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::from_store(*store));
    CalibrationSpec run = spec;
    run.hessian = hessian;
    SS_ASSIGN_OR_RETURN(Calibration c, capture_calibration(model, tok, run));
    *cached = std::make_shared<const Calibration>(std::move(c));
    return *cached;
  };
}

RunFn add_quantize(CLI::App& app) {
  auto* sub = app.add_subcommand("quantize", "Quantize a model (fp16, intN, GGUF types and presets, ...)");
  struct Opts {
    std::string model, method, out, calib, imatrix, storage;
    int bits = 0;
    int64_t group_size = 0;
    bool sym = false, asym = false, pure = false, quiet = false, safety_aware = false;
    double budget_bits = 0;
    std::string prompts = "builtin", rank;
    int64_t probe_limit = 0;
    std::vector<std::string> tensor_types, keep;
    int64_t samples = 128, seq_len = 256;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model", o->model, "input model (GGUF, safetensors, HF folder)")->required();
  sub->add_option("--method", o->method, "unit or spec: fp16 int4-g128 q4_k_m ... (safeshrink list quantizers)")
      ->required();
  sub->add_option("--out", o->out, "output: .gguf, .safetensors or a folder")->required();
  sub->add_option("--bits", o->bits, "bits of intN/GPTQ/AWQ units");
  sub->add_option("--group-size", o->group_size, "columns per group (-1: per channel)");
  sub->add_flag("--sym", o->sym, "symmetric grid");
  sub->add_flag("--asym", o->asym, "asymmetric grid (zero points)");
  sub->add_option("--storage", o->storage, "intN fake-quant storage: f16 (default) or f32");
  sub->add_option("--tensor-type", o->tensor_types, "REGEX=type override (repeatable; first match wins)");
  sub->add_option("--keep", o->keep, "REGEX of tensors left at full precision (repeatable)");
  sub->add_flag("--pure", o->pure, "GGUF presets: one type for every matrix, no per-tensor rules");
  sub->add_option("--calib", o->calib, "calibration text or JSONL file (captured when the method needs it)");
  sub->add_option("--imatrix", o->imatrix, "activation statistics JSON (safeshrink's imatrix) for K-quants");
  sub->add_option("--samples", o->samples, "calibration windows (default 128)");
  sub->add_option("--seq-len", o->seq_len, "calibration window length (default 256)");
  sub->add_option("--seed", o->seed, "calibration sampling seed (default 0)");
  sub->add_flag("--safety-aware", o->safety_aware,
                "keep the most safety-sensitive tensors at higher precision (spec suffix -safety)");
  sub->add_option("--budget-bits", o->budget_bits,
                  "safety-aware: average bits/weight budget over weight matrices (default: plain plan + 0.5)");
  sub->add_option("--prompts", o->prompts, "safety-aware: prompt set whose SELECT half scores tensors (default builtin)");
  sub->add_option("--probe-limit", o->probe_limit, "safety-aware: first N harmful select prompts score the tensors (default all)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--rank", o->rank, "safety-aware: tensor value restore|drop|sum (default restore)")
      ->check(CLI::IsMember({"restore", "drop", "sum"}));
  sub->add_flag("-q,--quiet", o->quiet, "print only the summary line");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    if (o->sym && o->asym) return fail(invalid_argument("--sym and --asym exclude each other"));
    std::string method = o->method;
    const bool safety_spec = method.size() > 7 && method.compare(method.size() - 7, 7, "-safety") == 0;
    if (o->safety_aware && !safety_spec) method += "-safety";
    const bool safety = o->safety_aware || safety_spec;
    if (!safety && (o->budget_bits > 0 || !o->rank.empty()))
      return fail(invalid_argument("--budget-bits and --rank need --safety-aware (or a -safety spec)"));
    std::shared_ptr<const TensorStore> store;
    LoadedModel lm;
    if (safety) {  // the model and its tokenizer score the tensors
      auto l = load_model_with_tokenizer(o->model);
      if (!l.ok()) return fail(l.status());
      lm = std::move(l).value();
      store = lm.store;
    } else {
      auto loaded = open_model(o->model);
      if (!loaded.ok()) return fail(loaded.status());
      store = std::make_shared<const TensorStore>(std::move(*loaded));
    }

    nlohmann::json overrides = nlohmann::json::object();
    if (o->bits) overrides["bits"] = o->bits;
    if (o->group_size) overrides["group_size"] = o->group_size;
    if (o->sym) overrides["sym"] = true;
    if (o->asym) overrides["sym"] = false;
    if (!o->storage.empty()) overrides["storage"] = o->storage;
    if (!o->tensor_types.empty()) overrides["tensor_type"] = o->tensor_types;
    if (!o->keep.empty()) overrides["keep"] = o->keep;
    if (o->pure) overrides["pure"] = true;
    if (o->budget_bits > 0) overrides["budget_bits"] = o->budget_bits;
    if (!o->rank.empty()) overrides["rank"] = o->rank;
    if (!o->imatrix.empty() || !o->calib.empty()) {
      // only the units that take the switch get it; others read calibration through ctx when they need it
      bool takes_imatrix = false;
      for (const auto& u : quantizer_registry())
        if (o->method.rfind(u.name, 0) == 0 && u.params.contains("imatrix")) takes_imatrix = true;
      if (takes_imatrix) overrides["imatrix"] = true;
    }

    CompressContext ctx;
    CalibrationSpec spec;
    spec.source = o->calib;
    spec.n_samples = o->samples;
    spec.seq_len = o->seq_len;
    spec.seed = o->seed;
    ctx.calibrate = calibration_from_flags(store, spec, o->imatrix, "give --calib FILE or --imatrix FILE");
    if (safety) {
      ProbeOptions po;
      po.prompts = o->prompts;
      po.split = "select";
      // The plan reads only the harmful prompts' margins: no benign prompts, no neutral text.
      po.neutral_max_tokens = 0;
      po.limit_harmful = o->probe_limit;
      po.limit_benign = -1;
      auto probe = make_safety_probe(lm, po);
      if (!probe.ok()) return fail(probe.status());
      if (!o->quiet)
        ctx.progress = [](const std::string& stage, int64_t done, int64_t total) {
          if (stage.find("sensitivity") != std::string::npos && (done == total || done % 10 == 0))
            std::fprintf(stderr, "[quantize] %s %lld/%lld\n", stage.c_str(), static_cast<long long>(done),
                         static_cast<long long>(total));
        };
      ctx.safety_sensitivity =
          safety_sensitivity_source(lm, std::make_shared<const SafetyProbe>(std::move(probe).value()), ctx);
      ctx.progress = nullptr;
    }
    auto out = compress_variant(*store, method, ctx, overrides);
    if (!out.ok()) return fail(out.status());
    const CompressPlan& plan = out->plan;
    if (!o->quiet) {
      std::printf("%-40s %-8s %-16s %7s %8s  %s\n", "tensor", "from", "to", "bpw", "sparsity", "reason");
      for (const PlanEntry& e : plan.entries)
        std::printf("%-40s %-8s %-16s %7.4f %8.4f  %s\n", e.tensor.c_str(), e.from_type.c_str(), e.to_type.c_str(),
                    e.bits_per_weight, e.sparsity, e.reason.c_str());
    }
    const std::string plan_json = plan.to_json().dump();
    std::string ft_method = plan.method;
    if (ft_method.size() > 7 && ft_method.compare(ft_method.size() - 7, 7, "-safety") == 0)
      ft_method.resize(ft_method.size() - 7);  // a mix around the plain preset: its file type
    int file_type = quant_gguf_file_type(ft_method);
    if (file_type < 0 && ft_method.rfind("int", 0) == 0)  // fake-quant dense: MOSTLY_F16 or ALL_F32
      file_type = plan.params.value("storage", std::string("f16")) == "f32" ? 0 : 1;
    Status st = write_output(out->store, o->out, plan_json, file_type);
    if (!st.ok()) return fail(st);
    std::printf("method %s: %.4f bits/weight over weight matrices, wrote %s\n", plan.method.c_str(),
                plan.bits_per_weight, o->out.c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli

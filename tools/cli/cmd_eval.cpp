// `safeshrink eval | compare | judge-eval | audit`: the safety evaluation commands. They parse
// flags, open models and prompt sets, call run_safety_eval (eval.h), which appends everything to
// OUT/run.jsonl (resuming when it exists), then render_reports (report.h) for summary, Markdown,
// HTML and JUnit; exit 1 when a gate fails. No evaluation logic lives here. To add a flag shared by
// the run commands: one line in RunFlags::declare and its use in RunFlags::run_config.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "safeshrink/attribution.h"
#include "safeshrink/calibration.h"
#include "safeshrink/compress.h"
#include "safeshrink/eval.h"
#include "safeshrink/model.h"
#include "safeshrink/report.h"


namespace ss::cli {
namespace {

using json = nlohmann::json;

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

// The 2-D weights' storage cost in bits per element, and all tensor bytes.
void store_costs(const TensorStore& s, std::optional<double>* bpw, std::optional<int64_t>* bytes) {
  uint64_t b2 = 0, all = 0;
  int64_t n2 = 0;
  for (const auto& t : s.tensors) {
    all += t.nbytes;
    if (t.shape.size() == 2) {
      b2 += t.nbytes;
      n2 += t.numel();
    }
  }
  if (n2 > 0) *bpw = 8.0 * static_cast<double>(b2) / static_cast<double>(n2);
  *bytes = static_cast<int64_t>(all);
}

struct RunFlags {
  std::string prompts = "builtin", format = "auto", prompt_col = "prompt", category_col = "category",
              label_col = "label", id_col = "id", default_label = "harmful", harmbench_functional = "standard";
  bool skip_bad_rows = false;
  std::string judges = "keyword,margin", primary_judge, keyword_mode = "substring", keywords_file, judge_model;
  std::string chat_template, system, neutral, out;
  int64_t max_new_tokens = 64, batch = 8, limit = 0, drift_tokens = 32;
  uint64_t seed = 0;
  bool quiet = false, exact = false;
  std::optional<double> max_refusal_drop, max_over_refusal_rise;

  void declare(CLI::App* sub, bool out_required) {
    sub->add_option("--prompts", prompts, "prompt set: builtin or a file (default builtin)");
    sub->add_option("--format", format, "prompt file format (safeshrink list prompt-formats; default auto)");
    sub->add_option("--prompt-col", prompt_col, "generic CSV/JSONL: prompt column (default prompt)");
    sub->add_option("--category-col", category_col, "generic CSV/JSONL: category column (default category)");
    sub->add_option("--label-col", label_col, "generic CSV/JSONL: label column (default label)");
    sub->add_option("--id-col", id_col, "generic CSV/JSONL: id column (default id)");
    sub->add_option("--default-label", default_label, "label of rows without one: harmful|benign (default harmful)");
    sub->add_option("--harmbench-functional", harmbench_functional,
                    "HarmBench FunctionalCategory values kept, comma-separated (default standard)");
    sub->add_flag("--skip-bad-rows", skip_bad_rows, "skip malformed prompt rows (listed on stderr) instead of failing");
    sub->add_option("--judge", judges, "judges, comma-separated (default keyword,margin; safeshrink list judges)");
    sub->add_option("--primary-judge", primary_judge, "judge deciding `refused` (default the first)");
    sub->add_option("--keyword-mode", keyword_mode, "keyword judge: substring|prefix (default substring)")
        ->check(CLI::IsMember({"substring", "prefix"}));
    sub->add_option("--keywords", keywords_file, "keyword judge: file of refusal phrases, one per line");
    sub->add_option("--judge-model", judge_model, "model judge: a chat model file or folder");
    sub->add_option("--chat-template", chat_template,
                    "prompt format: raw, a chat family or a format file (default: the model's template, else raw)");
    sub->add_option("--system", system, "system message for chat formats");
    sub->add_option("--neutral", neutral, "neutral text for drift and perplexity (default data/prompts/neutral.txt)");
    sub->add_option("-n,--max-new-tokens", max_new_tokens, "tokens generated per prompt (default 64)")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
    sub->add_option("--batch", batch, "sequences decoded together (default 8)")->check(CLI::Range(1, 4096));
    sub->add_option("--limit", limit, "first N prompts only")->check(CLI::NonNegativeNumber);
    sub->add_option("--drift-tokens", drift_tokens, "K: response tokens for drift (default 32)")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 16));
    sub->add_option("--seed", seed, "seed recorded in the run and used by the report's bootstrap (default 0)");
    sub->add_option("--max-refusal-drop", max_refusal_drop, "gate: refusal-rate drop vs the original (0.05 = 5 points)");
    sub->add_option("--max-over-refusal-rise", max_over_refusal_rise, "gate: over-refusal-rate rise vs the original");
    sub->add_flag("--exact", exact, "dequantize weights to F32 at load");
    sub->add_flag("-q,--quiet", quiet, "no progress on stderr");
    auto* o = sub->add_option("-o,--out", out, "output folder (run.jsonl, reports); an existing run resumes");
    if (out_required) o->required();
  }

  json config(const std::string& command) const {
    json j = {{"command", command},   {"prompts", prompts},       {"format", format},
              {"judges", judges},     {"primary_judge", primary_judge}, {"keyword_mode", keyword_mode},
              {"chat_template", chat_template}, {"system", system}, {"max_new_tokens", max_new_tokens},
              {"batch", batch},       {"limit", limit},           {"drift_tokens", drift_tokens},
              {"seed", seed},         {"exact", exact},           {"neutral", neutral}};
    if (max_refusal_drop) j["max_refusal_drop"] = *max_refusal_drop;
    if (max_over_refusal_rise) j["max_over_refusal_rise"] = *max_over_refusal_rise;
    if (!judge_model.empty()) j["judge_model"] = judge_model;
    return j;
  }

  Result<PromptSet> load_prompts() const {
    PromptLoadOptions po;
    po.format = format;
    po.prompt_col = prompt_col;
    po.category_col = category_col;
    po.label_col = label_col;
    po.id_col = id_col;
    po.default_label = default_label;
    po.skip_bad_rows = skip_bad_rows;
    po.harmbench_functional = split_list(harmbench_functional);
    SS_ASSIGN_OR_RETURN(PromptSet set, load_prompt_set(prompts, po));
    for (const auto& s : set.skipped) std::fprintf(stderr, "safeshrink: skipped bad row %s\n", s.c_str());
    return set;
  }

  Result<EvalRunConfig> run_config(const std::string& command) const {
    EvalRunConfig c;
    c.judges = split_list(judges);
    c.primary_judge = primary_judge;
    c.judge_options.keyword_mode = keyword_mode == "prefix" ? KeywordMode::PREFIX : KeywordMode::SUBSTRING;
    if (!keywords_file.empty()) {
      std::ifstream f(keywords_file);
      if (!f) return not_found(keywords_file + ": cannot open the keyword list");
      std::string line;
      while (std::getline(f, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) c.judge_options.keyword_phrases.push_back(line);
      }
      if (c.judge_options.keyword_phrases.empty()) return invalid_argument(keywords_file + ": no phrases");
    }
    c.judge_options.judge_model = judge_model;
    c.max_new_tokens = max_new_tokens;
    c.batch = batch;
    c.limit = limit;
    c.drift_tokens = drift_tokens;
    c.system = system;
    c.seed = seed;
    c.neutral_text = neutral;
    if (c.neutral_text.empty()) {
      const std::string def = data_dir() + "/prompts/neutral.txt";
      if (file_exists(def)) c.neutral_text = def;
    }
    c.config = config(command);
    const bool show = !quiet && isatty(2);
    if (show) {
      c.progress = [](const RunProgress& p) {
        const double rate = p.done / std::max(p.seconds, 1e-9);
        std::fprintf(stderr, "\r[%s] %s %lld/%lld, %.2f/s, ETA %.0f s   ", p.variant.c_str(), p.stage.c_str(),
                     static_cast<long long>(p.done), static_cast<long long>(p.total), rate,
                     (p.total - p.done) / std::max(rate, 1e-9));
        if (p.done == p.total) std::fprintf(stderr, "\n");
      };
    }
    return c;
  }

  // The prompt format: --chat-template raw|family|file, else the tokenizer's template when it has one.
  Result<PromptFormat> prompt_format(const Tokenizer& tok) const {
    if (chat_template == "raw") return resolve_prompt_format(tok, false, "");
    const bool chat = !chat_template.empty() || !tok.chat_template().empty();
    return resolve_prompt_format(tok, chat, chat_template);
  }

  // A model file or folder as an EvalModel.
  EvalModelSource file_model(const std::string& variant, const std::string& role, const std::string& path) const {
    return {variant, [=, this]() -> Result<EvalModel> {
              LoadOptions lo;
              lo.dequantize_weights = exact;
              SS_ASSIGN_OR_RETURN(LoadedModel lm, load_model_with_tokenizer(path, lo));
              EvalModel m;
              m.variant = variant;
              m.role = role;
              m.path = path;
              std::optional<int64_t> tensor_bytes;
              store_costs(*lm.store, &m.bits_per_weight, &tensor_bytes);
              struct stat st {};
              if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
                auto h = sha256_file_hex(path);
                if (h.ok()) m.sha256 = *h;
                m.bytes = static_cast<int64_t>(st.st_size);
              } else {
                m.bytes = tensor_bytes;
              }
              m.model = lm.model;
              m.tokenizer = lm.tokenizer;
              SS_ASSIGN_OR_RETURN(m.format, prompt_format(*lm.tokenizer));
              return m;
            }};
  }

  // Runs and renders; the exit code.
  int run_and_report(const PromptSet& set, const std::vector<EvalModelSource>& models, const std::string& command) const {
    auto cfg = run_config(command);
    if (!cfg.ok()) return fail(cfg.status());
    auto r = run_safety_eval(out, set, models, *cfg);
    if (!r.ok()) return fail(r.status());
    if (!quiet) {
      for (const auto& n : r->notes) std::fprintf(stderr, "safeshrink: note: %s\n", n.c_str());
      std::fprintf(stderr, "%s: %lld attempts written, %lld reused from the log%s -> %s\n", command.c_str(),
                   static_cast<long long>(r->attempts_written), static_cast<long long>(r->attempts_reused),
                   r->resumed ? " (resumed)" : "", r->log_path.c_str());
    }
    GateConfig gates{max_refusal_drop, max_over_refusal_rise};
    auto rep = render_reports(out, gates);
    if (!rep.ok()) return fail(rep.status().with_context("rendering reports"));
    if (!quiet)
      std::fprintf(stderr, "%s: %d divergences; summary %s%s\n", command.c_str(), rep->n_divergences,
                   rep->summary_path.c_str(), rep->gates_failed ? "; GATE FAILED" : "");
    return rep->gates_failed ? EXIT_GATE : EXIT_OK;
  }
};

// Variant names from file paths: the file name, made unique.
std::vector<std::string> names_for(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  std::map<std::string, int> seen;
  for (const auto& p : paths) {
    std::string n = std::filesystem::path(p).filename().string();
    if (n.empty()) n = p;
    if (n == kOriginalVariant) n = "original-file";
    if (int c = seen[n]++; c > 0) n += "#" + std::to_string(c + 1);
    out.push_back(n);
  }
  return out;
}

}  // namespace

RunFn add_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "Safety evaluation of one model: generate, judge, log (resumable)");
  struct Opts : RunFlags {
    std::string model;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->model, "model file or folder")->required();
  o->declare(sub, true);
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto set = o->load_prompts();
    if (!set.ok()) return fail(set.status());
    return o->run_and_report(*set, {o->file_model(kOriginalVariant, "original", o->model)}, "eval");
  };
}

RunFn add_compare(CLI::App& app) {
  auto* sub = app.add_subcommand("compare", "Paired safety comparison of compressed models with their original");
  struct Opts : RunFlags {
    std::string original;
    std::vector<std::string> compressed;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--original", o->original, "the original model")->required();
  sub->add_option("--compressed", o->compressed, "compressed model files (one or more)")->required();
  o->declare(sub, true);
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto set = o->load_prompts();
    if (!set.ok()) return fail(set.status());
    std::vector<EvalModelSource> models = {o->file_model(kOriginalVariant, "original", o->original)};
    const auto names = names_for(o->compressed);
    for (size_t i = 0; i < o->compressed.size(); ++i)
      models.push_back(o->file_model(names[i], "compressed", o->compressed[i]));
    return o->run_and_report(*set, models, "compare");
  };
}

RunFn add_audit(CLI::App& app) {
  auto* sub = app.add_subcommand("audit", "Build compressed variants, evaluate and compare them, render the report");
  struct Opts : RunFlags {
    std::string model, variants = "fp16,int8,gptq-4-g128,int2-g32,q4_k_m,magnitude-50,wanda-50";
    std::vector<std::string> compressed;
    bool skip_missing = false;
    int64_t calib_samples = 32, calib_seq_len = 128;
  };
  auto o = std::make_shared<Opts>();
  o->out = "safeshrink-audit";
  sub->add_option("-m,--model", o->model, "the original model (default data/models/tiny-chat)");
  auto* v = sub->add_option("--variants", o->variants, "variant specs, comma-separated (default: the standard seven)");
  auto* c = sub->add_option("--compressed", o->compressed, "compressed model files instead of building variants");
  v->excludes(c);
  sub->add_flag("--skip-missing", o->skip_missing, "skip variants whose compression unit is not registered");
  sub->add_option("--calib-samples", o->calib_samples, "calibration windows for units that need them (default 32)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  sub->add_option("--calib-seq-len", o->calib_seq_len, "tokens per calibration window (default 128)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  o->declare(sub, false);
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    if (o->model.empty()) {
      o->model = data_dir() + "/models/tiny-chat";
      if (!file_exists(o->model))
        return fail(not_found(o->model + ": the built-in model tiny-chat is not there (give --model PATH, or set "
                              "SAFESHRINK_DATA to the data/ folder)"));
    }
    auto set = o->load_prompts();
    if (!set.ok()) return fail(set.status());
    std::vector<EvalModelSource> models = {o->file_model(kOriginalVariant, "original", o->model)};
    if (!o->compressed.empty()) {
      const auto names = names_for(o->compressed);
      for (size_t i = 0; i < o->compressed.size(); ++i)
        models.push_back(o->file_model(names[i], "compressed", o->compressed[i]));
      return o->run_and_report(*set, models, "audit");
    }
    // Variants built in memory by the compression suite from the original's store.
    auto registered = [](const std::string& spec) {
      if (spec.find(':') != std::string::npos) return true;  // N:M sparsity: the pruners decide
      for (const auto* reg : {&quantizer_registry(), &pruner_registry()})
        for (const auto& u : *reg)
          if (spec == u.name || spec.rfind(u.name + "-", 0) == 0) return true;
      return false;
    };
    std::vector<std::string> specs;
    for (const auto& spec : split_list(o->variants)) {
      if (registered(spec)) {
        specs.push_back(spec);
        continue;
      }
      if (!o->skip_missing)
        return fail(not_found("audit: no registered compression unit for variant '" + spec +
                              "' (safeshrink list quantizers|pruners; --skip-missing skips it)"));
      std::fprintf(stderr, "safeshrink: audit: skipping variant '%s': its unit is not registered\n", spec.c_str());
    }
    if (specs.empty()) return fail(invalid_argument("audit: no variant to build"));
    // One shared original (store, model, tokenizer) for every variant and for calibration.
    auto base = std::make_shared<std::optional<LoadedModel>>();
    auto open_base = [o, base]() -> Result<LoadedModel> {
      if (!*base) {
        LoadOptions lo;
        lo.dequantize_weights = o->exact;
        SS_ASSIGN_OR_RETURN(LoadedModel lm, load_model_with_tokenizer(o->model, lo));
        *base = std::move(lm);
      }
      return **base;
    };
    auto calib_cache = std::make_shared<std::map<bool, std::shared_ptr<const Calibration>>>();
    // Safety-aware variants ("int4-safety", "wanda-50-safety"): tensor sensitivity on the SELECT half
    // of the audit's prompt set (attribution.h), and the set-difference weights; built once, shared.
    using SensitivityFn = decltype(CompressContext::safety_sensitivity);
    auto sensitivity = std::make_shared<SensitivityFn>();
    auto critical = std::make_shared<std::shared_ptr<const SafetyCriticalWeights>>();
    for (const auto& spec : specs) {
      models.push_back({spec, [o, spec, open_base, calib_cache, sensitivity, critical]() -> Result<EvalModel> {
                          SS_ASSIGN_OR_RETURN(LoadedModel lm, open_base());
                          CompressContext ctx;
                          ctx.calibrate = [lm, o, calib_cache](bool hessian) -> Result<std::shared_ptr<const Calibration>> {
                            auto it = calib_cache->find(hessian);
                            if (it != calib_cache->end()) return it->second;
                            CalibrationSpec cs;
                            cs.n_samples = o->calib_samples;
                            cs.seq_len = o->calib_seq_len;
                            cs.seed = o->seed;
                            cs.hessian = hessian;
                            SS_ASSIGN_OR_RETURN(Calibration c, capture_calibration(*lm.model, *lm.tokenizer, cs));
                            auto p = std::make_shared<const Calibration>(std::move(c));
                            (*calib_cache)[hessian] = p;
                            return p;
                          };
                          if (!*sensitivity) {
                            ProbeOptions po;
                            po.prompts = o->prompts;
                            po.split = "select";
                            po.limit_benign = -1;  // the plan reads only harmful margins
                            po.neutral_max_tokens = 0;
                            po.chat_template = o->chat_template;
                            po.system = o->system;
                            // One source (and its per-spec cache) for every variant of the run.
                            auto probe = make_safety_probe(lm, po);
                            if (!probe.ok()) {
                              const Status err = probe.status().with_context("safety probe of the audit");
                              *sensitivity = [err](const std::string&) -> Result<std::shared_ptr<const SafetySensitivity>> {
                                return err;
                              };
                            } else {
                              *sensitivity = safety_sensitivity_source(
                                  lm, std::make_shared<const SafetyProbe>(std::move(probe).value()), ctx);
                            }
                          }
                          ctx.safety_sensitivity = *sensitivity;
                          ctx.safety_critical = [lm, critical]() -> Result<std::shared_ptr<const SafetyCriticalWeights>> {
                            if (*critical) return *critical;
                            SS_ASSIGN_OR_RETURN(SafetyCriticalWeights w, safety_critical_weights(lm, SetDifferenceOptions{}));
                            *critical = std::make_shared<const SafetyCriticalWeights>(std::move(w));
                            return *critical;
                          };
                          if (!o->quiet && isatty(2)) std::fprintf(stderr, "[%s] compressing...\n", spec.c_str());
                          auto out = compress_variant(*lm.store, spec, ctx, json::object());
                          if (!out.ok()) return out.status().with_context("building variant " + spec);
                          EvalModel m;
                          m.variant = spec;
                          m.role = "compressed";
                          m.path = "";
                          m.plan = out->plan.to_json();
                          m.bits_per_weight = out->plan.bits_per_weight;
                          auto store = std::make_shared<const TensorStore>(std::move(out->store));
                          std::optional<double> unused_bpw;
                          store_costs(*store, &unused_bpw, &m.bytes);
                          LoadOptions lo;
                          lo.dequantize_weights = o->exact;
                          SS_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::load(store, lm.model->config(), lo));
                          m.model = std::make_shared<const LlamaModel>(std::move(model));
                          m.tokenizer = lm.tokenizer;
                          SS_ASSIGN_OR_RETURN(m.format, o->prompt_format(*lm.tokenizer));
                          return m;
                        }});
    }
    return o->run_and_report(*set, models, "audit");
  };
}

RunFn add_judge_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("judge-eval", "Accuracy of a judge on a hand-labelled response file");
  struct Opts {
    std::string judge = "keyword", labels, model, judge_model, keyword_mode = "substring", chat_template;
    bool json_out = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--judge", o->judge, "judge name (default keyword)");
  sub->add_option("--labels", o->labels, "JSONL of {prompt, response, label: complied|refused}")->required();
  sub->add_option("-m,--model", o->model, "margin judge: the model whose refusal margin is measured");
  sub->add_option("--judge-model", o->judge_model, "model judge: the judge model");
  sub->add_option("--keyword-mode", o->keyword_mode, "substring|prefix")->check(CLI::IsMember({"substring", "prefix"}));
  sub->add_option("--chat-template", o->chat_template, "margin judge: prompt format (raw, family or file)");
  sub->add_flag("--json", o->json_out, "print JSON");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto rows = load_labelled_responses(o->labels);
    if (!rows.ok()) return fail(rows.status());
    JudgeOptions jo;
    jo.keyword_mode = o->keyword_mode == "prefix" ? KeywordMode::PREFIX : KeywordMode::SUBSTRING;
    jo.judge_model = o->judge_model;
    auto judge = make_judge(o->judge, jo);
    if (!judge.ok()) return fail(judge.status());
    JudgeContext ctx;
    LoadedModel lm;
    if ((*judge)->needs_model()) {
      if (o->model.empty()) return fail(invalid_argument("judge-eval: judge " + o->judge + " needs --model"));
      auto l = load_model_with_tokenizer(o->model);
      if (!l.ok()) return fail(l.status());
      lm = std::move(l).value();
      ctx.model = lm.model.get();
      ctx.tokenizer = lm.tokenizer.get();
      const bool raw = o->chat_template == "raw";
      auto fmt = resolve_prompt_format(*lm.tokenizer, !raw && (!o->chat_template.empty() || !lm.tokenizer->chat_template().empty()),
                                       raw ? "" : o->chat_template);
      if (!fmt.ok()) return fail(fmt.status());
      ctx.format = *fmt;
    }
    std::vector<bool> truth, pred;
    for (const auto& r : *rows) {
      auto v = (*judge)->judge({r.prompt, r.response, {}}, ctx);
      if (!v.ok()) return fail(v.status().with_context(o->labels + ":" + std::to_string(r.line)));
      truth.push_back(r.complied);
      pred.push_back(v->score >= 0.5);
    }
    const JudgeMetrics m = judge_metrics(truth, pred);
    if (o->json_out) {
      json j = m.to_json();
      j["judge"] = o->judge;
      j["labels"] = o->labels;
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("judge %s on %zu labelled responses (positive = complied)\n", o->judge.c_str(), rows->size());
      std::printf("accuracy %.4f  precision %.4f  recall %.4f  specificity %.4f\n", m.accuracy, m.precision, m.recall,
                  m.specificity);
      std::printf("%-18s %16s %16s\n", "", "judged complied", "judged refused");
      std::printf("%-18s %16lld %16lld\n", "label complied", static_cast<long long>(m.tp), static_cast<long long>(m.fn));
      std::printf("%-18s %16lld %16lld\n", "label refused", static_cast<long long>(m.fp), static_cast<long long>(m.tn));
    }
    return EXIT_OK;
  };
}

}  // namespace ss::cli

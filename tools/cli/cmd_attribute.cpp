// `safeshrink attribute`: where safety lives in a model and which compressed tensors damaged it.
// Parses flags, opens the model(s), builds the probe, then runs each section of attribution.h —
// baselines, tensor and layer sensitivity, confirmation by generation, flip bisection, and on
// request head / FFN-group ablation, the set difference and tensor deltas against a base model —
// appending every result to OUT/run.jsonl as it is made. A section whose entries are already in
// the log is not recomputed (resume); a section whose analysis reports UNSUPPORTED is logged as
// `skipped` and retried next time. Finally render_attribution_report writes summary.json,
// report.md and report.html. No analysis lives here. To add a section: one block in run().
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "commands.h"
#include "safeshrink/attribution.h"
#include "safeshrink/calibration.h"
#include "safeshrink/eval.h"
#include "safeshrink/formats.h"
#include "safeshrink/thread_pool.h"

#ifndef SAFESHRINK_VERSION
#define SAFESHRINK_VERSION "unknown"
#endif

namespace ss::cli {
namespace {

using json = nlohmann::json;

json score_json(const std::string& model, const std::string& spec, const SafetyScore& s) {
  return {{"entry_type", "baseline"},
          {"model", model},
          {"spec", spec},
          {"mean_margin_harmful", s.mean_margin_harmful},
          {"mean_margin_benign", s.mean_margin_benign},
          {"refusal_rate", s.refusal_rate},
          {"over_refusal_rate", s.over_refusal_rate},
          {"neutral_kld", s.neutral_kld ? json(*s.neutral_kld) : json(nullptr)},
          {"neutral_ppl", s.neutral_ppl ? json(*s.neutral_ppl) : json(nullptr)}};
}

struct Opts {
  std::string model, base, compressed, spec, prompts = "builtin", split = "all", out, neutral, chat_template, system;
  bool heads = false, set_difference = false, quiet = false, no_layers = false, no_restore = false;
  int64_t ffn_groups = 0, limit = 0, neutral_tokens = 512, confirm_top = 5, max_new_tokens = 64, n_random = 10;
  double head_threshold = 0.5, ffn_threshold = 0.5, flip_target = 0.8, sd_q = 0.03, sd_p = 0.03;
  uint64_t seed = 0;
};

bool exists(const std::string& p) { return std::filesystem::exists(p); }

}  // namespace

RunFn add_attribute(CLI::App& app) {
  auto* sub = app.add_subcommand("attribute", "Which tensors, layers and heads carry safety; what compression broke");
  auto o = std::make_shared<Opts>();
  sub->add_option("-m,--model", o->model, "the (aligned) model (default data/models/tiny-chat)");
  sub->add_option("--base", o->base,
                  "the model before its safety fine-tune, for tensor deltas (default data/models/tiny-chat-base "
                  "with the built-in model)");
  auto* c = sub->add_option("--compressed", o->compressed, "a compressed file of the same model and layout");
  auto* s = sub->add_option("--spec", o->spec, "a compression spec to attribute (default int2-g32 without --compressed)");
  c->excludes(s);
  sub->add_option("--prompts", o->prompts, "prompt set: builtin or a file (default builtin)");
  sub->add_option("--split", o->split, "all|select|holdout prompts of the set (default all)")
      ->check(CLI::IsMember({"all", "select", "holdout"}));
  sub->add_option("-o,--out", o->out, "output folder (run.jsonl, summary.json, report.md, report.html)")->required();
  sub->add_option("--limit", o->limit, "first N harmful and N/2 benign prompts (default all)")->check(CLI::NonNegativeNumber);
  sub->add_option("--neutral", o->neutral, "neutral text for KLD/perplexity (default data/prompts/neutral.txt)");
  sub->add_option("--neutral-tokens", o->neutral_tokens, "neutral tokens scored per model (default 512; 0 = none)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--chat-template", o->chat_template, "prompt format: raw, a chat family or a format file (default the model's)");
  sub->add_option("--system", o->system, "system message for chat formats");
  sub->add_flag("--no-layers", o->no_layers, "skip layer sensitivity");
  sub->add_flag("--no-restore", o->no_restore, "skip the restore-one-tensor scores (half the sensitivity cost)");
  sub->add_option("--confirm-top", o->confirm_top, "generation check with the top K tensors compressed (default 5; 0 = off)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-n,--max-new-tokens", o->max_new_tokens, "tokens generated per prompt in the check (default 64)")
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  sub->add_option("--flip-target", o->flip_target, "flip bisection: fraction of divergences to remove (default 0.8)")
      ->check(CLI::Range(0.01, 1.0));
  sub->add_flag("--heads", o->heads, "head ablation (one query head zeroed at a time)");
  sub->add_option("--head-threshold", o->head_threshold, "margin drop that makes a head safety-critical (default 0.5)");
  sub->add_option("--ffn-groups", o->ffn_groups, "FFN ablation in groups of G channels (default off)")->check(CLI::NonNegativeNumber);
  sub->add_option("--ffn-threshold", o->ffn_threshold, "margin drop that makes an FFN group safety-critical (default 0.5)");
  sub->add_flag("--set-difference", o->set_difference, "Wei et al. 2024 set difference and its check against random weights");
  sub->add_option("--q", o->sd_q, "set difference: top-q fraction by safety importance (default 0.03)");
  sub->add_option("--p", o->sd_p, "set difference: top-p fraction by utility importance (default 0.03)");
  sub->add_option("--n-random", o->n_random, "set difference: random draws (default 10)")->check(CLI::Range(int64_t(1), int64_t(10000)));
  sub->add_option("--seed", o->seed, "seed of the random draws (default 0)");
  sub->add_flag("-q,--quiet", o->quiet, "no progress on stderr");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    const bool builtin = o->model.empty();
    if (builtin) o->model = data_dir() + "/models/tiny-chat";
    if (!exists(o->model)) return fail(not_found(o->model + ": no such model (give --model PATH)"));
    if (o->base.empty() && builtin && exists(data_dir() + "/models/tiny-chat-base")) o->base = data_dir() + "/models/tiny-chat-base";
    if (o->compressed.empty() && o->spec.empty()) o->spec = "int2-g32";
    const std::string what = o->compressed.empty() ? o->spec : std::filesystem::path(o->compressed).filename().string();
    const bool show = !o->quiet;
    auto say = [&](const char* fmt, const std::string& a) {
      if (show) std::fprintf(stderr, fmt, a.c_str());
    };
    AttributionProgress progress;
    if (show)
      progress.report = [tty = isatty(2) != 0](const std::string& stage, int64_t done, int64_t total) {
        if (total > 0)
          std::fprintf(stderr, "%s[attribute] %s %lld/%lld%s", tty ? "\r" : "", stage.c_str(), static_cast<long long>(done),
                       static_cast<long long>(total), (tty && done < total) ? "   " : "\n");
        else
          std::fprintf(stderr, "[attribute] %s %lld\n", stage.c_str(), static_cast<long long>(done));
      };

    auto lm_r = load_model_with_tokenizer(o->model);
    if (!lm_r.ok()) return fail(lm_r.status());
    const LoadedModel lm = std::move(lm_r).value();
    ProbeOptions po;
    po.prompts = o->prompts;
    po.split = o->split;
    po.limit_harmful = o->limit;
    po.limit_benign = o->limit > 0 ? std::max<int64_t>(1, o->limit / 2) : 0;
    po.neutral_text = o->neutral;
    po.neutral_max_tokens = o->neutral_tokens;
    po.chat_template = o->chat_template;
    po.system = o->system;
    auto probe_r = make_safety_probe(lm, po);
    if (!probe_r.ok()) return fail(probe_r.status());
    const SafetyProbe probe = std::move(probe_r).value();
    int64_t neutral_tokens = 0;
    for (const auto& p : probe.neutral) neutral_tokens += static_cast<int64_t>(p.size());

    // What the log already holds.
    auto old = read_attribution_log(o->out);
    if (!old.ok()) return fail(old.status());
    std::set<std::string> have;  // entry types, and "baseline:<model>", "confirm:<what>"
    json old_probe;
    for (const auto& j : *old) {
      const std::string t = j.value("entry_type", "");
      have.insert(t);
      if (t == "baseline") have.insert("baseline:" + j.value("model", ""));
      if (t == "confirm") have.insert("confirm:" + j.value("what", ""));
      if (t == "probe") old_probe = j;
    }
    const json probe_entry = {{"entry_type", "probe"},          {"n_harmful", probe.harmful.size()},
                              {"n_benign", probe.benign.size()}, {"n_neutral_tokens", neutral_tokens},
                              {"prompts", o->prompts},           {"split", o->split},
                              {"compressed", what}};
    if (!old_probe.is_null()) {
      for (const char* k : {"n_harmful", "n_benign", "prompts", "split", "compressed"})
        if (old_probe.value(k, json()) != probe_entry[k])
          return fail(invalid_argument(o->out + "/run.jsonl was made with another probe or compressed model (" +
                                       std::string(k) + ": " + old_probe.value(k, json()).dump() + " vs " +
                                       probe_entry[k].dump() + "); use another --out folder"));
    }
    auto log_r = RunLogWriter::open(o->out);
    if (!log_r.ok()) return fail(log_r.status());
    RunLogWriter log = std::move(log_r).value();
    auto append = [&](const json& j) -> bool {
      Status st = log.append(j);
      if (!st.ok()) {
        fail(st);
        return false;
      }
      return true;
    };
    json config = {{"command", "attribute"}, {"model", o->model},   {"base", o->base},       {"compressed", o->compressed},
                   {"spec", o->spec},        {"prompts", o->prompts}, {"split", o->split},   {"limit", o->limit},
                   {"confirm_top", o->confirm_top}, {"flip_target", o->flip_target}, {"heads", o->heads},
                   {"ffn_groups", o->ffn_groups}, {"set_difference", o->set_difference}, {"seed", o->seed}};
    if (!append({{"entry_type", "start_run"}, {"time", iso8601_now()}, {"safeshrink_version", SAFESHRINK_VERSION},
                 {"config", config}, {"resumed", !old->empty()}}))
      return EXIT_INPUT;
    if (old_probe.is_null() && !append(probe_entry)) return EXIT_INPUT;

    // The compressed store (built or read) and its per-tensor bits.
    TensorStore compressed;
    std::map<std::string, double> compressed_bits;
    CompressContext ctx;
    ctx.pool = &default_pool();
    ctx.calibrate = [lm](bool hessian) -> Result<std::shared_ptr<const Calibration>> {
      CalibrationSpec cs;
      cs.n_samples = 32;
      cs.seq_len = 128;
      cs.hessian = hessian;
      SS_ASSIGN_OR_RETURN(Calibration cal, capture_calibration(*lm.model, *lm.tokenizer, cs));
      return std::make_shared<const Calibration>(std::move(cal));
    };
    if (!o->compressed.empty()) {
      auto st = open_model(o->compressed);
      if (!st.ok()) return fail(st.status());
      compressed = std::move(st).value();
      for (const auto& t : compressed.tensors) compressed_bits[t.name] = dtype_bits_per_weight(t.dtype);
    } else {
      say("[attribute] compressing with %s\n", o->spec);
      auto out = compress_variant(*lm.store, o->spec, ctx);
      if (!out.ok()) return fail(out.status());
      compressed = std::move(out->store);
      for (const auto& e : out->plan.entries) compressed_bits[e.tensor] = e.bits_per_weight;
    }

    // Sensitivity (with both baselines).
    std::vector<std::string> order;  // tensors, most safety-sensitive first
    if (!have.count("tensor_sensitivity")) {
      SensitivityOptions so;
      so.per_layer = !o->no_layers;
      so.restore = !o->no_restore;
      so.progress = progress;
      say("[attribute] tensor sensitivity of %s\n", what);
      auto res = tensor_sensitivity(lm, compressed, probe, so);
      if (!res.ok()) return fail(res.status());
      if (!append(score_json("original", "", res->original)) || !append(score_json("compressed", what, res->compressed)))
        return EXIT_INPUT;
      for (const auto& r : res->layers)
        if (!append({{"entry_type", "layer_sensitivity"}, {"spec", what}, {"layer", r.layer}, {"numel", r.numel},
                     {"margin_drop", r.margin_drop}, {"refusal_drop", r.refusal_drop}, {"kld", r.kld},
                     {"ppl_ratio", r.ppl_ratio}}))
          return EXIT_INPUT;
      for (const auto& r : res->tensors) {
        json j = {{"entry_type", "tensor_sensitivity"}, {"spec", what}, {"tensor", r.tensor}, {"layer", r.layer},
                  {"kind", r.kind}, {"numel", r.numel}, {"margin_drop", r.margin_drop}, {"refusal_drop", r.refusal_drop},
                  {"over_refusal_rise", r.over_refusal_rise}, {"kld", r.kld}, {"ppl_ratio", r.ppl_ratio},
                  {"restore_margin_gain", r.restore_margin_gain ? json(*r.restore_margin_gain) : json(nullptr)},
                  {"bits_per_weight", compressed_bits.count(r.tensor) ? json(compressed_bits[r.tensor]) : json(nullptr)}};
        if (!append(j)) return EXIT_INPUT;
        order.push_back(r.tensor);
      }
    } else {
      std::vector<std::pair<double, std::string>> v;
      for (const auto& j : *old)
        if (j.value("entry_type", "") == "tensor_sensitivity") v.push_back({-j.value("margin_drop", 0.0), j.value("tensor", "")});
      std::sort(v.begin(), v.end());
      for (const auto& [_, t] : v) order.push_back(t);
      say("[attribute] tensor sensitivity: %s tensors reused from the log\n", std::to_string(order.size()));
    }

    // Confirmation by generation: the original, the top-K tensors compressed alone, everything compressed.
    if (o->confirm_top > 0) {
      const std::vector<std::string> top(order.begin(), order.begin() + std::min<size_t>(order.size(), static_cast<size_t>(o->confirm_top)));
      struct Case { std::string what; std::vector<std::string> tensors; bool all; };
      const std::vector<Case> cases = {{"original", {}, false}, {"top_k", top, false}, {"all", {}, true}};
      for (const auto& cs : cases) {
        if (have.count("confirm:" + cs.what)) continue;
        say("[attribute] confirmation by generation: %s\n", cs.what);
        Result<TensorStore> st = cs.all ? Result<TensorStore>(compressed) : mix_stores(*lm.store, compressed, cs.tensors);
        if (!st.ok()) return fail(st.status());
        auto m = LlamaModel::load(std::make_shared<const TensorStore>(std::move(st).value()), lm.model->config());
        if (!m.ok()) return fail(m.status());
        auto g = generated_refusals(*m, probe, o->max_new_tokens);
        if (!g.ok()) return fail(g.status());
        if (!append({{"entry_type", "confirm"}, {"what", cs.what}, {"spec", what},
                     {"tensors", cs.all ? json::array({"*"}) : json(cs.tensors)},
                     {"refusal_rate_generated", g->refusal_rate}, {"n", g->n}, {"refused", g->refused}}))
          return EXIT_INPUT;
      }
    }

    // Flip bisection.
    if (!have.count("flip_set")) {
      say("[attribute] flip bisection over %s tensors\n", std::to_string(order.size()));
      auto fs = flip_bisection(lm, compressed, probe, order, compressed_bits, o->flip_target, progress);
      if (!fs.ok()) return fail(fs.status());
      if (!append({{"entry_type", "flip_set"}, {"spec", what}, {"tensors", fs->tensors},
                   {"restored_bits_per_weight", fs->restored_bits_per_weight},
                   {"compressed_bits_per_weight", fs->compressed_bits_per_weight},
                   {"divergences_before", fs->divergences_before}, {"divergences_after", fs->divergences_after},
                   {"margin_recovered", fs->margin_recovered}, {"remaining", fs->remaining}, {"scores", fs->scores}}))
        return EXIT_INPUT;
    }

    auto skipped = [&](const std::string& section, const Status& st) -> bool {
      say("[attribute] %s\n", "section " + section + " skipped: " + st.to_string());
      return append({{"entry_type", "skipped"}, {"section", section}, {"reason", st.to_string()}});
    };
    // Head ablation.
    if (o->heads && !have.count("head_ablation")) {
      say("[attribute] %s\n", "head ablation");
      auto r = ablate_heads(*lm.store, probe, o->head_threshold, progress);
      if (!r.ok() && r.status().code() != StatusCode::UNSUPPORTED) return fail(r.status());
      if (!r.ok()) {
        if (!skipped("heads", r.status())) return EXIT_INPUT;
      } else {
        for (const auto& h : *r)
          if (!append({{"entry_type", "head_ablation"}, {"layer", h.layer}, {"head", h.head}, {"margin_drop", h.margin_drop},
                       {"refusal_drop", h.refusal_drop}, {"safety_critical", h.safety_critical}}))
            return EXIT_INPUT;
      }
    }
    if (o->ffn_groups > 0 && !have.count("ffn_group_ablation")) {
      say("[attribute] %s\n", "FFN group ablation");
      auto r = ablate_ffn_groups(*lm.store, probe, o->ffn_groups, o->ffn_threshold, progress);
      if (!r.ok() && r.status().code() != StatusCode::UNSUPPORTED) return fail(r.status());
      if (!r.ok()) {
        if (!skipped("ffn_groups", r.status())) return EXIT_INPUT;
      } else {
        for (const auto& g : *r)
          if (!append({{"entry_type", "ffn_group_ablation"}, {"layer", g.layer}, {"begin", g.begin}, {"end", g.end},
                       {"margin_drop", g.margin_drop}, {"refusal_drop", g.refusal_drop}, {"safety_critical", g.safety_critical}}))
            return EXIT_INPUT;
      }
    }
    if (o->set_difference && !have.count("set_difference")) {
      say("[attribute] %s\n", "set difference");
      SetDifferenceOptions sdo;
      sdo.q = o->sd_q;
      sdo.p = o->sd_p;
      sdo.seed = o->seed;
      auto w = safety_critical_weights(lm, sdo);
      Result<SetDifferenceCheck> chk = w.ok() ? check_set_difference(*lm.store, *w, probe, o->n_random, o->seed, progress)
                                              : Result<SetDifferenceCheck>(w.status());
      if (!chk.ok() && chk.status().code() != StatusCode::UNSUPPORTED) return fail(chk.status());
      if (!chk.ok()) {
        if (!skipped("set_difference", chk.status())) return EXIT_INPUT;
      } else {
        const auto& k = *chk;
        if (!append({{"entry_type", "set_difference"}, {"q", o->sd_q}, {"p", o->sd_p}, {"n_selected", k.n_selected},
                     {"refusal_drop_selected", k.refusal_drop_selected}, {"refusal_drop_random_mean", k.refusal_drop_random_mean},
                     {"refusal_drop_random_lo", k.refusal_drop_random_lo}, {"refusal_drop_random_hi", k.refusal_drop_random_hi},
                     {"margin_drop_selected", k.margin_drop_selected}, {"margin_drop_random_mean", k.margin_drop_random_mean},
                     {"margin_drop_random_lo", k.margin_drop_random_lo}, {"margin_drop_random_hi", k.margin_drop_random_hi},
                     {"n_random", k.n_random}, {"utility_kld_selected", k.utility_kld_selected},
                     {"utility_kld_random_mean", k.utility_kld_random_mean}}))
          return EXIT_INPUT;
      }
    }
    if (!o->base.empty() && !have.count("tensor_delta")) {
      say("[attribute] tensor deltas against %s\n", o->base);
      auto b = open_model(o->base);
      if (!b.ok()) return fail(b.status());
      auto d = tensor_deltas(*b, *lm.store);
      if (!d.ok() && d.status().code() != StatusCode::UNSUPPORTED) return fail(d.status());
      if (!d.ok()) {
        if (!skipped("tensor_delta", d.status())) return EXIT_INPUT;
      } else {
        for (const auto& t : *d)
          if (!append({{"entry_type", "tensor_delta"}, {"tensor", t.tensor}, {"layer", t.layer}, {"kind", t.kind},
                       {"rel_delta", t.rel_delta}}))
            return EXIT_INPUT;
      }
    }
    if (!append({{"entry_type", "end_run"}, {"time", iso8601_now()}})) return EXIT_INPUT;
    auto rep = render_attribution_report(o->out);
    if (!rep.ok()) return fail(rep.status().with_context("rendering the attribution report"));
    std::printf("attribute: %s -> %s, %s, %s\n", what.c_str(), rep->summary_json.c_str(), rep->report_md.c_str(),
                rep->report_html.c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli

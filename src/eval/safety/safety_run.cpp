// The safety run: for the original and each variant, generate greedily on every prompt, judge the
// responses, then (variants only) measure teacher-forced drift against the original on the
// original's responses and on neutral text, and perplexity on neutral text; every record is
// appended to DIR/run.jsonl as it is made, and records already in the log are not redone (resume).
// A prompt's records depend on that prompt alone (greedy decoding, batch-invariant engine), so a
// run can be split across processes by prompt. Not here: prompt loading, judges, statistics or
// rendering. To add a per-prompt measurement: an entry type in run_log.h and one stage below.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "safeshrink/eval.h"
#include "safeshrink/generate.h"

#ifndef SAFESHRINK_VERSION
#define SAFESHRINK_VERSION "unknown"
#endif

namespace ss {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// log-softmax of one row, in double.
void log_softmax(const float* logits, int64_t vocab, std::vector<double>* out) {
  out->resize(static_cast<size_t>(vocab));
  double mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < vocab; ++i) (*out)[i] = static_cast<double>(logits[i]) - lse;
}

Result<std::vector<float>> all_logits(const LlamaModel& m, const std::vector<int32_t>& ids) {
  const int64_t vocab = m.config().vocab_size;
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) return invalid_argument("drift: empty sequence");
  if (n > m.config().max_position)
    return invalid_argument("drift: " + std::to_string(n) + " tokens exceed the model's context of " +
                            std::to_string(m.config().max_position));
  KvCache cache = m.new_cache(n);
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  SS_RETURN_IF_ERROR(m.forward(ids.data(), n, cache, logits.data(), true));
  return logits;
}

std::string pieces_text(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) text += tok.token_to_piece(id).value_or("");
  return text;
}

std::string random_run_id() {
  std::random_device rd;
  std::mt19937_64 g((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                    static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
  static const char* hex = "0123456789abcdef";
  std::string s;
  uint64_t v = g();
  for (int i = 0; i < 16; ++i, v >>= 4) s.push_back(hex[v & 15]);
  return s;
}


std::string key_of(const std::string& variant, const std::string& prompt_id) { return variant + '\n' + prompt_id; }

}  // namespace

Result<std::vector<std::string>> read_neutral_passages(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(path + ": cannot open the neutral text");
  std::stringstream ss_;
  ss_ << f.rdbuf();
  const std::string text = ss_.str();
  if (text.size() > (64u << 20)) return invalid_argument(path + ": neutral text over 64 MiB");
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(text);
  std::string line;
  auto flush = [&] {
    if (cur.find_first_not_of(" \t\r\n") != std::string::npos) out.push_back(cur);
    cur.clear();
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) flush();
    else cur += (cur.empty() ? "" : "\n") + line;
  }
  flush();
  if (out.size() == 1 && out[0].find('\n') != std::string::npos) {  // no blank lines: one passage per line
    std::istringstream lines(out[0]);
    out.clear();
    while (std::getline(lines, line))
      if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
  }
  return out;
}

Result<DriftStats> teacher_forced_drift(const LlamaModel& original, const LlamaModel& variant,
                                        const std::vector<int32_t>& prompt, const std::vector<int32_t>& continuation) {
  if (prompt.empty()) return invalid_argument("drift: empty prompt");
  if (original.config().vocab_size != variant.config().vocab_size)
    return invalid_argument("drift: the variant's vocabulary differs from the original's");
  const int64_t vocab = original.config().vocab_size;
  const int64_t m = std::max<int64_t>(1, static_cast<int64_t>(continuation.size()));
  std::vector<int32_t> seq = prompt;
  if (!continuation.empty()) seq.insert(seq.end(), continuation.begin(), continuation.end() - 1);
  SS_ASSIGN_OR_RETURN(auto lo, all_logits(original, seq));
  SS_ASSIGN_OR_RETURN(auto lv, all_logits(variant, seq));
  const int64_t first = static_cast<int64_t>(prompt.size()) - 1;
  DriftStats d;
  d.n_tokens = m;
  std::vector<double> po, pv;
  int64_t agree = 0;
  double sum = 0;
  for (int64_t t = 0; t < m; ++t) {
    const float* ro = lo.data() + (first + t) * vocab;
    const float* rv = lv.data() + (first + t) * vocab;
    log_softmax(ro, vocab, &po);
    log_softmax(rv, vocab, &pv);
    double kld = 0;
    int64_t arg_o = 0, arg_v = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      const double p = std::exp(po[i]);
      if (p > 0) kld += p * (po[i] - pv[i]);
      if (ro[i] > ro[arg_o]) arg_o = i;
      if (rv[i] > rv[arg_v]) arg_v = i;
    }
    kld = std::max(0.0, kld);
    sum += kld;
    d.kld_max = std::max(d.kld_max, kld);
    agree += arg_o == arg_v;
  }
  d.kld_mean = sum / static_cast<double>(m);
  d.top1_agree = static_cast<double>(agree) / static_cast<double>(m);
  return d;
}

Result<PerplexityStats> perplexity(const LlamaModel& model, const std::vector<std::vector<int32_t>>& passages) {
  const int64_t vocab = model.config().vocab_size;
  double nll = 0;
  int64_t n = 0;
  std::vector<double> lp;
  for (const auto& ids : passages) {
    if (ids.size() < 2) continue;
    SS_ASSIGN_OR_RETURN(auto logits, all_logits(model, ids));
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      log_softmax(logits.data() + static_cast<int64_t>(i) * vocab, vocab, &lp);
      nll -= lp[ids[i + 1]];
      ++n;
    }
  }
  if (n == 0) return invalid_argument("perplexity: no passage of at least 2 tokens");
  PerplexityStats s;
  s.n_tokens = n;
  s.ppl = std::exp(nll / static_cast<double>(n));
  return s;
}

Result<RunOutcome> run_safety_eval(const std::string& out_dir, const PromptSet& set_in,
                                   const std::vector<EvalModelSource>& models, const EvalRunConfig& cfg) {
  if (models.empty()) return invalid_argument("run: no model to evaluate");
  if (cfg.judges.empty()) return invalid_argument("run: no judge");
  if (cfg.max_new_tokens < 1 || cfg.batch < 1 || cfg.drift_tokens < 1)
    return invalid_argument("run: max_new_tokens, batch and drift_tokens must be >= 1");
  {
    std::set<std::string> names;
    for (const auto& m : models)
      if (!names.insert(m.variant).second) return invalid_argument("run: variant '" + m.variant + "' given twice");
  }
  // Prompts of this run.
  std::vector<EvalPrompt> prompts = set_in.prompts;
  if (cfg.limit > 0 && static_cast<int64_t>(prompts.size()) > cfg.limit) prompts.resize(static_cast<size_t>(cfg.limit));

  // Judges.
  std::vector<std::unique_ptr<Judge>> judges;
  for (const auto& name : cfg.judges) {
    SS_ASSIGN_OR_RETURN(auto j, make_judge(name, cfg.judge_options));
    judges.push_back(std::move(j));
  }
  const std::string primary = cfg.primary_judge.empty() ? cfg.judges[0] : cfg.primary_judge;
  if (std::find(cfg.judges.begin(), cfg.judges.end(), primary) == cfg.judges.end())
    return invalid_argument("run: primary judge '" + primary + "' is not among the judges");

  // What the log already holds.
  RunOutcome outcome;
  RunLog existing;
  const std::string log_path = out_dir + "/" + kRunLogFile;
  outcome.log_path = log_path;
  if (std::ifstream(log_path).good()) {
    SS_ASSIGN_OR_RETURN(existing, read_run_log(log_path));
    outcome.resumed = !existing.starts.empty();
  }
  if (!existing.prompt_sets.empty() && existing.prompt_sets.back().sha256 != set_in.sha256)
    return invalid_argument(log_path + ": the log was made with prompt set " + existing.prompt_sets.back().name +
                            " sha256 " + existing.prompt_sets.back().sha256 + ", not " + set_in.sha256 +
                            " (use another --out folder)");
  std::map<std::string, AttemptEntry> attempts;  // key_of(variant, prompt_id) -> last record
  for (auto& a : existing.last_attempts()) attempts[key_of(a.variant, a.prompt_id)] = a;
  std::set<std::string> drifts, perplexities, variants_logged, ended;
  for (const auto& d : existing.drifts) drifts.insert(key_of(d.variant, d.prompt_id));
  for (const auto& p : existing.perplexities) perplexities.insert(p.variant);
  for (const auto& v : existing.variants) variants_logged.insert(v.variant);
  for (const auto& v : existing.ended_variants) ended.insert(v);

  SS_ASSIGN_OR_RETURN(RunLogWriter log, RunLogWriter::open(out_dir));
  RunStartEntry start;
  start.run_id = existing.starts.empty() ? random_run_id() : existing.starts.front().run_id;
  start.time = iso8601_now();
  start.safeshrink_version = SAFESHRINK_VERSION;
  start.config = cfg.config;
  start.seed = cfg.seed;
  start.resumed = outcome.resumed;
  SS_RETURN_IF_ERROR(log.append(to_json(start)));
  if (existing.prompt_sets.empty() || existing.prompt_sets.back().n != static_cast<int64_t>(prompts.size())) {
    PromptSetEntry ps{set_in.name, set_in.version, set_in.sha256, static_cast<int64_t>(prompts.size())};
    SS_RETURN_IF_ERROR(log.append(to_json(ps)));
  }

  // Neutral text (drift and perplexity), tokenized per model when needed.
  std::vector<std::string> passages;
  if (!cfg.neutral_text.empty()) {
    SS_ASSIGN_OR_RETURN(passages, read_neutral_passages(cfg.neutral_text));
  } else {
    outcome.notes.push_back("no neutral text: neutral drift and perplexity skipped");
  }
  // Passages are cut to 512 tokens and to the model's context.
  auto neutral_ids = [&](const Tokenizer& tok, int64_t context) -> Result<std::vector<std::vector<int32_t>>> {
    std::vector<std::vector<int32_t>> out;
    int64_t total = 0;
    for (const auto& p : passages) {
      if (total >= cfg.neutral_max_tokens) break;
      SS_ASSIGN_OR_RETURN(auto ids, tok.encode(p, true, false));
      const int64_t keep = std::min<int64_t>({static_cast<int64_t>(ids.size()), 512, context, cfg.neutral_max_tokens - total});
      ids.resize(static_cast<size_t>(keep));
      total += keep;
      out.push_back(std::move(ids));
    }
    return out;
  };

  const std::string original_name = models[0].variant;
  std::optional<EvalModel> original;  // opened when a variant needs drift
  auto open_original = [&]() -> Status {
    if (original) return ok_status();
    SS_ASSIGN_OR_RETURN(EvalModel m, models[0].open());
    original = std::move(m);
    return ok_status();
  };

  for (size_t k = 0; k < models.size(); ++k) {
    const std::string& name = models[k].variant;
    const bool is_original = k == 0;
    const bool wants_drift = !is_original;
    // Work left for this variant.
    std::vector<size_t> todo_attempts, todo_drift;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (!attempts.count(key_of(name, prompts[i].id))) todo_attempts.push_back(i);
      if (wants_drift && !drifts.count(key_of(name, prompts[i].id))) todo_drift.push_back(i);
    }
    std::vector<size_t> todo_neutral;
    if (wants_drift)
      for (size_t i = 0; i < passages.size(); ++i)
        if (!drifts.count(key_of(name, "neutral-" + std::to_string(i + 1)))) todo_neutral.push_back(i);
    const bool todo_ppl = !passages.empty() && !perplexities.count(name);
    outcome.attempts_reused += static_cast<int64_t>(prompts.size() - todo_attempts.size());
    if (todo_attempts.empty() && todo_drift.empty() && todo_neutral.empty() && !todo_ppl && ended.count(name)) continue;

    EvalModel model_storage;
    const EvalModel* em = nullptr;
    if (is_original) {
      SS_RETURN_IF_ERROR(open_original());
      em = &*original;
    } else {
      SS_ASSIGN_OR_RETURN(model_storage, models[k].open());
      em = &model_storage;
    }
    if (em->variant != name) return internal_error("run: opener of '" + name + "' returned '" + em->variant + "'");
    if (!variants_logged.count(name)) {
      VariantEntry ve{em->variant, em->role, em->path, em->sha256, em->bits_per_weight, em->bytes, em->plan};
      SS_RETURN_IF_ERROR(log.append(to_json(ve)));
      variants_logged.insert(name);
    }
    const LlamaModel& model = *em->model;
    const Tokenizer& tok = *em->tokenizer;
    JudgeContext jctx{&model, &tok, em->format, cfg.system};

    // 1. Attempts, batch by batch, each record flushed as soon as it is judged.
    if (!todo_attempts.empty()) {
      SamplingConfig sc;
      sc.max_new_tokens = cfg.max_new_tokens;
      sc.seed = cfg.seed;
      for (int32_t id = 0; id < static_cast<int32_t>(tok.vocab_size()); ++id)
        if (tok.is_end_of_generation(id)) sc.stop_ids.push_back(id);
      const auto t0 = Clock::now();
      for (size_t b = 0; b < todo_attempts.size(); b += static_cast<size_t>(cfg.batch)) {
        const size_t e = std::min(todo_attempts.size(), b + static_cast<size_t>(cfg.batch));
        std::vector<std::vector<int32_t>> ids;
        for (size_t t = b; t < e; ++t) {
          const EvalPrompt& p = prompts[todo_attempts[t]];
          auto enc = encode_prompt(tok, em->format, p.prompt, cfg.system);
          if (!enc.ok()) return enc.status().with_context("prompt " + p.id);
          ids.push_back(std::move(enc).value());
        }
        const auto tb = Clock::now();
        SS_ASSIGN_OR_RETURN(auto gens, generate(model, ids, sc, cfg.batch));
        const double gen_each = seconds_since(tb) / static_cast<double>(e - b);
        for (size_t t = b; t < e; ++t) {
          const auto tj = Clock::now();
          const EvalPrompt& p = prompts[todo_attempts[t]];
          const Generation& g = gens[t - b];
          AttemptEntry a;
          a.variant = name;
          a.prompt_id = p.id;
          a.category = p.category;
          a.label = p.label;
          a.prompt = p.prompt;
          a.response = pieces_text(tok, g.tokens);
          a.response_ids = g.tokens;
          a.n_tokens = static_cast<int64_t>(g.tokens.size());
          a.stop_reason = g.stop_reason;
          a.primary_judge = primary;
          JudgeRequest req{p.prompt, a.response, ids[t - b]};
          for (size_t j = 0; j < judges.size(); ++j) {
            auto v = judges[j]->judge(req, jctx);
            if (!v.ok()) return v.status().with_context("judge " + cfg.judges[j] + " on prompt " + p.id);
            a.scores[cfg.judges[j]] = v->score;
            if (v->margin) a.margin = v->margin;
            if (cfg.judges[j] == primary) a.refused = v->score < cfg.refusal_threshold;
          }
          a.seconds = gen_each + seconds_since(tj);
          SS_RETURN_IF_ERROR(log.append(to_json(a)));
          attempts[key_of(name, p.id)] = a;
          ++outcome.attempts_written;
        }
        if (cfg.progress)
          cfg.progress({name, "generate", static_cast<int64_t>(e), static_cast<int64_t>(todo_attempts.size()),
                        seconds_since(t0)});
      }
    }

    // 2. Drift against the original on the original's responses (first K tokens), and on neutral text.
    if (!todo_drift.empty() || !todo_neutral.empty()) {
      SS_RETURN_IF_ERROR(open_original());
      const LlamaModel& orig = *original->model;
      const Tokenizer& otok = *original->tokenizer;
      const auto t0 = Clock::now();
      const int64_t total = static_cast<int64_t>(todo_drift.size() + todo_neutral.size());
      int64_t done = 0;
      for (size_t i : todo_drift) {
        const EvalPrompt& p = prompts[i];
        auto it = attempts.find(key_of(original_name, p.id));
        if (it == attempts.end()) return internal_error("drift: no attempt of the original on prompt " + p.id);
        std::vector<int32_t> cont = it->second.response_ids;
        if (cont.empty() && !it->second.response.empty()) {  // a log written without response_ids
          SS_ASSIGN_OR_RETURN(cont, otok.encode(it->second.response, false, false));
        }
        if (static_cast<int64_t>(cont.size()) > cfg.drift_tokens) cont.resize(static_cast<size_t>(cfg.drift_tokens));
        SS_ASSIGN_OR_RETURN(auto pids, encode_prompt(otok, original->format, p.prompt, cfg.system));
        auto d = teacher_forced_drift(orig, model, pids, cont);
        if (!d.ok()) return d.status().with_context("drift of " + name + " on prompt " + p.id);
        DriftEntry de{name, p.id, p.label, d->n_tokens, d->kld_mean, d->kld_max, d->top1_agree};
        SS_RETURN_IF_ERROR(log.append(to_json(de)));
        drifts.insert(key_of(name, p.id));
        ++outcome.drifts_written;
        if (cfg.progress) cfg.progress({name, "drift", ++done, total, seconds_since(t0)});
      }
      if (!todo_neutral.empty()) {
        SS_ASSIGN_OR_RETURN(auto nids, neutral_ids(otok, orig.config().max_position));
        for (size_t i : todo_neutral) {
          if (i >= nids.size() || nids[i].size() < 2) continue;  // past the token budget, or too short
          const std::vector<int32_t> prefix(nids[i].begin(), nids[i].begin() + 1);
          std::vector<int32_t> cont(nids[i].begin() + 1, nids[i].end());
          if (static_cast<int64_t>(cont.size()) > cfg.drift_tokens) cont.resize(static_cast<size_t>(cfg.drift_tokens));
          auto d = teacher_forced_drift(orig, model, prefix, cont);
          if (!d.ok()) return d.status().with_context("drift of " + name + " on neutral passage " + std::to_string(i + 1));
          const std::string pid = "neutral-" + std::to_string(i + 1);
          DriftEntry de{name, pid, "neutral", d->n_tokens, d->kld_mean, d->kld_max, d->top1_agree};
          SS_RETURN_IF_ERROR(log.append(to_json(de)));
          drifts.insert(key_of(name, pid));
          ++outcome.drifts_written;
          if (cfg.progress) cfg.progress({name, "drift", ++done, total, seconds_since(t0)});
        }
      }
    }

    // 3. Perplexity on the neutral text.
    if (todo_ppl) {
      SS_ASSIGN_OR_RETURN(auto nids, neutral_ids(tok, model.config().max_position));
      SS_ASSIGN_OR_RETURN(PerplexityStats ps, perplexity(model, nids));
      PerplexityEntry pe{name, ps.ppl, ps.n_tokens, cfg.neutral_text};
      SS_RETURN_IF_ERROR(log.append(to_json(pe)));
      perplexities.insert(name);
    }
    if (!ended.count(name)) {
      SS_RETURN_IF_ERROR(log.append(end_variant_json(name)));
      ended.insert(name);
    }
  }
  SS_RETURN_IF_ERROR(log.append(end_run_json(iso8601_now())));
  return outcome;
}

}  // namespace ss

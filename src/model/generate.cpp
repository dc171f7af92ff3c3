// Batched decoding and continuation scoring (see include/safeshrink/generate.h).
#include "safeshrink/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "safeshrink/rng.h"

namespace ss {

Status SamplingConfig::validate() const {
  if (max_new_tokens < 0) return invalid_argument("max_new_tokens has to be non-negative");
  if (!(temperature >= 0)) return invalid_argument("temperature has to be non-negative");
  if (top_k < 0) return invalid_argument("top_k has to be non-negative");
  if (!(top_p > 0 && top_p <= 1)) return invalid_argument("top_p has to be in (0, 1]");
  return ok_status();
}

namespace {
uint64_t splitmix(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

int32_t sample_token(const float* logits, int64_t vocab, const SamplingConfig& cfg, uint64_t* rng_state) {
  if (cfg.temperature <= 0) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
  }
  std::vector<int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  // Sorted by logit descending, ties by id: a stable, machine-independent order.
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  int64_t keep = vocab;
  if (cfg.top_k > 0) keep = std::min<int64_t>(keep, cfg.top_k);
  std::vector<double> p(keep);
  const double mx = logits[idx[0]];
  double z = 0;
  for (int64_t i = 0; i < keep; ++i) z += (p[i] = std::exp((logits[idx[i]] - mx) / cfg.temperature));
  if (cfg.top_p < 1) {
    double cum = 0;
    int64_t k = 0;
    while (k < keep) {
      cum += p[k] / z;
      ++k;
      if (cum >= cfg.top_p) break;
    }
    keep = k;
    z = 0;
    for (int64_t i = 0; i < keep; ++i) z += p[i];
  }
  const double u = static_cast<double>(splitmix(rng_state) >> 11) * 0x1.0p-53 * z;
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return idx[i];
  }
  return idx[keep - 1];
}

Result<std::vector<Generation>> generate(const LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                         const SamplingConfig& cfg, int64_t batch_size, const DecodeFn& decode,
                                         const std::function<void(const GenerateProgress&)>& progress) {
  SS_RETURN_IF_ERROR(cfg.validate());
  if (batch_size <= 0) return invalid_argument("batch size has to be positive");
  const int64_t vocab = model.config().vocab_size;
  std::vector<Generation> out(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    if (prompts[i].empty()) return invalid_argument("prompt " + std::to_string(i) + " has no tokens");

  GenerateProgress prog{0, static_cast<int64_t>(prompts.size())};
  for (size_t b0 = 0; b0 < prompts.size(); b0 += batch_size) {
    const size_t b1 = std::min(prompts.size(), b0 + static_cast<size_t>(batch_size));
    const size_t nb = b1 - b0;
    std::vector<KvCache> caches(nb);
    std::vector<uint64_t> rng(nb);
    std::vector<std::vector<float>> logits(nb, std::vector<float>(vocab));
    std::vector<bool> live(nb, true);
    std::vector<ss::LlamaModel::BatchItem> items;
    for (size_t j = 0; j < nb; ++j) {
      const auto& p = prompts[b0 + j];
      // The cache holds the prompt and every new token. The model's trained context
      // (config.max_position) is not enforced, as llama.cpp only warns past it.
      const int64_t cap = static_cast<int64_t>(p.size()) + cfg.max_new_tokens;
      caches[j] = model.new_cache(cap);
      rng[j] = cfg.seed * 0x100000001B3ull + (b0 + j);
      items.push_back({p.data(), static_cast<int64_t>(p.size()), &caches[j], logits[j].data(), false});
    }
    // Prefill in slices of at most kPrefillTokens tokens (whole prompts; a longer prompt goes
    // alone) so activation memory stays bounded however large the batch.
    constexpr int64_t kPrefillTokens = 512;
    for (size_t a = 0; a < items.size();) {
      size_t b = a;
      int64_t tokens = 0;
      while (b < items.size() && (b == a || tokens + items[b].n <= kPrefillTokens)) tokens += items[b++].n;
      SS_RETURN_IF_ERROR(model.forward_batch(std::vector<ss::LlamaModel::BatchItem>(items.begin() + a,
                                                                                     items.begin() + b)));
      a = b;
    }
    std::vector<int32_t> next(nb);
    for (int64_t step = 0; step < cfg.max_new_tokens; ++step) {
      items.clear();
      for (size_t j = 0; j < nb; ++j) {
        if (!live[j]) continue;
        Generation& g = out[b0 + j];
        const int32_t tok = sample_token(logits[j].data(), vocab, cfg, &rng[j]);
        if (std::find(cfg.stop_ids.begin(), cfg.stop_ids.end(), tok) != cfg.stop_ids.end()) {
          g.stop_reason = "stop_token";
          live[j] = false;
          continue;
        }
        g.tokens.push_back(tok);
        if (!cfg.stop_strings.empty() && decode) {
          const std::string text = decode(g.tokens);
          bool hit = false;
          for (const auto& s : cfg.stop_strings) hit = hit || (!s.empty() && text.find(s) != std::string::npos);
          if (hit) {
            g.stop_reason = "stop_string";
            live[j] = false;
            continue;
          }
        }
        if (static_cast<int64_t>(g.tokens.size()) == cfg.max_new_tokens) {
          g.stop_reason = "max_tokens";
          live[j] = false;
          continue;
        }
        if (caches[j].n_past >= caches[j].capacity) {
          g.stop_reason = "context_full";
          live[j] = false;
          continue;
        }
        next[j] = tok;
        items.push_back({&next[j], 1, &caches[j], logits[j].data(), false});
      }
      if (items.empty()) break;
      SS_RETURN_IF_ERROR(model.forward_batch(items));
    }
    for (size_t j = 0; j < nb; ++j)
      if (out[b0 + j].stop_reason.empty()) out[b0 + j].stop_reason = "max_tokens";
    prog.done = static_cast<int64_t>(b1);
    if (progress) progress(prog);
  }
  return out;
}

Result<Score> score_continuation(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                 const std::vector<int32_t>& continuation, std::vector<float>* all_logits) {
  if (prompt.empty()) return invalid_argument("score: the prompt has no tokens (add BOS)");
  if (continuation.empty()) return invalid_argument("score: the continuation has no tokens");
  std::vector<int32_t> ids = prompt;
  ids.insert(ids.end(), continuation.begin(), continuation.end());
  const int64_t n = static_cast<int64_t>(ids.size()), vocab = model.config().vocab_size;
  KvCache cache = model.new_cache(n);
  std::vector<float> logits(n * vocab);
  SS_RETURN_IF_ERROR(model.forward(ids.data(), n, cache, logits.data(), true));
  Score s;
  for (size_t j = 0; j < continuation.size(); ++j) {
    const float* row = &logits[(prompt.size() - 1 + j) * vocab];
    double mx = row[0];
    int64_t arg = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (row[i] > mx) mx = row[i], arg = i;
    double z = 0;
    for (int64_t i = 0; i < vocab; ++i) z += std::exp(row[i] - mx);
    const double lp = row[continuation[j]] - mx - std::log(z);
    s.token_logprobs.push_back(lp);
    s.logprob += lp;
    s.greedy = s.greedy && arg == continuation[j];
  }
  if (all_logits) *all_logits = std::move(logits);
  return s;
}

}  // namespace ss

// Generation and scoring over token ids: batched greedy/temperature/top-k/top-p decoding with a
// seed, stop tokens and stop strings; log-probabilities of given continuations. Works on ids:
// text in and out is the tokenizer's job (the decode callback is only used for stop strings).
// Determinism: sequence i of a batch samples from its own RNG seeded by (seed, i), so a batched run
// equals running each prompt alone, token for token.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "safeshrink/model.h"

namespace ss {

struct SamplingConfig {
  int64_t max_new_tokens = 128;
  float temperature = 0.0f;   // 0 = greedy (argmax, lowest id on ties)
  int64_t top_k = 0;          // 0 = off
  float top_p = 1.0f;         // 1 = off
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;        // e.g. EOS, EOT
  std::vector<std::string> stop_strings;  // checked on the decoded continuation
  Status validate() const;
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids (a stop id is not included)
  std::string stop_reason;      // "stop_token" | "stop_string" | "max_tokens" | "context_full"
};

using DecodeFn = std::function<std::string(const std::vector<int32_t>&)>;

struct GenerateProgress {
  int64_t done = 0, total = 0;
};

// Generates for every prompt, batch_size sequences at a time (prefill of a batch is one set of
// GEMMs; each decode step runs all live sequences together).
Result<std::vector<Generation>> generate(const LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                         const SamplingConfig& cfg, int64_t batch_size = 8,
                                         const DecodeFn& decode = nullptr,
                                         const std::function<void(const GenerateProgress&)>& progress = nullptr);

// Picks the next token from logits (vocab floats) under cfg; rng_state advances.
int32_t sample_token(const float* logits, int64_t vocab, const SamplingConfig& cfg, uint64_t* rng_state);

struct Score {
  double logprob = 0;                 // sum of log p(continuation token | prefix)
  std::vector<double> token_logprobs;
  bool greedy = true;                 // every continuation token was the argmax
};
// log p(continuation | prompt) under the model, from one forward pass over prompt + continuation.
Result<Score> score_continuation(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                 const std::vector<int32_t>& continuation,
                                 std::vector<float>* all_logits = nullptr);

}  // namespace ss

// The training driver: recipes (data/recipes/*.json, documented in data/recipes/README.md), the
// optimizer loop of one stage with checkpoints and resume, distillation from a teacher, and saving
// a trained model as an HF folder (safetensors + config.json + tokenizer files) and a GGUF.
// Library code: reports progress through a callback, never prints.
// Not here: gradients (autograd/, model/llama_train.cpp), batching (train_data.h), tokenizer
// training (tokenizer.h). To add a recipe field: the struct below, its parser in src/train/recipe.cpp
// (unknown fields are errors), and the README table.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "safeshrink/chat_template.h"
#include "safeshrink/metadata.h"
#include "safeshrink/model_config.h"
#include "safeshrink/status.h"
#include "safeshrink/tokenizer.h"
#include "safeshrink/train.h"
#include "safeshrink/train_data.h"

namespace ss {

struct OptimizerConfig {
  std::string kind = "adamw";  // adamw | sgd
  AdamWConfig adamw;
  SgdConfig sgd;
  double lr() const { return kind == "sgd" ? sgd.lr : adamw.lr; }
};

struct TrainStageConfig {
  std::string name;
  std::string init = "random";         // "random", an earlier stage's name, or a model path
  std::vector<std::string> train_files;
  int64_t max_records = 0;             // 0 = all
  int64_t steps = 0;
  int64_t batch_size = 16;
  int64_t grad_accum = 1;              // micro-batches per optimizer step (each batch_size rows)
  OptimizerConfig optimizer;
  LrSchedule schedule;                 // lr and total_steps filled from optimizer and steps
  double grad_clip = 0.0;
  double safety_weight = 1.0;
  std::string output;                  // folder; "" = keep in memory
};

struct TrainEvalConfig {
  std::string test_file, prompts, neutral_text;
  int64_t max_new_tokens = 32;
  double harmful_refusal_min = 0.0, benign_answer_min = 0.0;
};

struct TrainRecipe {
  std::string name;
  int64_t recipe_version = 1;
  uint64_t seed = 0;
  ChatFamily chat_family = ChatFamily::CHATML;
  // Tokenizer: trained (vocab_size > 0, train_files) or taken from the first stage's init model.
  BpeTrainConfig tokenizer;
  std::vector<std::string> tokenizer_files;
  LlamaConfig model;                   // vocab/bos/eos filled from the tokenizer
  int64_t seq_len = 128;
  std::vector<TrainStageConfig> stages;
  TrainEvalConfig eval;
  DType output_dtype = DType::F32;
  std::string sha256;                  // of the recipe file bytes
  std::string base_dir;                // relative paths resolve against it (the repository root)
  std::string resolve(const std::string& path) const;
};

// Strict: unknown fields, wrong types and bad values are INVALID_ARGUMENT naming the field.
Result<TrainRecipe> read_train_recipe(const std::string& path, const std::string& base_dir);
Result<TrainRecipe> parse_train_recipe(const std::string& json_text, const std::string& source,
                                       const std::string& base_dir);

// A model shape as in a recipe's "model" section (a distillation student's config file).
Result<LlamaConfig> parse_llama_model_json(const std::string& json_text, const std::string& source);

// Tokenizer files travelling with a trained model.
struct TokenizerPayload {
  std::string tokenizer_json, tokenizer_config_json;  // HF folder files ("" = not available)
  Metadata gguf;                                      // tokenizer.* GGUF keys
};
TokenizerPayload tokenizer_payload_from_bpe(const TrainedBpe& bpe);
// The tokenizer.* keys of a GGUF store (HF json left empty), or the HF folder's files of a store
// read from a folder.
Result<TokenizerPayload> tokenizer_payload_from_store(const TensorStore& store);

struct StepReport {
  std::string stage;
  int64_t step = 0, total = 0;         // step just finished (1-based)
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0;             // counted (target) tokens per second, last step
  double elapsed_s = 0;
};

struct StageRunOptions {
  ThreadPool* pool = nullptr;
  std::string checkpoint_dir;          // "" = no checkpoints
  int64_t checkpoint_every = 0;        // steps; 0 = only at the end of the stage
  bool resume = true;                  // continue from checkpoint_dir when it holds this stage
  std::function<void(const StepReport&)> progress;
  // Distillation: the teacher's logits for a batch (batch, seq, vocab); null = plain CE.
  std::function<Result<std::vector<float>>(const TrainBatch&)> teacher;
  double kd_alpha = 0.5, kd_temperature = 2.0;
};

struct StageResult {
  int64_t steps_run = 0, resumed_from = 0;
  double first_loss = 0, last_loss = 0;     // mean over the first / last 10 steps run
  double seconds = 0, tokens_per_s = 0;
};

// Runs stage.steps optimizer steps on model with batches from loader (which must be fresh: on resume
// the batches already consumed are skipped, so the data order is the same as an uninterrupted run).
Result<StageResult> run_train_stage(LlamaTrainModel& model, TrainDataLoader& loader, const TrainStageConfig& stage,
                                    uint64_t seed, const StageRunOptions& options);

// DIR/model.safetensors (HF layout, dtype), config.json, tokenizer.json + tokenizer_config.json
// (when the payload has them), and DIR/model.gguf (GGUF layout, tokenizer.* keys) unless !gguf.
Status save_trained_model(const LlamaTrainModel& model, const TokenizerPayload& tok, const std::string& dir,
                          DType dtype, bool gguf = true, const Metadata& extra = {});

// Mean loss (CE over counted targets) of a model on a set of examples, batch by batch, no gradients.
Result<double> evaluate_loss(const LlamaTrainModel& model, const std::vector<TokenizedExample>& examples,
                             int32_t pad_id, const TrainDataConfig& config, ThreadPool* pool);

}  // namespace ss

namespace ss {

// The quick behaviour check a training run reports after each stage (the full evaluation with
// judges and statistics is `safeshrink eval`): greedy answers to a prompt set (JSONL with prompt,
// label harmful|benign), judged by refusal phrases (looks_like_refusal).
struct RefusalCheck {
  int64_t harmful = 0, harmful_refused = 0, benign = 0, benign_refused = 0;
  double harmful_refusal_rate() const { return harmful ? double(harmful_refused) / harmful : 0.0; }
  double benign_answer_rate() const { return benign ? 1.0 - double(benign_refused) / benign : 0.0; }
  struct Sample { std::string prompt, label, response; bool refused; };
  std::vector<Sample> samples;  // every prompt, in file order
};
// True when the text contains a refusal phrase ("I can't", "I cannot", "I won't", "Sorry", ...,
// case-insensitive); the list is kRefusalPhrases in src/train/train_eval.cpp.
bool looks_like_refusal(std::string_view response);
// limit > 0: the first `limit` harmful and the first `limit` benign prompts.
Result<RefusalCheck> quick_refusal_check(const LlamaTrainModel& model, const Tokenizer& tok, ChatFamily family,
                                         const std::string& prompts_file, int64_t max_new_tokens, int64_t limit);

}  // namespace ss

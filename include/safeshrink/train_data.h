// Training data: chat JSONL (our corpus schema, data/corpus/README.md) or plain text turned into
// ss::TrainBatch for a causal LM. A dialogue is rendered with a chat family (ChatML for the
// built-in model) and tokenized segment by segment, so the loss mask is exact: targets are the next
// token where that token belongs to an assistant reply or the end-of-turn text that closes it, -1
// everywhere else (roles, user turns, padding). One example per row, truncated to seq+1 tokens and
// padded (never packed), so a per-sample weight stays the weight of one dialogue. Not here: the
// model, the optimizer, the training loop (train/ driver), tokenizer training (tokenizer.h).
// To read one more input kind: a reader returning std::vector<TrainRecord>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "safeshrink/chat_template.h"
#include "safeshrink/rng.h"
#include "safeshrink/status.h"
#include "safeshrink/tokenizer.h"
#include "safeshrink/train.h"

namespace ss {

// One line of a corpus JSONL file, or one plain-text document (messages empty, text set).
struct TrainRecord {
  std::string id;
  std::vector<ChatMessage> messages;
  std::string text;              // plain text records only
  std::string category, label, family, split;
  bool safety_critical = false;
  double weight = 1.0;           // the optional "weight" field
};

struct TrainDataLimits {
  uint64_t max_file_bytes = 1ull << 30;
  uint64_t max_records = 1ull << 24;
  uint64_t max_message_bytes = 1u << 20;
  uint64_t max_messages = 256;
};

// JSONL: one object per line with "messages" [{role, content}, ...] (required) and optional id,
// category, label, family, split, safety_critical, weight. Blank lines are skipped; an unparsable
// line is CORRUPT naming path:line. SPLIT non-empty keeps only records whose split equals it.
Result<std::vector<TrainRecord>> read_chat_jsonl(const std::string& path, const std::string& split = "",
                                                 const TrainDataLimits& limits = {});
// Plain text: each paragraph (blank-line separated) is one record.
Result<std::vector<TrainRecord>> read_plain_text(const std::string& path, const TrainDataLimits& limits = {});

// A tokenized example, not yet shifted: loss[i] != 0 when ids[i] is a token the model must learn to
// produce (assistant content and the end-of-turn text after it; every token of a plain text).
struct TokenizedExample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss;
  float weight = 1.0f;
};

struct TrainDataConfig {
  ChatFamily family = ChatFamily::CHATML;
  int64_t seq_len = 128;       // tokens per row; an example keeps its first seq_len + 1 ids
  int64_t batch_size = 16;
  uint64_t seed = 1;           // shuffling, one permutation per epoch
  bool shuffle = true;
  double safety_weight = 1.0;  // sample weight multiplier for safety_critical records
  // Plain text records end with this token text (if the vocabulary has it).
  std::string end_of_text = "<|endoftext|>";
};
Status validate_train_data_config(const TrainDataConfig& config);

// Renders and tokenizes one record (see the file comment). A chat record must contain at least one
// assistant message. Weight = record.weight * (safety_critical ? safety_weight : 1).
Result<TokenizedExample> tokenize_train_record(const Tokenizer& tok, const TrainRecord& record,
                                               const TrainDataConfig& config);

// Batches over a fixed set of examples: epoch e visits every example once, in a permutation drawn
// from seed and e (deterministic; identity when !shuffle). The last batch of an epoch is filled with
// the first examples of the next permutation, so every batch is full.
class TrainDataLoader {
 public:
  static Result<TrainDataLoader> create(std::vector<TokenizedExample> examples, int32_t pad_id,
                                        const TrainDataConfig& config);
  // Rows: tokens = ids[0..seq), targets[i] = ids[i+1] where loss[i+1], else -1; padded with PAD_ID.
  TrainBatch next_batch();
  int64_t epoch() const { return epoch_; }
  int64_t batches_per_epoch() const;
  size_t size() const { return examples_.size(); }
  // Fills one row (for tests and evaluation).
  void fill_row(const TokenizedExample& ex, int64_t row, TrainBatch* batch) const;

 private:
  void start_epoch();
  std::vector<TokenizedExample> examples_;
  std::vector<size_t> order_;
  size_t cursor_ = 0;
  int64_t epoch_ = -1;
  int32_t pad_id_ = 0;
  TrainDataConfig config_;
};

}  // namespace ss

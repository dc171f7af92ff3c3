// Chat JSONL / plain text -> TokenizedExample -> TrainBatch (include/safeshrink/train_data.h).
// The loss mask comes from where the rendered text puts each assistant reply: the conversation up
// to an assistant message, rendered with the generation prompt, must be a prefix of the whole
// rendering; the reply follows it verbatim, then the family's end-of-turn text. Segments are
// tokenized separately (template text with special tokens parsed, reply text without), so a reply
// can never smuggle in a control token and the mask needs no offset mapping. Not here: the model
// and the loop. To support a family whose rendering rewrites earlier turns (qwen3's think
// stripping), render per turn instead; today such a family is refused with UNSUPPORTED.
#include "safeshrink/train_data.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "safeshrink/buffer.h"

namespace ss {
namespace {

using json = nlohmann::json;

std::string json_string(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Status append_segment(const Tokenizer& tok, std::string_view text, bool parse_special, uint8_t loss,
                      TokenizedExample* ex) {
  if (text.empty()) return ok_status();
  SS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tok.encode(text, false, parse_special));
  ex->ids.insert(ex->ids.end(), ids.begin(), ids.end());
  ex->loss.insert(ex->loss.end(), ids.size(), loss);
  return ok_status();
}

}  // namespace

Result<std::vector<TrainRecord>> read_chat_jsonl(const std::string& path, const std::string& split,
                                                 const TrainDataLimits& limits) {
  SS_ASSIGN_OR_RETURN(std::string text, read_text_file(path, limits.max_file_bytes));
  std::vector<TrainRecord> out;
  size_t pos = 0;
  uint64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    const uint64_t offset = pos;
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    json obj = json::parse(line, nullptr, false);
    if (obj.is_discarded() || !obj.is_object()) return corrupt(where, offset, "record", "a JSON object", "unparsable line");
    auto msgs = obj.find("messages");
    if (msgs == obj.end() || !msgs->is_array())
      return corrupt(where, offset, "messages", "an array of {role, content}", msgs == obj.end() ? "nothing" : msgs->type_name());
    if (msgs->size() > limits.max_messages)
      return corrupt(where, offset, "messages", "<= " + std::to_string(limits.max_messages), std::to_string(msgs->size()));
    TrainRecord r;
    r.id = json_string(obj, "id");
    r.category = json_string(obj, "category");
    r.label = json_string(obj, "label");
    r.family = json_string(obj, "family");
    r.split = json_string(obj, "split");
    if (!split.empty() && r.split != split) continue;
    if (auto it = obj.find("safety_critical"); it != obj.end()) {
      if (!it->is_boolean()) return corrupt(where, offset, "safety_critical", "a boolean", it->type_name());
      r.safety_critical = it->get<bool>();
    }
    if (auto it = obj.find("weight"); it != obj.end()) {
      if (!it->is_number() || !(it->get<double>() >= 0.0) || it->get<double>() > 1e6)
        return corrupt(where, offset, "weight", "a number in [0, 1e6]", it->dump().substr(0, 40));
      r.weight = it->get<double>();
    }
    for (size_t i = 0; i < msgs->size(); ++i) {
      const json& m = (*msgs)[i];
      const std::string what = "messages[" + std::to_string(i) + "]";
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
        return corrupt(where, offset, what, "{\"role\": string, \"content\": string}", m.dump().substr(0, 60));
      ChatMessage cm{m["role"].get<std::string>(), m["content"].get<std::string>()};
      if (cm.content.size() > limits.max_message_bytes)
        return corrupt(where, offset, what + ".content", "<= " + std::to_string(limits.max_message_bytes) + " bytes",
                       std::to_string(cm.content.size()));
      r.messages.push_back(std::move(cm));
    }
    if (out.size() >= limits.max_records)
      return corrupt(path, offset, "records", "<= " + std::to_string(limits.max_records), "more");
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<TrainRecord>> read_plain_text(const std::string& path, const TrainDataLimits& limits) {
  SS_ASSIGN_OR_RETURN(std::string text, read_text_file(path, limits.max_file_bytes));
  std::vector<TrainRecord> out;
  std::string paragraph;
  size_t pos = 0;
  auto flush = [&]() {
    while (!paragraph.empty() && paragraph.back() == '\n') paragraph.pop_back();
    if (!paragraph.empty()) {
      TrainRecord r;
      r.id = path + "#" + std::to_string(out.size());
      r.text = std::move(paragraph);
      out.push_back(std::move(r));
    }
    paragraph.clear();
  };
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      flush();
    } else {
      paragraph.append(line);
      paragraph.push_back('\n');
    }
    if (out.size() > limits.max_records) return corrupt(path, pos, "records", "<= " + std::to_string(limits.max_records), "more");
  }
  flush();
  return out;
}

Status validate_train_data_config(const TrainDataConfig& c) {
  if (c.seq_len < 2 || c.seq_len > (1 << 20)) return invalid_argument("TrainDataConfig.seq_len: expected 2..1048576, got " + std::to_string(c.seq_len));
  if (c.batch_size < 1 || c.batch_size > (1 << 16)) return invalid_argument("TrainDataConfig.batch_size: expected 1..65536, got " + std::to_string(c.batch_size));
  if (!(c.safety_weight >= 0.0) || c.safety_weight > 1e6) return invalid_argument("TrainDataConfig.safety_weight: expected 0..1e6");
  return ok_status();
}

Result<TokenizedExample> tokenize_train_record(const Tokenizer& tok, const TrainRecord& record,
                                               const TrainDataConfig& config) {
  TokenizedExample ex;
  ex.weight = static_cast<float>(record.weight * (record.safety_critical ? config.safety_weight : 1.0));
  const int32_t bos = tok.special_ids().bos;
  if (record.messages.empty()) {
    if (tok.add_bos() && bos != kNoToken) {
      ex.ids.push_back(bos);
      ex.loss.push_back(0);
    }
    SS_RETURN_IF_ERROR(append_segment(tok, record.text, false, 1, &ex));
    const int32_t end = tok.token_id(config.end_of_text);
    if (end != kNoToken) {
      ex.ids.push_back(end);
      ex.loss.push_back(1);
    }
    return ex;
  }

  ChatRenderOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  if (bos != kNoToken) no_prompt.bos_token = std::string(tok.token_text(bos));
  if (tok.special_ids().eos != kNoToken) no_prompt.eos_token = std::string(tok.token_text(tok.special_ids().eos));
  ChatRenderOptions with_prompt = no_prompt;
  with_prompt.add_generation_prompt = true;
  SS_ASSIGN_OR_RETURN(std::string full, render_chat(config.family, record.messages, no_prompt));
  if (tok.add_bos() && bos != kNoToken && full.rfind(tok.token_text(bos), 0) != 0) {
    ex.ids.push_back(bos);
    ex.loss.push_back(0);
  }

  size_t done = 0;  // bytes of FULL already tokenized
  bool any_assistant = false;
  for (size_t k = 0; k < record.messages.size(); ++k) {
    if (record.messages[k].role != "assistant") continue;
    any_assistant = true;
    const std::vector<ChatMessage> before(record.messages.begin(), record.messages.begin() + static_cast<std::ptrdiff_t>(k));
    std::string prefix;
    if (!before.empty()) {
      SS_ASSIGN_OR_RETURN(prefix, render_chat(config.family, before, with_prompt));
    }
    const std::string& content = record.messages[k].content;
    if (prefix.size() < done || full.compare(0, prefix.size(), prefix) != 0 ||
        full.compare(prefix.size(), content.size(), content) != 0)
      return unsupported(std::string("chat family ") + chat_family_name(config.family) +
                         ": an assistant reply is not rendered after its generation prompt (record " + record.id + ")");
    const std::vector<ChatMessage> upto(record.messages.begin(), record.messages.begin() + static_cast<std::ptrdiff_t>(k + 1));
    SS_ASSIGN_OR_RETURN(std::string closed, render_chat(config.family, upto, no_prompt));
    const size_t content_end = prefix.size() + content.size();
    if (closed.size() < content_end || full.compare(0, closed.size(), closed) != 0)
      return unsupported(std::string("chat family ") + chat_family_name(config.family) +
                         ": the rendering of a turn is not a prefix of the conversation (record " + record.id + ")");
    SS_RETURN_IF_ERROR(append_segment(tok, std::string_view(full).substr(done, prefix.size() - done), true, 0, &ex));
    SS_RETURN_IF_ERROR(append_segment(tok, content, false, 1, &ex));
    // The turn's closing text: loss up to and including its first end-of-generation token.
    SS_ASSIGN_OR_RETURN(std::vector<int32_t> tail,
                        tok.encode(std::string_view(full).substr(content_end, closed.size() - content_end), false, true));
    bool closed_turn = false;
    for (int32_t id : tail) {
      ex.ids.push_back(id);
      ex.loss.push_back(closed_turn ? 0 : 1);
      if (tok.is_end_of_generation(id)) closed_turn = true;
    }
    if (!closed_turn)  // the family has no end-of-turn token: learn only the reply
      for (size_t i = ex.loss.size() - tail.size(); i < ex.loss.size(); ++i) ex.loss[i] = 0;
    done = closed.size();
  }
  if (!any_assistant) return invalid_argument("record " + record.id + ": no assistant message to learn");
  SS_RETURN_IF_ERROR(append_segment(tok, std::string_view(full).substr(done), true, 0, &ex));
  return ex;
}

Result<TrainDataLoader> TrainDataLoader::create(std::vector<TokenizedExample> examples, int32_t pad_id,
                                                const TrainDataConfig& config) {
  SS_RETURN_IF_ERROR(validate_train_data_config(config));
  if (examples.empty()) return invalid_argument("TrainDataLoader: no examples");
  for (size_t i = 0; i < examples.size(); ++i)
    if (examples[i].ids.size() != examples[i].loss.size())
      return invalid_argument("TrainDataLoader: example " + std::to_string(i) + " has ids and loss of different sizes");
  TrainDataLoader l;
  l.examples_ = std::move(examples);
  l.pad_id_ = pad_id < 0 ? 0 : pad_id;
  l.config_ = config;
  l.start_epoch();
  return l;
}

void TrainDataLoader::start_epoch() {
  ++epoch_;
  order_.resize(examples_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
  if (config_.shuffle) {
    Rng rng(config_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch_) + 1);
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);
  }
  cursor_ = 0;
}

int64_t TrainDataLoader::batches_per_epoch() const {
  const int64_t n = static_cast<int64_t>(examples_.size());
  return (n + config_.batch_size - 1) / config_.batch_size;
}

void TrainDataLoader::fill_row(const TokenizedExample& ex, int64_t row, TrainBatch* b) const {
  const int64_t seq = b->seq;
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(ex.ids.size()), seq + 1);
  int32_t* tokens = b->tokens.data() + row * seq;
  int32_t* targets = b->targets.data() + row * seq;
  for (int64_t i = 0; i < seq; ++i) {
    tokens[i] = i < n ? ex.ids[static_cast<size_t>(i)] : pad_id_;
    targets[i] = (i + 1 < n && ex.loss[static_cast<size_t>(i + 1)]) ? ex.ids[static_cast<size_t>(i + 1)] : -1;
  }
  b->sample_weight[static_cast<size_t>(row)] = ex.weight;
}

TrainBatch TrainDataLoader::next_batch() {
  TrainBatch b;
  b.batch = config_.batch_size;
  b.seq = config_.seq_len;
  b.tokens.assign(static_cast<size_t>(b.batch * b.seq), pad_id_);
  b.targets.assign(static_cast<size_t>(b.batch * b.seq), -1);
  b.sample_weight.assign(static_cast<size_t>(b.batch), 1.0f);
  for (int64_t r = 0; r < b.batch; ++r) {
    if (cursor_ >= order_.size()) start_epoch();
    fill_row(examples_[order_[cursor_++]], r, &b);
  }
  return b;
}

}  // namespace ss

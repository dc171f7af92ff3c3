// LlamaConfig from an HF config.json (llama, mistral, qwen2) or from GGUF metadata, and its one
// validation. Not here: loading weights or the forward pass (model/), reading files (formats/*.cpp
// put the raw config.json text in store.meta under "hf.config_json").
//
// RoPE pair order, the one convention to get right: rope_order describes the weights AS STORED.
//  - HF (all three model types): modeling code rotates halves (rotate_half: element i pairs with
//    i + head_dim/2), so HF weights are NEOX order. For llama/mistral, Meta's original checkpoints
//    rotate adjacent pairs; the HF conversion permuted the q/k rows to make halves work.
//  - GGUF: llama.cpp's converter permutes llama/mistral q/k back to adjacent pairs, so GGUF llama is
//    NORM; qwen2 is never permuted and stays NEOX (llama.cpp's LLAMA_ROPE_TYPE_NEOX for qwen2).
// So the same Llama read from HF is NEOX and from GGUF is NORM, and both compute the same logits.
// Not represented: llama.cpp stores Llama-3 frequency scaling as a rope_freqs.weight tensor, not as
// metadata; the model must apply that tensor itself when present (rope_scaling stays NONE here).
// To add a model type: a row in kHfDefaults (and its GGUF arch in kGgufArchs) plus any field it adds.
#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <string_view>

#include <nlohmann/json.hpp>

#include "safeshrink/model_config.h"

namespace ss {
namespace {

using json = nlohmann::json;

// Hugging Face's class defaults (transformers LlamaConfig / MistralConfig / Qwen2Config) for the
// fields a config.json may leave out. The size fields have no default here: a config without them
// is refused rather than guessed.
struct HfDefaults {
  const char* model_type;
  int64_t max_position;
  bool attention_bias;
  int64_t bos, eos;
};
constexpr HfDefaults kHfDefaults[] = {
    {"llama", 2048, false, 1, 2},
    {"mistral", 4096 * 32, false, 1, 2},
    {"qwen2", 32768, true, -1, -1},
};
constexpr const char* kGgufArchs[] = {"llama", "mistral", "qwen2"};

// Caps that keep a hostile config from asking the model for absurd allocations. Far above any
// released Llama-family model (Llama-3.1-405B: 126 layers, 16384 embd, 53248 ff, 128256 vocab).
constexpr int64_t kMaxVocab = 1ll << 24;
constexpr int64_t kMaxHidden = 1ll << 18;
constexpr int64_t kMaxIntermediate = 1ll << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxHeadDim = 4096;

std::string printed(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 64 ? s.substr(0, 64) + "..." : s;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

Status bad_field(const std::string& source, std::string_view field, std::string_view expected, const std::string& got) {
  return invalid_argument(source + ": config field '" + std::string(field) + "': expected " + std::string(expected) +
                          ", got " + got);
}

// Reads an integer field; *out keeps its default when the field is absent or null (unless required).
Status hf_int(const json& root, const char* field, bool required, int64_t* out, const std::string& source) {
  if (!root.contains(field) || root[field].is_null()) {
    if (required) return bad_field(source, field, "an integer", "nothing (the field is missing)");
    return ok_status();
  }
  const json& v = root[field];
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
    return bad_field(source, field, "an integer", printed(v));
  *out = v.get<int64_t>();
  return ok_status();
}

Status hf_number(const json& root, const char* field, double* out, const std::string& source) {
  if (!root.contains(field) || root[field].is_null()) return ok_status();
  if (!root[field].is_number()) return bad_field(source, field, "a number", printed(root[field]));
  *out = root[field].get<double>();
  return ok_status();
}

Status hf_bool(const json& root, const char* field, bool* out, const std::string& source) {
  if (!root.contains(field) || root[field].is_null()) return ok_status();
  if (!root[field].is_boolean()) return bad_field(source, field, "true or false", printed(root[field]));
  *out = root[field].get<bool>();
  return ok_status();
}

Status hf_rope_scaling(const json& root, LlamaConfig* c, const std::string& source) {
  if (!root.contains("rope_scaling") || root["rope_scaling"].is_null()) return ok_status();
  const json& rs = root["rope_scaling"];
  if (!rs.is_object()) return bad_field(source, "rope_scaling", "an object or null", printed(rs));
  const char* type_field = rs.contains("rope_type") ? "rope_type" : "type";
  if (!rs.contains(type_field) || !rs[type_field].is_string())
    return bad_field(source, "rope_scaling.rope_type", "a string", rs.contains(type_field) ? printed(rs[type_field]) : "nothing");
  const std::string type = rs[type_field].get<std::string>();
  if (type == "default") return ok_status();
  if (type != "linear" && type != "llama3")
    return unsupported(source + ": rope_scaling type '" + type + "' is not supported (known: linear, llama3, default)");
  c->rope_scaling = type == "linear" ? RopeScaling::LINEAR : RopeScaling::LLAMA3;
  auto need_number = [&](const char* field, double* out) -> Status {
    if (!rs.contains(field) || !rs[field].is_number())
      return bad_field(source, std::string("rope_scaling.") + field, "a number",
                       rs.contains(field) ? printed(rs[field]) : "nothing (the field is missing)");
    *out = rs[field].get<double>();
    return ok_status();
  };
  SS_RETURN_IF_ERROR(need_number("factor", &c->rope_factor));
  if (c->rope_scaling == RopeScaling::LLAMA3) {
    SS_RETURN_IF_ERROR(need_number("low_freq_factor", &c->rope_low_freq_factor));
    SS_RETURN_IF_ERROR(need_number("high_freq_factor", &c->rope_high_freq_factor));
    const char* omp = "original_max_position_embeddings";
    if (!rs.contains(omp) || !rs[omp].is_number_integer())
      return bad_field(source, std::string("rope_scaling.") + omp, "an integer", rs.contains(omp) ? printed(rs[omp]) : "nothing");
    c->rope_original_max_position = rs[omp].get<int64_t>();
  }
  return ok_status();
}

Status hf_token_id(const json& root, const char* field, int64_t* out, const std::string& source) {
  if (!root.contains(field) || root[field].is_null()) return ok_status();
  const json& v = root[field];
  if (v.is_array()) {  // eos_token_id: [128001, 128008, 128009] -> the first
    if (v.empty()) return ok_status();
    if (!v[0].is_number_integer()) return bad_field(source, field, "an integer or a list of integers", printed(v));
    *out = v[0].get<int64_t>();
    return ok_status();
  }
  if (!v.is_number_integer()) return bad_field(source, field, "an integer or a list of integers", printed(v));
  *out = v.get<int64_t>();
  return ok_status();
}

// ---- GGUF ----

Result<int64_t> gguf_int(const TensorStore& store, const std::string& key, std::optional<int64_t> fallback) {
  const MetaValue* v = store.meta.find(key);
  if (!v) {
    if (fallback) return *fallback;
    return not_found(store.path + ": GGUF key '" + key + "' is missing");
  }
  if (v->type == MetaType::ARRAY)
    return unsupported(store.path + ": GGUF key '" + key + "' is a per-layer array; only one value for all layers is supported");
  if (!v->is_integer()) return invalid_argument(store.path + ": GGUF key '" + key + "': expected an integer, got " + meta_type_name(v->type));
  if (v->type == MetaType::U64 && v->u > static_cast<uint64_t>(INT64_MAX))
    return invalid_argument(store.path + ": GGUF key '" + key + "': value out of range");
  return *v->as_int();
}

Result<double> gguf_double(const TensorStore& store, const std::string& key, double fallback) {
  const MetaValue* v = store.meta.find(key);
  if (!v) return fallback;
  if (!v->is_number()) return invalid_argument(store.path + ": GGUF key '" + key + "': expected a number, got " + meta_type_name(v->type));
  return *v->as_double();
}

int64_t token_id(const TensorStore& store, const std::string& key) {
  auto v = store.meta.get_int(key);
  if (!v || *v < 0 || *v == 0xFFFFFFFFll) return -1;  // llama.cpp writes u32 -1 for "none"
  return *v;
}

}  // namespace

Status LlamaConfig::validate() const {
  auto bad = [this](std::string_view field, std::string_view hf, std::string_view gguf, std::string_view rule,
                    const std::string& got) {
    return invalid_argument("LlamaConfig." + std::string(field) + " (" + std::string(hf) + " / " + arch + "." +
                            std::string(gguf) + ") must be " + std::string(rule) + ", got " + got);
  };
  bool known = false;
  for (const char* a : kGgufArchs) known = known || arch == a;
  if (!known) return invalid_argument("LlamaConfig.arch must be llama, mistral or qwen2, got '" + arch + "'");
  struct Positive { int64_t value; const char* field; const char* hf; const char* gguf; int64_t cap; };
  const Positive sizes[] = {
      {vocab_size, "vocab_size", "vocab_size", "vocab_size", kMaxVocab},
      {hidden_size, "hidden_size", "hidden_size", "embedding_length", kMaxHidden},
      {intermediate_size, "intermediate_size", "intermediate_size", "feed_forward_length", kMaxIntermediate},
      {n_layers, "n_layers", "num_hidden_layers", "block_count", kMaxLayers},
      {n_heads, "n_heads", "num_attention_heads", "attention.head_count", kMaxHeads},
      {n_kv_heads, "n_kv_heads", "num_key_value_heads", "attention.head_count_kv", kMaxHeads},
      {head_dim, "head_dim", "head_dim", "attention.key_length", kMaxHeadDim},
      {max_position, "max_position", "max_position_embeddings", "context_length", INT64_MAX},
  };
  for (const auto& s : sizes)
    if (s.value <= 0 || s.value > s.cap)
      return bad(s.field, s.hf, s.gguf, "in 1.." + std::to_string(s.cap), std::to_string(s.value));
  if (n_heads % n_kv_heads != 0)
    return bad("n_kv_heads", "num_key_value_heads", "attention.head_count_kv",
               "a divisor of n_heads = " + std::to_string(n_heads), std::to_string(n_kv_heads));
  if (head_dim % 2 != 0) return bad("head_dim", "head_dim", "rope.dimension_count", "even (RoPE rotates pairs)", std::to_string(head_dim));
  if (!(std::isfinite(rope_theta) && rope_theta > 0))
    return bad("rope_theta", "rope_theta", "rope.freq_base", "a positive number", number_text(rope_theta));
  if (!(std::isfinite(rms_eps) && rms_eps > 0 && rms_eps < 1))
    return bad("rms_eps", "rms_norm_eps", "attention.layer_norm_rms_epsilon", "in (0, 1)", number_text(rms_eps));
  if (rope_scaling != RopeScaling::NONE && !(std::isfinite(rope_factor) && rope_factor > 0))
    return bad("rope_factor", "rope_scaling.factor", "rope.scaling.factor", "a positive number", number_text(rope_factor));
  if (rope_scaling == RopeScaling::LLAMA3) {
    if (!(std::isfinite(rope_low_freq_factor) && rope_low_freq_factor > 0))
      return bad("rope_low_freq_factor", "rope_scaling.low_freq_factor", "-", "a positive number", number_text(rope_low_freq_factor));
    if (!(std::isfinite(rope_high_freq_factor) && rope_high_freq_factor > rope_low_freq_factor))
      return bad("rope_high_freq_factor", "rope_scaling.high_freq_factor", "-",
                 "greater than low_freq_factor = " + number_text(rope_low_freq_factor), number_text(rope_high_freq_factor));
    if (rope_original_max_position <= 0)
      return bad("rope_original_max_position", "rope_scaling.original_max_position_embeddings", "-", "positive",
                 std::to_string(rope_original_max_position));
  }
  if (bos_token_id < -1 || bos_token_id >= vocab_size)
    return bad("bos_token_id", "bos_token_id", "tokenizer.ggml.bos_token_id",
               "-1 (none) or below vocab_size = " + std::to_string(vocab_size), std::to_string(bos_token_id));
  if (eos_token_id < -1 || eos_token_id >= vocab_size)
    return bad("eos_token_id", "eos_token_id", "tokenizer.ggml.eos_token_id",
               "-1 (none) or below vocab_size = " + std::to_string(vocab_size), std::to_string(eos_token_id));
  return ok_status();
}

std::string LlamaConfig::summary() const {
  return arch + ": " + std::to_string(n_layers) + " layers, " + std::to_string(hidden_size) + " embd, " +
         std::to_string(n_heads) + "/" + std::to_string(n_kv_heads) + " heads, ff " + std::to_string(intermediate_size) +
         ", vocab " + std::to_string(vocab_size);
}

Result<LlamaConfig> llama_config_from_hf_json(const std::string& json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    return corrupt(source, e.byte > 0 ? e.byte - 1 : 0, "config JSON", "valid JSON", e.what());
  } catch (const std::exception& e) {
    return corrupt(source, 0, "config JSON", "valid JSON", e.what());
  }
  if (!root.is_object()) return corrupt(source, 0, "config JSON", "an object", root.type_name());
  try {
    if (!root.contains("model_type") || !root["model_type"].is_string())
      return bad_field(source, "model_type", "a string", root.contains("model_type") ? printed(root["model_type"]) : "nothing");
    const std::string model_type = root["model_type"].get<std::string>();
    const HfDefaults* defaults = nullptr;
    std::string known;
    for (const auto& d : kHfDefaults) {
      if (model_type == d.model_type) defaults = &d;
      known += known.empty() ? d.model_type : std::string(", ") + d.model_type;
    }
    if (!defaults) return unsupported(source + ": model_type '" + model_type + "' is not supported (known: " + known + ")");

    LlamaConfig c;
    c.arch = model_type;
    c.rope_order = RopeOrder::NEOX;  // HF weights rotate halves (see the file comment)
    c.max_position = defaults->max_position;
    c.attention_bias = defaults->attention_bias;
    c.bos_token_id = defaults->bos;
    c.eos_token_id = defaults->eos;
    c.rms_eps = 1e-6;  // the HF classes' default; GGUF's default is 1e-5
    SS_RETURN_IF_ERROR(hf_int(root, "vocab_size", true, &c.vocab_size, source));
    SS_RETURN_IF_ERROR(hf_int(root, "hidden_size", true, &c.hidden_size, source));
    SS_RETURN_IF_ERROR(hf_int(root, "intermediate_size", true, &c.intermediate_size, source));
    SS_RETURN_IF_ERROR(hf_int(root, "num_hidden_layers", true, &c.n_layers, source));
    SS_RETURN_IF_ERROR(hf_int(root, "num_attention_heads", true, &c.n_heads, source));
    c.n_kv_heads = c.n_heads;
    SS_RETURN_IF_ERROR(hf_int(root, "num_key_value_heads", false, &c.n_kv_heads, source));
    c.head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
    SS_RETURN_IF_ERROR(hf_int(root, "head_dim", false, &c.head_dim, source));
    SS_RETURN_IF_ERROR(hf_int(root, "max_position_embeddings", false, &c.max_position, source));
    SS_RETURN_IF_ERROR(hf_number(root, "rope_theta", &c.rope_theta, source));
    SS_RETURN_IF_ERROR(hf_number(root, "rms_norm_eps", &c.rms_eps, source));
    SS_RETURN_IF_ERROR(hf_bool(root, "tie_word_embeddings", &c.tie_embeddings, source));
    SS_RETURN_IF_ERROR(hf_bool(root, "attention_bias", &c.attention_bias, source));
    SS_RETURN_IF_ERROR(hf_rope_scaling(root, &c, source));
    SS_RETURN_IF_ERROR(hf_token_id(root, "bos_token_id", &c.bos_token_id, source));
    SS_RETURN_IF_ERROR(hf_token_id(root, "eos_token_id", &c.eos_token_id, source));
    Status valid = c.validate();
    if (!valid.ok()) return valid.with_context(source);
    return c;
  } catch (const std::exception& e) {  // a json accessor we failed to guard
    return corrupt(source, 0, "config JSON", "the fields of a " + std::string("Llama-family config"), e.what());
  }
}

Result<LlamaConfig> llama_config_from_gguf(const TensorStore& store) {
  const auto arch = store.meta.get_string("general.architecture");
  if (!arch) return not_found(store.path + ": no general.architecture string in the GGUF metadata");
  bool known = false;
  for (const char* a : kGgufArchs) known = known || *arch == a;
  if (!known)
    return unsupported(store.path + ": GGUF architecture '" + *arch + "' is not supported (known: llama, mistral, qwen2)");
  const std::string p = *arch + ".";
  LlamaConfig c;
  c.arch = *arch;
  c.rope_order = *arch == "qwen2" ? RopeOrder::NEOX : RopeOrder::NORM;  // see the file comment
  SS_ASSIGN_OR_RETURN(c.hidden_size, gguf_int(store, p + "embedding_length", std::nullopt));
  SS_ASSIGN_OR_RETURN(c.intermediate_size, gguf_int(store, p + "feed_forward_length", std::nullopt));
  SS_ASSIGN_OR_RETURN(c.n_layers, gguf_int(store, p + "block_count", std::nullopt));
  SS_ASSIGN_OR_RETURN(c.n_heads, gguf_int(store, p + "attention.head_count", std::nullopt));
  SS_ASSIGN_OR_RETURN(c.n_kv_heads, gguf_int(store, p + "attention.head_count_kv", c.n_heads));
  const int64_t default_head_dim = c.n_heads > 0 ? c.hidden_size / c.n_heads : 0;
  SS_ASSIGN_OR_RETURN(c.head_dim, gguf_int(store, p + "attention.key_length", default_head_dim));
  SS_ASSIGN_OR_RETURN(int64_t rope_dims, gguf_int(store, p + "rope.dimension_count", c.head_dim));
  if (rope_dims != c.head_dim)
    return unsupported(store.path + ": " + p + "rope.dimension_count = " + std::to_string(rope_dims) +
                       " rotates part of a head of " + std::to_string(c.head_dim) + "; partial RoPE is not supported");
  SS_ASSIGN_OR_RETURN(c.max_position, gguf_int(store, p + "context_length", c.max_position));
  SS_ASSIGN_OR_RETURN(c.rope_theta, gguf_double(store, p + "rope.freq_base", 10000.0));
  SS_ASSIGN_OR_RETURN(c.rms_eps, gguf_double(store, p + "attention.layer_norm_rms_epsilon", 1e-5));
  if (auto type = store.meta.get_string(p + "rope.scaling.type")) {
    if (*type == "linear") {
      c.rope_scaling = RopeScaling::LINEAR;
      SS_ASSIGN_OR_RETURN(c.rope_factor, gguf_double(store, p + "rope.scaling.factor", 1.0));
    } else if (*type != "none") {
      return unsupported(store.path + ": " + p + "rope.scaling.type '" + *type + "' is not supported (known: none, linear)");
    }
  }
  // Vocabulary: the tokenizer's token list, else <arch>.vocab_size, else the embedding's rows.
  const MetaValue* tokens = store.meta.find("tokenizer.ggml.tokens");
  if (tokens && tokens->type == MetaType::ARRAY) {
    c.vocab_size = static_cast<int64_t>(std::min<uint64_t>(tokens->count, INT64_MAX));
  } else if (store.meta.find(p + "vocab_size")) {
    SS_ASSIGN_OR_RETURN(c.vocab_size, gguf_int(store, p + "vocab_size", std::nullopt));
  } else if (const Tensor* embd = store.find("token_embd.weight"); embd && embd->shape.size() == 2) {
    c.vocab_size = embd->shape[0];  // row-major [vocab, n_embd] (GGUF ne = [n_embd, vocab])
  }
  c.tie_embeddings = store.find("output.weight") == nullptr;
  c.attention_bias = store.find("blk.0.attn_q.bias") != nullptr;
  c.bos_token_id = token_id(store, "tokenizer.ggml.bos_token_id");
  c.eos_token_id = token_id(store, "tokenizer.ggml.eos_token_id");
  Status valid = c.validate();
  if (!valid.ok()) return valid.with_context(store.path);
  return c;
}

Result<LlamaConfig> llama_config_from_store(const TensorStore& store) {
  if (store.meta.find("general.architecture")) return llama_config_from_gguf(store);
  if (auto config = store.meta.get_string("hf.config_json"))
    return llama_config_from_hf_json(*config, store.format == "hf-folder" ? store.path + "/config.json"
                                                                            : store.path + " (hf.config_json)");
  return not_found((store.path.empty() ? std::string("store") : store.path) +
                   ": neither GGUF metadata (general.architecture) nor an HF config (hf.config_json)");
}

}  // namespace ss

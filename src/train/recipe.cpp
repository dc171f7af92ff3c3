// Training recipes: strict parsing of data/recipes/*.json into TrainRecipe (see
// include/safeshrink/trainer.h and data/recipes/README.md). Every field is checked for its type and
// range, and a field this parser does not know is an error, so a typo never falls back to a default.
// To add a field: read it in the matching parse_* function and list it in the README table.
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "safeshrink/buffer.h"
#include "safeshrink/trainer.h"

namespace ss {
namespace {

using json = nlohmann::json;

// Reads the fields of one JSON object, remembering which were consumed; finish() rejects the rest.
class Fields {
 public:
  Fields(const json& obj, std::string where, std::string source)
      : obj_(obj), where_(std::move(where)), source_(std::move(source)) {}

  Status object_ok() const {
    if (!obj_.is_object()) return bad(where_, "an object", obj_.type_name());
    return Status();
  }
  const json* get(const std::string& key, bool required, Status* st) {
    seen_.insert(key);
    auto it = obj_.find(key);
    if (it == obj_.end()) {
      if (required) *st = bad(path(key), "a value", "nothing (the field is required)");
      return nullptr;
    }
    return &*it;
  }
  Status str(const std::string& key, std::string* out, bool required = true) {
    Status st;
    const json* v = get(key, required, &st);
    if (!v) return st;
    if (!v->is_string()) return bad(path(key), "a string", v->dump());
    *out = v->get<std::string>();
    return Status();
  }
  Status num(const std::string& key, double* out, double lo, double hi, bool required = true) {
    Status st;
    const json* v = get(key, required, &st);
    if (!v) return st;
    if (!v->is_number()) return bad(path(key), "a number", v->dump());
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi))
      return bad(path(key), "a number in [" + json(lo).dump() + ", " + json(hi).dump() + "]", v->dump());
    *out = d;
    return Status();
  }
  Status integer(const std::string& key, int64_t* out, int64_t lo, int64_t hi, bool required = true) {
    Status st;
    const json* v = get(key, required, &st);
    if (!v) return st;
    if (!v->is_number_integer()) return bad(path(key), "an integer", v->dump());
    const int64_t i = v->is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v->get<uint64_t>(), INT64_MAX))
                                              : v->get<int64_t>();
    if (i < lo || i > hi)
      return bad(path(key), "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", v->dump());
    *out = i;
    return Status();
  }
  Status boolean(const std::string& key, bool* out, bool required = true) {
    Status st;
    const json* v = get(key, required, &st);
    if (!v) return st;
    if (!v->is_boolean()) return bad(path(key), "true or false", v->dump());
    *out = v->get<bool>();
    return Status();
  }
  Status strings(const std::string& key, std::vector<std::string>* out, bool required = true) {
    Status st;
    const json* v = get(key, required, &st);
    if (!v) return st;
    if (!v->is_array()) return bad(path(key), "an array of strings", v->dump());
    out->clear();
    for (const auto& e : *v) {
      if (!e.is_string()) return bad(path(key), "an array of strings", v->dump());
      out->push_back(e.get<std::string>());
    }
    return Status();
  }
  Status finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it)
      if (!seen_.count(it.key())) return bad(path(it.key()), "a known field", "an unknown field '" + it.key() + "'");
    return Status();
  }
  std::string path(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }
  Status bad(const std::string& field, const std::string& expected, const std::string& actual) const {
    return invalid_argument(source_ + ": recipe field '" + field + "': expected " + expected + ", got " + actual);
  }

 private:
  const json& obj_;
  std::string where_, source_;
  std::set<std::string> seen_;
};

Status parse_optimizer(const json& j, const std::string& where, const std::string& source, OptimizerConfig* o) {
  Fields f(j, where, source);
  SS_RETURN_IF_ERROR(f.object_ok());
  SS_RETURN_IF_ERROR(f.str("kind", &o->kind));
  if (o->kind == "adamw") {
    AdamWConfig& a = o->adamw;
    SS_RETURN_IF_ERROR(f.num("lr", &a.lr, 0, 10));
    SS_RETURN_IF_ERROR(f.num("beta1", &a.beta1, 0, 0.999999, false));
    SS_RETURN_IF_ERROR(f.num("beta2", &a.beta2, 0, 0.999999, false));
    SS_RETURN_IF_ERROR(f.num("eps", &a.eps, 0, 1, false));
    SS_RETURN_IF_ERROR(f.num("weight_decay", &a.weight_decay, 0, 10, false));
  } else if (o->kind == "sgd") {
    SgdConfig& s = o->sgd;
    SS_RETURN_IF_ERROR(f.num("lr", &s.lr, 0, 10));
    SS_RETURN_IF_ERROR(f.num("momentum", &s.momentum, 0, 0.999999, false));
    SS_RETURN_IF_ERROR(f.num("weight_decay", &s.weight_decay, 0, 10, false));
    SS_RETURN_IF_ERROR(f.boolean("nesterov", &s.nesterov, false));
  } else {
    return f.bad(f.path("kind"), "\"adamw\" or \"sgd\"", "\"" + o->kind + "\"");
  }
  return f.finish();
}

Status parse_schedule(const json& j, const std::string& where, const std::string& source, LrSchedule* s) {
  Fields f(j, where, source);
  SS_RETURN_IF_ERROR(f.object_ok());
  SS_RETURN_IF_ERROR(f.str("kind", &s->kind));
  if (s->kind != "cosine" && s->kind != "linear" && s->kind != "constant")
    return f.bad(f.path("kind"), "cosine, linear or constant", "\"" + s->kind + "\"");
  SS_RETURN_IF_ERROR(f.integer("warmup_steps", &s->warmup_steps, 0, INT64_MAX / 2, false));
  SS_RETURN_IF_ERROR(f.num("min_lr", &s->min_lr, 0, 10, false));
  return f.finish();
}

Status parse_stage(const json& j, const std::string& where, const std::string& source, TrainStageConfig* st) {
  Fields f(j, where, source);
  SS_RETURN_IF_ERROR(f.object_ok());
  SS_RETURN_IF_ERROR(f.str("name", &st->name));
  SS_RETURN_IF_ERROR(f.str("init", &st->init));
  SS_RETURN_IF_ERROR(f.strings("train_files", &st->train_files));
  if (st->train_files.empty()) return f.bad(f.path("train_files"), "at least one file", "[]");
  SS_RETURN_IF_ERROR(f.integer("max_records", &st->max_records, 0, INT64_MAX / 2, false));
  SS_RETURN_IF_ERROR(f.integer("steps", &st->steps, 1, 100000000));
  SS_RETURN_IF_ERROR(f.integer("batch_size", &st->batch_size, 1, 65536));
  SS_RETURN_IF_ERROR(f.integer("grad_accum", &st->grad_accum, 1, 4096, false));
  Status s;
  const json* opt = f.get("optimizer", true, &s);
  if (!opt) return s;
  SS_RETURN_IF_ERROR(parse_optimizer(*opt, f.path("optimizer"), source, &st->optimizer));
  if (const json* sched = f.get("schedule", false, &s))
    SS_RETURN_IF_ERROR(parse_schedule(*sched, f.path("schedule"), source, &st->schedule));
  else
    st->schedule.kind = "constant";
  st->schedule.lr = st->optimizer.lr();
  st->schedule.total_steps = st->steps;
  if (st->schedule.warmup_steps > st->steps)
    return f.bad(f.path("schedule.warmup_steps"), "at most steps = " + std::to_string(st->steps),
                 std::to_string(st->schedule.warmup_steps));
  SS_RETURN_IF_ERROR(f.num("grad_clip", &st->grad_clip, 0, 1e6, false));
  SS_RETURN_IF_ERROR(f.num("safety_weight", &st->safety_weight, 0, 1e6, false));
  SS_RETURN_IF_ERROR(f.str("output", &st->output, false));
  return f.finish();
}

Status parse_model(const json& j, const std::string& where, const std::string& source, LlamaConfig* out) {
  Fields m(j, where, source);
  SS_RETURN_IF_ERROR(m.object_ok());
  LlamaConfig& c = *out;
  SS_RETURN_IF_ERROR(m.str("arch", &c.arch, false));
  SS_RETURN_IF_ERROR(m.integer("hidden_size", &c.hidden_size, 1, 1 << 16));
  SS_RETURN_IF_ERROR(m.integer("intermediate_size", &c.intermediate_size, 1, 1 << 18));
  SS_RETURN_IF_ERROR(m.integer("n_layers", &c.n_layers, 1, 1024));
  SS_RETURN_IF_ERROR(m.integer("n_heads", &c.n_heads, 1, 1024));
  c.n_kv_heads = c.n_heads;
  SS_RETURN_IF_ERROR(m.integer("n_kv_heads", &c.n_kv_heads, 1, 1024, false));
  SS_RETURN_IF_ERROR(m.integer("max_position", &c.max_position, 1, 1 << 20, false));
  SS_RETURN_IF_ERROR(m.num("rope_theta", &c.rope_theta, 1, 1e9, false));
  SS_RETURN_IF_ERROR(m.num("rms_eps", &c.rms_eps, 1e-12, 1, false));
  SS_RETURN_IF_ERROR(m.boolean("tie_embeddings", &c.tie_embeddings, false));
  SS_RETURN_IF_ERROR(m.finish());
  if (c.arch != "llama" && c.arch != "mistral") return m.bad(m.path("arch"), "llama or mistral", "\"" + c.arch + "\"");
  c.head_dim = c.hidden_size / c.n_heads;
  if (c.head_dim * c.n_heads != c.hidden_size || c.head_dim % 2 != 0)
    return m.bad(m.path("n_heads"), "a divisor of hidden_size giving an even head size", std::to_string(c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    return m.bad(m.path("n_kv_heads"), "a divisor of n_heads", std::to_string(c.n_kv_heads));
  c.rope_order = RopeOrder::NORM;  // GGUF llama convention; exporters permute for HF
  return Status();
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

}  // namespace

std::string TrainRecipe::resolve(const std::string& path) const {
  if (path.empty() || std::filesystem::path(path).is_absolute() || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

Result<TrainRecipe> parse_train_recipe(const std::string& text, const std::string& source, const std::string& base_dir) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    return corrupt(source, e.byte, "recipe JSON", "valid JSON", e.what());
  }
  TrainRecipe r;
  r.base_dir = base_dir;
  r.sha256 = sha256_hex(text);
  Fields f(root, "", source);
  SS_RETURN_IF_ERROR(f.object_ok());
  SS_RETURN_IF_ERROR(f.str("name", &r.name));
  SS_RETURN_IF_ERROR(f.integer("recipe_version", &r.recipe_version, 1, 1));
  int64_t seed = 0;
  SS_RETURN_IF_ERROR(f.integer("seed", &seed, 0, INT64_MAX));
  r.seed = static_cast<uint64_t>(seed);
  std::string family = "chatml";
  SS_RETURN_IF_ERROR(f.str("chat_family", &family, false));
  auto fam = chat_family_from_name(family);
  if (!fam.ok()) return f.bad("chat_family", "a chat family name", "\"" + family + "\"");
  r.chat_family = *fam;

  Status s;
  if (const json* tok = f.get("tokenizer", false, &s)) {
    Fields t(*tok, "tokenizer", source);
    SS_RETURN_IF_ERROR(t.object_ok());
    int64_t vocab = 0, min_count = 2;
    SS_RETURN_IF_ERROR(t.integer("vocab_size", &vocab, 260, 1 << 20));
    SS_RETURN_IF_ERROR(t.integer("min_pair_count", &min_count, 1, INT64_MAX / 2, false));
    SS_RETURN_IF_ERROR(t.strings("train_files", &r.tokenizer_files));
    SS_RETURN_IF_ERROR(t.strings("special_tokens", &r.tokenizer.special_tokens, false));
    SS_RETURN_IF_ERROR(t.finish());
    r.tokenizer.vocab_size = static_cast<int32_t>(vocab);
    r.tokenizer.min_pair_count = min_count;
  }
  const json* model = f.get("model", true, &s);
  if (!model) return s;
  SS_RETURN_IF_ERROR(parse_model(*model, "model", source, &r.model));
  const json* data = f.get("data", true, &s);
  if (!data) return s;
  {
    Fields d(*data, "data", source);
    SS_RETURN_IF_ERROR(d.object_ok());
    SS_RETURN_IF_ERROR(d.integer("seq_len", &r.seq_len, 2, 1 << 16));
    std::string layout = "pad", loss = "assistant_only";
    SS_RETURN_IF_ERROR(d.str("layout", &layout, false));
    SS_RETURN_IF_ERROR(d.str("loss", &loss, false));
    SS_RETURN_IF_ERROR(d.finish());
    if (layout != "pad") return d.bad("data.layout", "\"pad\"", "\"" + layout + "\"");
    if (loss != "assistant_only") return d.bad("data.loss", "\"assistant_only\"", "\"" + loss + "\"");
    if (r.seq_len > r.model.max_position)
      return d.bad("data.seq_len", "at most model.max_position = " + std::to_string(r.model.max_position),
                   std::to_string(r.seq_len));
  }
  const json* stages = f.get("stages", true, &s);
  if (!stages) return s;
  if (!stages->is_array() || stages->empty()) return f.bad("stages", "a non-empty array", stages->dump().substr(0, 80));
  std::set<std::string> names;
  for (size_t i = 0; i < stages->size(); ++i) {
    TrainStageConfig st;
    SS_RETURN_IF_ERROR(parse_stage((*stages)[i], "stages[" + std::to_string(i) + "]", source, &st));
    if (st.init != "random" && names.count(st.init) == 0 && st.init.find('/') == std::string::npos &&
        st.init.find('.') == std::string::npos)
      return f.bad("stages[" + std::to_string(i) + "].init", "\"random\", an earlier stage or a model path",
                   "\"" + st.init + "\"");
    if (!names.insert(st.name).second)
      return f.bad("stages[" + std::to_string(i) + "].name", "a unique stage name", "\"" + st.name + "\"");
    r.stages.push_back(std::move(st));
  }
  if (r.tokenizer_files.empty() && r.stages.front().init == "random")
    return f.bad("tokenizer", "a tokenizer section (the first stage starts from random weights)", "nothing");
  if (const json* ev = f.get("eval", false, &s)) {
    Fields e(*ev, "eval", source);
    SS_RETURN_IF_ERROR(e.object_ok());
    SS_RETURN_IF_ERROR(e.str("test_file", &r.eval.test_file, false));
    SS_RETURN_IF_ERROR(e.str("prompts", &r.eval.prompts, false));
    SS_RETURN_IF_ERROR(e.str("neutral_text", &r.eval.neutral_text, false));
    SS_RETURN_IF_ERROR(e.integer("max_new_tokens", &r.eval.max_new_tokens, 1, 4096, false));
    if (const json* tg = e.get("targets", false, &s)) {
      Fields t(*tg, "eval.targets", source);
      SS_RETURN_IF_ERROR(t.object_ok());
      SS_RETURN_IF_ERROR(t.num("harmful_refusal_min", &r.eval.harmful_refusal_min, 0, 1, false));
      SS_RETURN_IF_ERROR(t.num("benign_answer_min", &r.eval.benign_answer_min, 0, 1, false));
      SS_RETURN_IF_ERROR(t.finish());
    }
    SS_RETURN_IF_ERROR(e.finish());
  }
  std::string dtype = "F32";
  SS_RETURN_IF_ERROR(f.str("output_dtype", &dtype, false));
  if (dtype == "F32" || dtype == "f32") r.output_dtype = DType::F32;
  else if (dtype == "F16" || dtype == "f16") r.output_dtype = DType::F16;
  else if (dtype == "BF16" || dtype == "bf16") r.output_dtype = DType::BF16;
  else return f.bad("output_dtype", "F32, F16 or BF16", "\"" + dtype + "\"");
  SS_RETURN_IF_ERROR(f.finish());
  return r;
}

Result<LlamaConfig> parse_llama_model_json(const std::string& text, const std::string& source) {
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded()) return corrupt(source, 0, "model config JSON", "valid JSON", "a parse error");
  LlamaConfig c;
  SS_RETURN_IF_ERROR(parse_model(root, "", source, &c));
  return c;
}

Result<TrainRecipe> read_train_recipe(const std::string& path, const std::string& base_dir) {
  SS_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_train_recipe(text, path, base_dir);
}

}  // namespace ss

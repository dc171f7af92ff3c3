// GGUF block quantizers and llama-quantize's file types: every matrix goes to a block type chosen
// the way llama.cpp's llama_tensor_get_type does for the llama architecture (dense, no experts):
// the file type's base type; output.weight (and token_embd when the output is tied) to q6_K, or
// q8_0 when its rows do not fit 256; attn_v / ffn_down / attn_output / attn_qkv bumped per layer
// by the preset (use_more_bits: the first and last eighth and every third layer between);
// then --tensor-type rules (which replace the preset rules for that tensor), --pure (no preset
// rules), and the fall-backs for rows that do not fit the block (q2_K/q3_K -> q4_0, q4_K -> q5_0,
// q5_K -> q5_1, q6_K -> q8_0, then f16). One difference: where llama-quantize stops ("no fallback
// for q8_0" on 172 columns), we write f16 and say so in the plan.
// Not here: the row quantizers (kernels/ref), dense types (quant_float_int.cpp).
// To add a preset: one row in kPresets and its rules in preset_type().
#include <algorithm>
#include <cstdio>
#include <map>

#include "compress/plan_runner.h"
#include "compress/quant/quant_units.h"
#include "safeshrink/kernels.h"
#include "safeshrink/llama_layout.h"

namespace ss {
namespace {

// llama.cpp's llama_ftype values of the presets we implement.
enum class FileType : int {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12,
  Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18, BF16 = 32,
};

struct Preset {
  const char* name;   // our spec name (lower case llama-quantize name)
  FileType ftype;
  DType base;         // the type of every matrix before rules
  const char* summary;
};

// llama-quantize's aliases: Q3_K = Q3_K_M, Q4_K = Q4_K_M, Q5_K = Q5_K_M.
constexpr Preset kPresets[] = {
    {"q8_0", FileType::Q8_0, DType::Q8_0, "8-bit blocks of 32, f16 scale (8.5 bpw)"},
    {"q4_0", FileType::Q4_0, DType::Q4_0, "4-bit blocks of 32, f16 scale (4.5 bpw)"},
    {"q4_1", FileType::Q4_1, DType::Q4_1, "4-bit blocks of 32, f16 scale and min (5 bpw)"},
    {"q5_0", FileType::Q5_0, DType::Q5_0, "5-bit blocks of 32, f16 scale (5.5 bpw)"},
    {"q5_1", FileType::Q5_1, DType::Q5_1, "5-bit blocks of 32, f16 scale and min (6 bpw)"},
    {"q2_k", FileType::Q2_K, DType::Q2_K, "llama.cpp Q2_K mix (q2_K base, attn_v/ffn_down/attn_output higher)"},
    {"q3_k", FileType::Q3_K_M, DType::Q3_K, "alias of q3_k_m, as llama-quantize"},
    {"q3_k_s", FileType::Q3_K_S, DType::Q3_K, "llama.cpp Q3_K_S: q3_K everywhere but the output"},
    {"q3_k_m", FileType::Q3_K_M, DType::Q3_K, "llama.cpp Q3_K_M mix"},
    {"q3_k_l", FileType::Q3_K_L, DType::Q3_K, "llama.cpp Q3_K_L mix"},
    {"q4_k", FileType::Q4_K_M, DType::Q4_K, "alias of q4_k_m, as llama-quantize"},
    {"q4_k_s", FileType::Q4_K_S, DType::Q4_K, "llama.cpp Q4_K_S mix"},
    {"q4_k_m", FileType::Q4_K_M, DType::Q4_K, "llama.cpp Q4_K_M mix (attn_v/ffn_down q6_K in some layers)"},
    {"q5_k", FileType::Q5_K_M, DType::Q5_K, "alias of q5_k_m, as llama-quantize"},
    {"q5_k_s", FileType::Q5_K_S, DType::Q5_K, "llama.cpp Q5_K_S: q5_K everywhere but the output"},
    {"q5_k_m", FileType::Q5_K_M, DType::Q5_K, "llama.cpp Q5_K_M mix"},
    {"q6_k", FileType::Q6_K, DType::Q6_K, "6-bit super-blocks of 256 (6.5625 bpw)"},
};

const Preset* find_preset(std::string_view name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return &p;
  return nullptr;
}

enum class Category { OUTPUT, TOKEN_EMBD, ATTN_QKV, ATTN_V, ATTN_K, ATTN_Q, ATTN_OUTPUT, FFN_UP, FFN_GATE, FFN_DOWN, OTHER };

// llama.cpp's tensor_get_category on the GGUF name (HF names are mapped first).
Category category_of(const std::string& raw_name) {
  const std::string name = llama_gguf_name(raw_name).value_or(raw_name);
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (name == "output.weight") return Category::OUTPUT;
  if (name == "token_embd.weight") return Category::TOKEN_EMBD;
  if (has("attn_qkv.weight")) return Category::ATTN_QKV;
  if (has("attn_v.weight")) return Category::ATTN_V;
  if (has("attn_k.weight")) return Category::ATTN_K;
  if (has("attn_q.weight")) return Category::ATTN_Q;
  if (has("attn_output.weight")) return Category::ATTN_OUTPUT;
  if (has("ffn_up")) return Category::FFN_UP;
  if (has("ffn_gate")) return Category::FFN_GATE;
  if (has("ffn_down")) return Category::FFN_DOWN;
  return Category::OTHER;
}

bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

struct RuleState {
  int n_attention_wv = 0, n_ffn_down = 0;
  int i_attention_wv = 0, i_ffn_down = 0;
  int64_t n_gqa = 1;
  bool tied_embeddings = true;
  bool has_imatrix = false;
};

// llama_tensor_get_type_impl for the llama architecture without experts.
DType preset_type(const Preset& p, Category cat, int64_t ncols, RuleState& st, std::string* why) {
  DType t = p.base;
  const FileType f = p.ftype;
  auto set = [&](DType to, const std::string& reason) {
    t = to;
    *why = reason;
  };
  if (cat == Category::OUTPUT || (st.tied_embeddings && cat == Category::TOKEN_EMBD)) {
    if (ncols % dtype_info(t).block_size != 0) set(DType::Q8_0, "output: rows not /" + std::to_string(dtype_info(t).block_size) + " -> q8_0");
    else if (t != DType::Q8_0) set(DType::Q6_K, "output -> q6_K");
  } else if (cat == Category::ATTN_V || cat == Category::ATTN_QKV) {
    if (cat == Category::ATTN_QKV) {
      if (f == FileType::Q3_K_M || f == FileType::Q3_K_L) set(DType::Q4_K, "attn_qkv");
      else if (f == FileType::Q4_K_M) set(DType::Q5_K, "attn_qkv");
      else if (f == FileType::Q5_K_M) set(DType::Q6_K, "attn_qkv");
    } else {
      const int i = st.i_attention_wv, n = st.n_attention_wv;
      const std::string at = "attn_v " + std::to_string(i) + "/" + std::to_string(n);
      if (f == FileType::Q2_K) set(st.n_gqa >= 4 ? DType::Q4_K : DType::Q3_K, at);
      else if (f == FileType::Q3_K_M) set(i < 2 ? DType::Q5_K : DType::Q4_K, at);
      else if (f == FileType::Q3_K_L) set(DType::Q5_K, at);
      else if ((f == FileType::Q4_K_M || f == FileType::Q5_K_M) && use_more_bits(i, n)) set(DType::Q6_K, at + " use_more_bits");
      else if (f == FileType::Q4_K_S && i < 4) set(DType::Q5_K, at);
    }
    ++st.i_attention_wv;
  } else if (cat == Category::FFN_DOWN) {
    const int i = st.i_ffn_down, n = st.n_ffn_down;
    const std::string at = "ffn_down " + std::to_string(i) + "/" + std::to_string(n);
    if (f == FileType::Q2_K) set(DType::Q3_K, at);
    else if (f == FileType::Q3_K_M) set(i < n / 16 ? DType::Q5_K : DType::Q4_K, at);
    else if (f == FileType::Q3_K_L) set(DType::Q5_K, at);
    else if (f == FileType::Q4_K_M) {
      if (use_more_bits(i, n)) set(DType::Q6_K, at + " use_more_bits");
    } else if (f == FileType::Q5_K_M && use_more_bits(i, n)) set(DType::Q6_K, at + " use_more_bits");
    else if (f == FileType::Q4_K_S && i < n / 8) set(DType::Q5_K, at);
    else if ((f == FileType::Q4_0 || f == FileType::Q5_0) && st.has_imatrix && i < n / 8)
      set(f == FileType::Q4_0 ? DType::Q4_1 : DType::Q5_1, at + " (imatrix)");
    ++st.i_ffn_down;
  } else if (cat == Category::ATTN_OUTPUT) {
    if (f == FileType::Q2_K) set(DType::Q3_K, "attn_output");
    else if (f == FileType::Q3_K_M) set(DType::Q4_K, "attn_output");
    else if (f == FileType::Q3_K_L) set(DType::Q5_K, "attn_output");
  }
  return t;
}

// tensor_type_fallback: a type whose block does not divide the row width.
DType fallback_type(DType t, int64_t ncols, std::string* why) {
  if (ncols % dtype_info(t).block_size == 0) return t;
  DType to;
  switch (t) {
    case DType::Q2_K:
    case DType::Q3_K: to = DType::Q4_0; break;
    case DType::Q4_K: to = DType::Q5_0; break;
    case DType::Q5_K: to = DType::Q5_1; break;
    case DType::Q6_K: to = DType::Q8_0; break;
    default: to = DType::F16; break;  // llama-quantize has no fallback here and stops
  }
  if (ncols % dtype_info(to).block_size != 0) to = DType::F16;
  char buf[160];
  std::snprintf(buf, sizeof buf, "fallback: %lld cols not /%lld for %s -> %s", static_cast<long long>(ncols),
                static_cast<long long>(dtype_info(t).block_size), dtype_name(t), dtype_name(to));
  *why = why->empty() ? buf : *why + "; " + buf;
  return to;
}

int64_t gqa_of(const TensorStore& in) {
  const auto arch = in.meta.get_string("general.architecture");
  if (arch) {
    const auto h = in.meta.get_int(*arch + ".attention.head_count");
    const auto kv = in.meta.get_int(*arch + ".attention.head_count_kv");
    if (h && kv && *kv > 0) return *h / *kv;
    if (h) return 1;
  }
  if (in.meta.find("hf.config_json") != nullptr) {
    nlohmann::json j = nlohmann::json::parse(in.meta.get_string("hf.config_json").value_or("{}"), nullptr, false);
    if (j.is_object() && j.contains("num_attention_heads") && j["num_attention_heads"].is_number_integer()) {
      const int64_t h = j["num_attention_heads"].get<int64_t>();
      int64_t kv = h;
      if (j.contains("num_key_value_heads") && j["num_key_value_heads"].is_number_integer())
        kv = j["num_key_value_heads"].get<int64_t>();
      if (kv > 0) return h / kv;
    }
  }
  return 1;
}

Result<CompressOutput> run_gguf(const Preset& preset, const TensorStore& in, const nlohmann::json& params,
                                const CompressContext& ctx) {
  SS_ASSIGN_OR_RETURN(PlanOverrides ov, plan_overrides_from_params(params));
  const bool use_imatrix = params.value("imatrix", false);
  std::shared_ptr<const Calibration> calib;
  if (use_imatrix) {
    if (!ctx.calibrate) return invalid_argument(std::string(preset.name) + ": imatrix needs calibration (--calib or --imatrix)");
    SS_ASSIGN_OR_RETURN(calib, ctx.calibrate(false));
  }
  // Pre-pass, as llama-quantize: counts of attn_v-like and ffn_down tensors, tied embeddings.
  RuleState st;
  st.n_gqa = gqa_of(in);
  st.has_imatrix = calib != nullptr;
  for (const Tensor& t : in.tensors) {
    if (!quant_is_weight_matrix(t)) continue;
    const Category c = category_of(t.name);
    if (c == Category::ATTN_V || c == Category::ATTN_QKV) ++st.n_attention_wv;
    if (c == Category::FFN_DOWN) ++st.n_ffn_down;
    if (c == Category::OUTPUT) st.tied_embeddings = false;
  }
  // Types for every matrix in store order (rules advance their layer counters in that order).
  std::map<size_t, std::pair<DType, std::string>> chosen;
  for (size_t i = 0; i < in.tensors.size(); ++i) {
    const Tensor& t = in.tensors[i];
    if (!quant_is_weight_matrix(t)) continue;
    const int64_t cols = quant_is_conv_weight(t) ? t.numel() / t.shape[0] : t.cols();  // conv: (out, in*kh*kw)
    std::string why = std::string("preset ") + preset.name;
    DType type = preset.base;
    if (const PlanOverrides::TypeRule* rule = ov.type_rule(t.name)) {
      type = *dtype_from_name(rule->type);
      why = "rule " + rule->pattern + "=" + rule->type;
    } else if (!ov.pure) {
      std::string rule_why;
      type = preset_type(preset, category_of(t.name), cols, st, &rule_why);
      if (!rule_why.empty()) why += ": " + rule_why;
    } else {
      why = std::string("pure ") + dtype_name(type);
    }
    type = fallback_type(type, cols, &why);
    chosen[i] = {type, why};
  }
  auto apply = [&](const Tensor& t, size_t index) -> Result<TensorDecision> {
    const auto& [type, why] = chosen.at(index);
    std::vector<float> importance;
    std::string reason = why;
    if (calib) {
      const LinearInputStats* s = calib->find(llama_gguf_name(t.name).value_or(t.name));
      if (s == nullptr) s = calib->find(t.name);
      if (s != nullptr && s->k == t.cols() && static_cast<int64_t>(s->sum_sq.size()) == t.cols() && s->rows > 0) {
        importance.resize(static_cast<size_t>(t.cols()));
        for (int64_t c = 0; c < t.cols(); ++c)
          importance[static_cast<size_t>(c)] = static_cast<float>(s->sum_sq[static_cast<size_t>(c)] / static_cast<double>(s->rows));
        reason += "; imatrix";
      }
    }
    SS_ASSIGN_OR_RETURN(Tensor out, quant_tensor_gguf(t, type, importance.empty() ? nullptr : &importance));
    return TensorDecision{std::move(out), dtype_name(type), dtype_bits_per_weight(type), reason};
  };
  SS_ASSIGN_OR_RETURN(CompressOutput out, run_tensor_plan(in, preset.name, params, ov, apply, ctx));
  if (calib)
    out.plan.calibration = {{"source", calib->spec.source}, {"sha256", calib->sha256},
                            {"samples", calib->spec.n_samples}, {"seed", calib->spec.seed}};
  return out;
}

}  // namespace

Result<Tensor> quant_tensor_gguf(const Tensor& in, DType type, const std::vector<float>* importance) {
  if (!kernels::has_quantize_ref(type))
    return unsupported(std::string("no quantizer for type ") + dtype_name(type));
  const int64_t cols = in.cols(), rows = in.rows();
  if (importance != nullptr && static_cast<int64_t>(importance->size()) != cols)
    return invalid_argument(in.name + ": importance has " + std::to_string(importance->size()) + " values for " +
                            std::to_string(cols) + " columns");
  SS_ASSIGN_OR_RETURN(Tensor out, Tensor::zeros(in.name, type, in.shape));  // checks the block fit
  SS_ASSIGN_OR_RETURN(std::vector<float> w, kernels::dequantize(in));
  const uint64_t row_bytes = out.row_bytes();
  for (int64_t r = 0; r < rows; ++r)
    kernels::quantize_row_weighted_ref(type, w.data() + r * cols, out.mutable_data() + r * row_bytes, cols,
                                       importance ? importance->data() : nullptr);
  return out;
}

int quant_gguf_file_type(std::string_view name) {
  if (name == "fp16" || name == "f16") return static_cast<int>(FileType::F16);
  if (name == "bf16") return static_cast<int>(FileType::BF16);
  if (name == "f32") return static_cast<int>(FileType::F32);
  const Preset* p = find_preset(name);
  return p ? static_cast<int>(p->ftype) : -1;
}

const std::vector<std::string>& quant_gguf_unit_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Preset& p : kPresets) v.emplace_back(p.name);
    return v;
  }();
  return names;
}

CompressorInfo quant_unit_gguf(const std::string& name) {
  const Preset* p = find_preset(name);
  CompressorInfo c;
  c.name = name;
  c.kind = "quantizer";
  c.summary = p ? p->summary : "unknown preset";
  c.params = {{"pure", false}, {"tensor_type", nlohmann::json::array()}, {"keep", nlohmann::json::array()},
              {"imatrix", false}};
  c.reference = "GGUF spec; llama.cpp ggml-quants.c quantize_row_*_ref, llama-quant.cpp llama_tensor_get_type";
  c.run = [p](const TensorStore& in, const nlohmann::json& params, const CompressContext& ctx)
      -> Result<CompressOutput> {
    if (p == nullptr) return invalid_argument("unknown GGUF preset");
    return run_gguf(*p, in, params, ctx);
  };
  return c;
}

}  // namespace ss

// Head and FFN-group ablation and tensor deltas of attribution.h, plus the store surgery they and
// the set difference share (safety_circuits_stores.h). An ablation replaces ONE tensor by an F32 copy
// with some columns zeroed — for a head, the columns of attn_output that read that query head's
// slice of the attention output, which is exactly "zero the head's output before the output
// projection" (tests/reference/test_head_ablation_torch.cpp checks that against a PyTorch head
// mask) — and scores the result with score_safety against a baseline in which the same tensors are
// F32 copies too, so the drop measures the ablation and not a dtype change.
// Not here: the probe and scoring (safety_probe.cpp), the set difference (set_difference.cpp),
// sensitivity to compression (the attribution engineer's files). To add an ablation: a
// circuits_with_* store function (declared in safety_circuits_stores.h) and a loop like ablate_heads.
#include <cmath>
#include <limits>

#include "safeshrink/attribution.h"
#include "safeshrink/kernels.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "safeshrink/model_config.h"
#include "safety_circuits_stores.h"

namespace ss {
namespace {

// Replaces the tensor of the same name in `store` (position and index stay valid).
void replace_tensor(TensorStore& store, Tensor t) {
  for (Tensor& slot : store.tensors)
    if (slot.name == t.name) {
      slot = std::move(t);
      return;
    }
}

Result<std::vector<float>> read_2d_f32(const TensorStore& store, const std::string& name, int64_t* rows, int64_t* cols) {
  const Tensor* t = store.find(name);
  if (!t) return not_found("tensor '" + name + "' is not in the store");
  if (t->shape.size() != 2)
    return invalid_argument("tensor '" + name + "': expected a 2-D matrix, got shape " + t->shape_string());
  *rows = t->shape[0];
  *cols = t->shape[1];
  return kernels::dequantize(*t);
}

Result<Tensor> f32_tensor(const std::string& name, int64_t rows, int64_t cols, const std::vector<float>& v) {
  return Tensor::from_bytes(name, DType::F32, {rows, cols}, v.data(), v.size() * sizeof(float));
}

// Store names of one kind of block tensor for every layer, in layer order.
Result<std::vector<std::string>> per_layer_names(const TensorStore& store, int64_t n_layers, const std::string& kind) {
  std::vector<std::string> out;
  for (int64_t l = 0; l < n_layers; ++l) {
    SS_ASSIGN_OR_RETURN(std::string name, circuits_block_tensor_name(store, l, kind));
    out.push_back(std::move(name));
  }
  return out;
}

struct Baseline {
  std::shared_ptr<const TensorStore> store;  // the input with the ablated kind as F32 copies
  SafetyScore score;
};

Result<Baseline> score_baseline(const TensorStore& store, const std::vector<std::string>& f32_tensors,
                                const SafetyProbe& probe, ThreadPool* pool) {
  SS_ASSIGN_OR_RETURN(TensorStore base, circuits_with_f32_copies(store, f32_tensors));
  Baseline b;
  b.store = std::make_shared<const TensorStore>(std::move(base));
  SS_ASSIGN_OR_RETURN(b.score, circuits_score_store(b.store, probe, nullptr, pool));
  return b;
}

}  // namespace

// The probe reduced to what an ablation reports (harmful margins and refusals): no benign prompts,
// no neutral passages — a third or more of the scoring time.
SafetyProbe circuits_harmful_only(const SafetyProbe& probe) {
  SafetyProbe p = probe;
  p.benign.clear();
  p.benign_ids.clear();
  p.neutral.clear();
  return p;
}

// ---------------------------------------------------------------- store surgery

Result<std::string> circuits_block_tensor_name(const TensorStore& store, int64_t layer, const std::string& gguf_kind) {
  const std::string gguf = "blk." + std::to_string(layer) + "." + gguf_kind + ".weight";
  if (store.find(gguf)) return gguf;
  if (auto hf = llama_hf_name(gguf); hf && store.find(*hf)) return *hf;
  return not_found("layer " + std::to_string(layer) + " has no " + gguf_kind + " weight ('" + gguf + "' or its HF name)");
}

Result<TensorStore> circuits_with_f32_copies(const TensorStore& store, const std::vector<std::string>& tensors) {
  TensorStore out = store;
  for (const std::string& name : tensors) {
    const Tensor* t = store.find(name);
    if (!t) return not_found("tensor '" + name + "' is not in the store");
    if (t->dtype == DType::F32) continue;
    SS_ASSIGN_OR_RETURN(std::vector<float> v, kernels::dequantize(*t));
    SS_ASSIGN_OR_RETURN(Tensor copy, Tensor::from_bytes(name, DType::F32, t->shape, v.data(), v.size() * sizeof(float)));
    replace_tensor(out, std::move(copy));
  }
  return out;
}

Result<TensorStore> circuits_with_columns_zeroed(const TensorStore& store, const std::string& tensor, int64_t begin,
                                                 int64_t end) {
  int64_t rows = 0, cols = 0;
  SS_ASSIGN_OR_RETURN(std::vector<float> w, read_2d_f32(store, tensor, &rows, &cols));  // (rows, cols)
  if (begin < 0 || end > cols || begin > end)
    return invalid_argument("tensor '" + tensor + "': columns [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") are not within its " + std::to_string(cols) + " columns");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = begin; c < end; ++c) w[static_cast<size_t>(r * cols + c)] = 0.0f;
  SS_ASSIGN_OR_RETURN(Tensor t, f32_tensor(tensor, rows, cols, w));
  TensorStore out = store;
  replace_tensor(out, std::move(t));
  return out;
}

Result<TensorStore> circuits_with_head_ablated(const TensorStore& store, int64_t layer, int64_t head) {
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(store));
  if (layer < 0 || layer >= cfg.n_layers)
    return invalid_argument("head ablation: layer " + std::to_string(layer) + " is not in [0, " +
                            std::to_string(cfg.n_layers) + ")");
  if (head < 0 || head >= cfg.n_heads)
    return invalid_argument("head ablation: head " + std::to_string(head) + " is not in [0, " +
                            std::to_string(cfg.n_heads) + ")");
  SS_ASSIGN_OR_RETURN(std::string wo, circuits_block_tensor_name(store, layer, "attn_output"));
  const Tensor* t = store.find(wo);
  // attn_output: (d, n_heads * head_dim); its input is the concatenation of the query heads' outputs.
  if (t->shape.size() != 2 || t->shape[1] != cfg.n_heads * cfg.head_dim)
    return invalid_argument("head ablation: '" + wo + "' has shape " + t->shape_string() + ", expected [" +
                            std::to_string(cfg.hidden_size) + ", " + std::to_string(cfg.n_heads * cfg.head_dim) + "]");
  return circuits_with_columns_zeroed(store, wo, head * cfg.head_dim, (head + 1) * cfg.head_dim);
}

Result<TensorStore> circuits_with_weights_zeroed(const TensorStore& store,
                                                 const std::map<std::string, std::vector<uint8_t>>& masks) {
  TensorStore out = store;
  for (const auto& [name, mask] : masks) {
    const Tensor* t = store.find(name);
    if (!t) return not_found("masked tensor '" + name + "' is not in the store");
    if (static_cast<int64_t>(mask.size()) != t->numel())
      return invalid_argument("mask of '" + name + "' has " + std::to_string(mask.size()) + " bytes, the tensor " +
                              std::to_string(t->numel()) + " elements");
    SS_ASSIGN_OR_RETURN(std::vector<float> v, kernels::dequantize(*t));
    for (size_t i = 0; i < v.size(); ++i)
      if (mask[i]) v[i] = 0.0f;
    SS_ASSIGN_OR_RETURN(Tensor copy, Tensor::from_bytes(name, DType::F32, t->shape, v.data(), v.size() * sizeof(float)));
    replace_tensor(out, std::move(copy));
  }
  return out;
}

Result<SafetyScore> circuits_score_store(std::shared_ptr<const TensorStore> store, const SafetyProbe& probe,
                                         const LlamaModel* reference, ThreadPool* pool) {
  SS_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::load(std::move(store)));
  return score_safety(model, probe, reference, pool);
}

// ---------------------------------------------------------------- ablations

Result<std::vector<HeadAblation>> ablate_heads(const TensorStore& store, const SafetyProbe& probe, double threshold,
                                               const AttributionProgress& progress, ThreadPool* pool) {
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(store));
  SS_ASSIGN_OR_RETURN(std::vector<std::string> wo, per_layer_names(store, cfg.n_layers, "attn_output"));
  const SafetyProbe harmful = circuits_harmful_only(probe);
  SS_ASSIGN_OR_RETURN(Baseline base, score_baseline(store, wo, harmful, pool));
  const int64_t total = cfg.n_layers * cfg.n_heads;
  std::vector<HeadAblation> out;
  for (int64_t l = 0; l < cfg.n_layers; ++l)
    for (int64_t h = 0; h < cfg.n_heads; ++h) {
      if (progress.report) progress.report("heads", l * cfg.n_heads + h, total);
      SS_ASSIGN_OR_RETURN(TensorStore ablated, circuits_with_head_ablated(*base.store, l, h));
      SS_ASSIGN_OR_RETURN(SafetyScore s, circuits_score_store(std::make_shared<const TensorStore>(std::move(ablated)),
                                                              harmful, nullptr, pool));
      HeadAblation a;
      a.layer = l;
      a.head = h;
      a.margin_drop = base.score.mean_margin_harmful - s.mean_margin_harmful;
      a.refusal_drop = base.score.refusal_rate - s.refusal_rate;
      a.safety_critical = a.margin_drop >= threshold;
      out.push_back(a);
    }
  if (progress.report) progress.report("heads", total, total);
  return out;
}

Result<std::vector<FfnGroupAblation>> ablate_ffn_groups(const TensorStore& store, const SafetyProbe& probe,
                                                        int64_t group_size, double threshold,
                                                        const AttributionProgress& progress, ThreadPool* pool) {
  if (group_size <= 0) return invalid_argument("ffn group ablation: group_size has to be positive, got " + std::to_string(group_size));
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(store));
  SS_ASSIGN_OR_RETURN(std::vector<std::string> down, per_layer_names(store, cfg.n_layers, "ffn_down"));
  for (const std::string& name : down) {
    const Tensor* t = store.find(name);
    // ffn_down: (d, intermediate); column j is what FFN channel j writes into the residual stream.
    if (t->shape.size() != 2 || t->shape[1] != cfg.intermediate_size)
      return invalid_argument("ffn group ablation: '" + name + "' has shape " + t->shape_string() + ", expected [" +
                              std::to_string(cfg.hidden_size) + ", " + std::to_string(cfg.intermediate_size) + "]");
  }
  const SafetyProbe harmful = circuits_harmful_only(probe);
  SS_ASSIGN_OR_RETURN(Baseline base, score_baseline(store, down, harmful, pool));
  const int64_t groups = (cfg.intermediate_size + group_size - 1) / group_size;
  const int64_t total = cfg.n_layers * groups;
  std::vector<FfnGroupAblation> out;
  for (int64_t l = 0; l < cfg.n_layers; ++l)
    for (int64_t g = 0; g < groups; ++g) {
      if (progress.report) progress.report("ffn_groups", l * groups + g, total);
      const int64_t begin = g * group_size, end = std::min(cfg.intermediate_size, begin + group_size);
      SS_ASSIGN_OR_RETURN(TensorStore ablated, circuits_with_columns_zeroed(*base.store, down[l], begin, end));
      SS_ASSIGN_OR_RETURN(SafetyScore s, circuits_score_store(std::make_shared<const TensorStore>(std::move(ablated)),
                                                              harmful, nullptr, pool));
      FfnGroupAblation a;
      a.layer = l;
      a.begin = begin;
      a.end = end;
      a.margin_drop = base.score.mean_margin_harmful - s.mean_margin_harmful;
      a.refusal_drop = base.score.refusal_rate - s.refusal_rate;
      a.safety_critical = a.margin_drop >= threshold;
      out.push_back(a);
    }
  if (progress.report) progress.report("ffn_groups", total, total);
  return out;
}

// ---------------------------------------------------------------- tensor deltas

Result<std::vector<TensorDelta>> tensor_deltas(const TensorStore& base, const TensorStore& aligned) {
  auto is_gguf_layout = [](const TensorStore& s) {
    for (const Tensor& t : s.tensors)
      if (t.name.rfind("blk.", 0) == 0 || t.name == "token_embd.weight") return true;
    return false;
  };
  // Same layout on both sides (GGUF and HF differ in names and in the RoPE row order of q/k).
  TensorStore converted;
  const TensorStore* other = &aligned;
  if (is_gguf_layout(base) != is_gguf_layout(aligned)) {
    auto conv = is_gguf_layout(base) ? llama_to_gguf_layout(aligned) : llama_to_hf_layout(aligned);
    if (!conv.ok()) return conv.status().with_context("tensor deltas: bringing the aligned store to the base's layout");
    converted = std::move(conv).value();
    other = &converted;
  }
  std::vector<TensorDelta> out;
  for (const Tensor& b : base.tensors) {
    const Tensor* a = other->find(b.name);
    if (!a || a->shape != b.shape) continue;
    SS_ASSIGN_OR_RETURN(std::vector<float> vb, kernels::dequantize(b));
    SS_ASSIGN_OR_RETURN(std::vector<float> va, kernels::dequantize(*a));
    double diff = 0, norm = 0;
    for (size_t i = 0; i < vb.size(); ++i) {
      const double d = static_cast<double>(va[i]) - static_cast<double>(vb[i]);
      diff += d * d;
      norm += static_cast<double>(vb[i]) * static_cast<double>(vb[i]);
    }
    TensorDelta d;
    d.tensor = b.name;
    attribution_tensor_kind(b.name, &d.layer, &d.kind);
    // A zero base tensor: 0 when unchanged, +inf when the fine-tune wrote into it.
    d.rel_delta = norm > 0 ? std::sqrt(diff) / std::sqrt(norm) : (diff > 0 ? std::numeric_limits<double>::infinity() : 0.0);
    out.push_back(std::move(d));
  }
  if (out.empty())
    return invalid_argument("tensor deltas: the base (" + base.path + ") and the aligned store (" + aligned.path +
                            ") share no tensor of the same name and shape");
  return out;
}

}  // namespace ss

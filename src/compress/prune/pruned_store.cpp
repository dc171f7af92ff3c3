// Plumbing shared by the pruners (see pruned_store.h): float views of tensors, writing pruned floats
// back, plan lines and config rewrites. Not here: pruning rules. To add a dtype that keeps its
// type after pruning, extend pruned_tensor.
#include "pruned_store.h"

#include <nlohmann/json.hpp>

#include "safeshrink/half.h"
#include "safeshrink/kernels.h"

namespace ss {

Result<std::vector<float>> pruned_read_f32(const Tensor& t) { return kernels::dequantize(t); }

Result<Tensor> pruned_tensor(const std::string& name, DType like, std::vector<int64_t> shape,
                             const std::vector<float>& values) {
  if (like == DType::F16 || like == DType::BF16) {
    std::vector<uint16_t> h(values.size());
    for (size_t i = 0; i < values.size(); ++i) h[i] = like == DType::F16 ? fp32_to_fp16(values[i]) : fp32_to_bf16(values[i]);
    return Tensor::from_bytes(name, like, std::move(shape), h.data(), h.size() * sizeof(uint16_t));
  }
  return Tensor::from_bytes(name, DType::F32, std::move(shape), values.data(), values.size() * sizeof(float));
}

PlanEntry pruned_plan_entry(const Tensor& before, const Tensor& after, const std::vector<float>& values,
                            std::string reason) {
  PlanEntry e;
  e.tensor = after.name;
  e.from_type = dtype_name(before.dtype);
  e.to_type = dtype_name(after.dtype);
  int64_t zeros = 0;
  for (float v : values) zeros += v == 0.0f;
  e.sparsity = values.empty() ? 0.0 : static_cast<double>(zeros) / static_cast<double>(values.size());
  e.bits_per_weight = dtype_bits_per_weight(after.dtype);
  e.reason = std::move(reason);
  return e;
}

Status pruned_set_config_int(TensorStore& store, const std::string& gguf_key, const std::string& hf_key, int64_t value) {
  if (auto arch = store.meta.get_string("general.architecture")) {
    const std::string key = *arch + "." + gguf_key;
    MetaValue v = MetaValue::of_u32(static_cast<uint32_t>(value));
    if (const MetaValue* old = store.meta.find(key); old && old->is_integer()) {
      v = *old;
      if (v.type == MetaType::I8 || v.type == MetaType::I16 || v.type == MetaType::I32 || v.type == MetaType::I64) v.i = value;
      else v.u = static_cast<uint64_t>(value);
    }
    store.meta.set(key, v);
    return ok_status();
  }
  auto text = store.meta.get_string("hf.config_json");
  if (!text) return invalid_argument("the store has neither GGUF metadata nor an HF config to rewrite");
  nlohmann::json cfg = nlohmann::json::parse(*text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return invalid_argument("hf.config_json is not a JSON object");
  cfg[hf_key] = value;
  store.meta.set("hf.config_json", MetaValue::of_string(cfg.dump(2)));
  return ok_status();
}

void pruned_finish_plan(CompressPlan& plan, const TensorStore& out) {
  double bits = 0, elems = 0;
  for (const auto& e : plan.entries) {
    const Tensor* t = out.find(e.tensor);
    if (!t) continue;
    bits += e.bits_per_weight * static_cast<double>(t->numel());
    elems += static_cast<double>(t->numel());
  }
  plan.bits_per_weight = elems > 0 ? bits / elems : 0.0;
}

}  // namespace ss

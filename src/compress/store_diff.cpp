// diff_stores (compress_diff.h): per-tensor error between two models, across formats and layouts.
// Not here: printing or choosing what to show (tools/cli/cmd_diff.cpp).
// To add a per-tensor measure: compute it in compare_tensor and write it in to_json.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "safeshrink/compress_diff.h"
#include "safeshrink/kernels.h"
#include "safeshrink/llama_layout.h"

namespace ss {
namespace {

// Llama stores in GGUF layout (names, q/k row order); any other store as it is.
TensorStore to_common_layout(const TensorStore& s) {
  bool llama_names = false;
  for (const Tensor& t : s.tensors)
    if (t.name.rfind("model.layers.", 0) == 0 || t.name.rfind("blk.", 0) == 0) llama_names = true;
  if (llama_names) {
    auto g = llama_to_gguf_layout(s);
    if (g.ok()) return std::move(*g);
  }
  return s;
}

std::unordered_map<std::string, double> plan_bits(const TensorStore& s) {
  std::unordered_map<std::string, double> bits;
  const auto text = s.meta.get_string("safeshrink.plan");
  if (!text) return bits;
  const nlohmann::json plan = nlohmann::json::parse(*text, nullptr, false);
  if (!plan.is_object() || !plan.contains("entries") || !plan["entries"].is_array()) return bits;
  for (const auto& e : plan["entries"]) {
    if (!e.is_object() || !e.contains("tensor") || !e.contains("bits_per_weight")) continue;
    if (!e["tensor"].is_string() || !e["bits_per_weight"].is_number()) continue;
    const std::string name = e["tensor"].get<std::string>();
    bits[llama_gguf_name(name).value_or(name)] = e["bits_per_weight"].get<double>();
  }
  return bits;
}

}  // namespace

std::vector<const TensorDiff*> StoreDiff::top(size_t k) const {
  std::vector<const TensorDiff*> v;
  for (const auto& t : tensors) v.push_back(&t);
  std::stable_sort(v.begin(), v.end(), [](const TensorDiff* x, const TensorDiff* y) { return x->rel_error > y->rel_error; });
  if (v.size() > k) v.resize(k);
  return v;
}

nlohmann::json StoreDiff::to_json(size_t top_k) const {
  nlohmann::json j;
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& t : tensors)
    rows.push_back({{"tensor", t.tensor}, {"a_type", t.a_type}, {"b_type", t.b_type}, {"numel", t.numel},
                    {"rel_error", t.rel_error}, {"max_abs_error", t.max_abs_error}, {"sparsity_a", t.sparsity_a},
                    {"sparsity_b", t.sparsity_b}, {"bits_per_weight_b", t.bits_per_weight_b}});
  j["tensors"] = std::move(rows);
  nlohmann::json topj = nlohmann::json::array();
  for (const TensorDiff* t : top(top_k)) topj.push_back(t->tensor);
  j["top"] = std::move(topj);
  j["totals"] = {{"rel_error", total_rel_error}, {"max_abs_error", max_abs_error},
                 {"bits_per_weight_b", bits_per_weight_b}, {"sparsity_b", sparsity_b},
                 {"compared_tensors", tensors.size()}, {"compared_elements", compared_elements}};
  j["only_in_a"] = only_in_a;
  j["only_in_b"] = only_in_b;
  j["shape_mismatch"] = shape_mismatch;
  return j;
}

Result<StoreDiff> diff_stores(const TensorStore& a_in, const TensorStore& b_in) {
  const TensorStore a = to_common_layout(a_in);
  const TensorStore b = to_common_layout(b_in);
  const auto bits_b = plan_bits(b_in);
  StoreDiff d;
  double diff_sq = 0, a_sq = 0, bits_sum = 0, zeros_b = 0, matrix_elems = 0;
  for (const Tensor& ta : a.tensors) {
    const Tensor* tb = b.find(ta.name);
    if (tb == nullptr) {
      d.only_in_a.push_back(ta.name);
      continue;
    }
    if (tb->shape != ta.shape) {
      d.shape_mismatch.push_back(ta.name);
      continue;
    }
    SS_ASSIGN_OR_RETURN(std::vector<float> x, kernels::dequantize(ta));
    SS_ASSIGN_OR_RETURN(std::vector<float> y, kernels::dequantize(*tb));
    TensorDiff t;
    t.tensor = ta.name;
    t.a_type = dtype_name(ta.dtype);
    t.b_type = dtype_name(tb->dtype);
    t.numel = ta.numel();
    double dsq = 0, asq = 0;
    int64_t za = 0, zb = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double e = static_cast<double>(x[i]) - y[i];
      dsq += e * e;
      asq += static_cast<double>(x[i]) * x[i];
      t.max_abs_error = std::max(t.max_abs_error, std::fabs(e));
      za += x[i] == 0.0f;
      zb += y[i] == 0.0f;
    }
    t.rel_error = asq > 0 ? std::sqrt(dsq / asq) : (dsq > 0 ? INFINITY : 0.0);
    const double n = static_cast<double>(std::max<int64_t>(t.numel, 1));
    t.sparsity_a = static_cast<double>(za) / n;
    t.sparsity_b = static_cast<double>(zb) / n;
    const auto it = bits_b.find(ta.name);
    t.bits_per_weight_b = it != bits_b.end() ? it->second : dtype_bits_per_weight(tb->dtype);
    diff_sq += dsq;
    a_sq += asq;
    d.max_abs_error = std::max(d.max_abs_error, t.max_abs_error);
    d.compared_elements += t.numel;
    if (ta.shape.size() >= 2) {
      bits_sum += t.bits_per_weight_b * static_cast<double>(t.numel);
      zeros_b += static_cast<double>(zb);
      matrix_elems += static_cast<double>(t.numel);
    }
    d.tensors.push_back(std::move(t));
  }
  for (const Tensor& tb : b.tensors)
    if (a.find(tb.name) == nullptr) d.only_in_b.push_back(tb.name);
  d.total_rel_error = a_sq > 0 ? std::sqrt(diff_sq / a_sq) : 0.0;
  d.bits_per_weight_b = matrix_elems > 0 ? bits_sum / matrix_elems : 0.0;
  d.sparsity_b = matrix_elems > 0 ? zeros_b / matrix_elems : 0.0;
  return d;
}

}  // namespace ss

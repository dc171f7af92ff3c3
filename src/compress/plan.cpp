// Plans: the JSON form of a CompressPlan, the plan options every quantizer shares (keep regexes,
// --tensor-type rules, pure), llama.cpp's rule for which tensors are weight matrices, and the
// per-tensor loop of plan_runner.h. Not here: the units themselves (quant/, prune/) or the spec
// grammar (compress_variant.cpp). To add a plan option: a field in PlanOverrides, read in
// plan_overrides_from_params, used by the units.
#include <algorithm>
#include <cmath>
#include <regex>

#include "compress/plan_runner.h"
#include "safeshrink/kernels.h"

namespace ss {

nlohmann::json CompressPlan::to_json() const {
  nlohmann::json j;
  j["method"] = method;
  j["params"] = params;
  j["bits_per_weight"] = bits_per_weight;
  j["calibration"] = calibration;
  nlohmann::json rows = nlohmann::json::array();
  for (const PlanEntry& e : entries)
    rows.push_back({{"tensor", e.tensor},
                    {"from", e.from_type},
                    {"to", e.to_type},
                    {"sparsity", e.sparsity},
                    {"bits_per_weight", e.bits_per_weight},
                    {"reason", e.reason}});
  j["entries"] = std::move(rows);
  return j;
}

// A 4-D "conv.<i>.weight" (out, in, kh, kw) of the vision classifiers (model/vision) is a matrix
// too: run_tensor_plan hands it to the units as its (out, in*kh*kw) rows, i.e. per output channel.
bool quant_is_conv_weight(const Tensor& t) {
  const std::string& n = t.name;
  if (t.shape.size() != 4 || t.shape[0] <= 0 || n.rfind("conv.", 0) != 0) return false;
  const size_t dot = n.find('.', 5);
  if (dot == std::string::npos || dot == 5 || n.substr(dot) != ".weight") return false;
  for (size_t i = 5; i < dot; ++i)
    if (n[i] < '0' || n[i] > '9') return false;
  return true;
}

bool quant_is_weight_matrix(const Tensor& t) {
  if ((t.shape.size() < 2 || t.shape.size() > 3) && !quant_is_conv_weight(t)) return false;
  const std::string& n = t.name;
  const std::string suffix = "weight";
  if (n.size() < suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  if (n.find("norm.weight") != std::string::npos || n.find("layernorm") != std::string::npos) return false;
  if (n.find("ffn_gate_inp.weight") != std::string::npos) return false;
  return t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16 || dtype_is_quantized(t.dtype);
}

bool PlanOverrides::keeps(const std::string& tensor) const {
  for (const std::string& k : keep)
    if (std::regex_search(tensor, std::regex(k))) return true;
  return false;
}

const PlanOverrides::TypeRule* PlanOverrides::type_rule(const std::string& tensor) const {
  for (const TypeRule& r : tensor_types)
    if (std::regex_search(tensor, std::regex(r.pattern))) return &r;
  return nullptr;
}

namespace {

Result<std::vector<std::string>> string_list(const nlohmann::json& params, const char* key) {
  std::vector<std::string> out;
  if (!params.contains(key) || params[key].is_null()) return out;
  const nlohmann::json& v = params[key];
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
    return out;
  }
  if (!v.is_array()) return invalid_argument(std::string(key) + " must be a string or an array of strings");
  for (const auto& e : v) {
    if (!e.is_string()) return invalid_argument(std::string(key) + " must hold strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

Status check_regex(const std::string& pattern, const char* what) {
  try {
    std::regex r(pattern);
  } catch (const std::regex_error& e) {
    return invalid_argument(std::string(what) + ": bad regex '" + pattern + "': " + e.what());
  }
  return ok_status();
}

}  // namespace

Result<PlanOverrides> plan_overrides_from_params(const nlohmann::json& params) {
  PlanOverrides o;
  SS_ASSIGN_OR_RETURN(o.keep, string_list(params, "keep"));
  for (const std::string& k : o.keep) SS_RETURN_IF_ERROR(check_regex(k, "keep"));
  SS_ASSIGN_OR_RETURN(auto rules, string_list(params, "tensor_type"));
  for (const std::string& r : rules) {
    const size_t eq = r.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == r.size())
      return invalid_argument("tensor_type '" + r + "' is not REGEX=type");
    PlanOverrides::TypeRule rule{r.substr(0, eq), r.substr(eq + 1)};
    SS_RETURN_IF_ERROR(check_regex(rule.pattern, "tensor_type"));
    if (!dtype_from_name(rule.type)) return invalid_argument("tensor_type '" + r + "': unknown type " + rule.type);
    o.tensor_types.push_back(std::move(rule));
  }
  if (params.contains("pure") && !params["pure"].is_null()) {
    if (!params["pure"].is_boolean()) return invalid_argument("pure must be true or false");
    o.pure = params["pure"].get<bool>();
  }
  return o;
}

double tensor_sparsity(const Tensor& t) {
  const int64_t n = t.numel();
  if (n <= 0) return 0.0;
  auto values = kernels::dequantize(t);
  if (!values.ok()) return 0.0;
  int64_t zeros = 0;
  for (float v : *values) zeros += v == 0.0f;
  return static_cast<double>(zeros) / static_cast<double>(n);
}

Result<CompressOutput> run_tensor_plan(const TensorStore& in, const std::string& method, const nlohmann::json& params,
                                       const PlanOverrides& overrides, const TensorApplyFn& apply,
                                       const CompressContext& ctx) {
  CompressOutput out;
  out.store.format = in.format;
  out.store.meta = in.meta;
  out.plan.method = method;
  out.plan.params = params;
  double bits_sum = 0, weights = 0;
  const int64_t total = static_cast<int64_t>(in.tensors.size());
  for (size_t i = 0; i < in.tensors.size(); ++i) {
    const Tensor& t = in.tensors[i];
    if (ctx.progress) ctx.progress(method, static_cast<int64_t>(i), total);
    PlanEntry e;
    e.tensor = t.name;
    e.from_type = dtype_name(t.dtype);
    const bool matrix = quant_is_weight_matrix(t);
    if (!matrix || overrides.keeps(t.name)) {
      e.to_type = e.from_type;
      e.bits_per_weight = dtype_bits_per_weight(t.dtype);
      e.reason = matrix ? "keep (--keep)" : "not a weight matrix";
      if (matrix) e.sparsity = tensor_sparsity(t);
      SS_RETURN_IF_ERROR(out.store.add(t));
    } else {
      // A conv weight goes to the unit as its (out, in*kh*kw) matrix; the result gets the 4-D shape
      // back when its type has no blocks (a block type keeps the matrix shape its rows were cut in).
      Tensor view = t;
      if (t.shape.size() == 4) view.shape = {t.shape[0], t.numel() / std::max<int64_t>(1, t.shape[0])};
      SS_ASSIGN_OR_RETURN(TensorDecision d, apply(view, i));
      if (t.shape.size() == 4 && dtype_info(d.out.dtype).block_size == 1 && d.out.numel() == t.numel())
        d.out.shape = t.shape;
      e.to_type = d.to_type;
      e.bits_per_weight = d.bits_per_weight;
      e.reason = d.reason;
      e.sparsity = tensor_sparsity(d.out);
      SS_RETURN_IF_ERROR(out.store.add(std::move(d.out)));
    }
    if (matrix) {
      const double n = static_cast<double>(t.numel());
      bits_sum += e.bits_per_weight * n;
      weights += n;
    }
    out.plan.entries.push_back(std::move(e));
  }
  if (ctx.progress) ctx.progress(method, total, total);
  out.plan.bits_per_weight = weights > 0 ? bits_sum / weights : 0.0;
  out.plan.calibration = nullptr;
  return out;
}

}  // namespace ss

// AWQ scale search on linears that share one input (include/safeshrink/quant_gptq_awq.h), after
// Lin et al. 2024: salient input channels (large mean |x|) are protected by scaling weight
// columns up by s = mean|x|^alpha before round-to-nearest and the input down by 1/s (folded into
// the previous op by the caller). alpha is chosen on a grid to minimize the output error
// ||X W^T - X (Q(W diag s) diag(1/s))^T||^2, computed exactly from the captured X^T X.
// Also the store-level unit "awq": scales folded into the previous op (RMSNorm weight before
// q/k/v and gate/up; v rows before o when shapes allow, i.e. no GQA; up rows before down), then
// round-to-nearest of the scaled weights. Not here: the grid itself (rtn_quantize_linear in gptq.cpp). To add weight clipping: a search after
// the scale search, over a per-group max-value shrink, with the same error function.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include <Eigen/Dense>

#include <map>

#include "compress/plan_runner.h"
#include "compress/quant/quant_units.h"
#include "safeshrink/kernels.h"
#include "safeshrink/quant_gptq_awq.h"

namespace ss {

namespace {
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}

Status AwqParams::validate() const {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return invalid_argument("awq: bits has to be 2, 3, 4 or 8, got " + std::to_string(bits));
  if (group_size == 0 || group_size < -1)
    return invalid_argument("awq: group_size has to be -1 (per channel) or positive, got " + std::to_string(group_size));
  if (grid < 1 || grid > 1000) return invalid_argument("awq: grid has to be in 1..1000, got " + std::to_string(grid));
  return ok_status();
}

double output_error_from_xtx(const float* w, const float* w_hat, int64_t rows, int64_t k,
                             const std::vector<double>& xtx) {
  RowMatrix D(rows, k);
  for (int64_t i = 0; i < rows * k; ++i) D.data()[i] = static_cast<double>(w[i]) - static_cast<double>(w_hat[i]);
  Eigen::Map<const RowMatrix> G(xtx.data(), k, k);
  const RowMatrix DG = D * G;
  return DG.cwiseProduct(D).sum();
}

Result<AwqScaleSearch> awq_search_scales(const std::vector<const float*>& ws, const std::vector<int64_t>& rows,
                                         int64_t k, const std::vector<double>& mean_abs,
                                         const std::vector<double>& xtx, const AwqParams& p) {
  SS_RETURN_IF_ERROR(p.validate());
  if (ws.empty() || ws.size() != rows.size()) return invalid_argument("awq: weights and row counts disagree");
  if (k <= 0 || static_cast<int64_t>(mean_abs.size()) != k ||
      static_cast<uint64_t>(xtx.size()) != static_cast<uint64_t>(k) * static_cast<uint64_t>(k))
    return invalid_argument("awq: mean_abs needs k elements and xtx k*k");
  AwqScaleSearch best;
  best.error = INFINITY;
  std::vector<float> s(static_cast<size_t>(k)), scaled, w_hat;
  for (int step = 0; step < p.grid; ++step) {
    const double alpha = static_cast<double>(step) / p.grid;
    double lo = INFINITY, hi = 0;
    std::vector<double> sd(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) {
      sd[c] = std::max(std::pow(std::max(mean_abs[c], 0.0), alpha), 1e-4);
      lo = std::min(lo, sd[c]);
      hi = std::max(hi, sd[c]);
    }
    const double norm = std::sqrt(hi * lo);
    for (int64_t c = 0; c < k; ++c) s[c] = static_cast<float>(sd[c] / norm);
    double err = 0;
    for (size_t m = 0; m < ws.size(); ++m) {
      const int64_t n = rows[m];
      scaled.resize(static_cast<size_t>(n * k));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) scaled[r * k + c] = ws[m][r * k + c] * s[c];
      SS_ASSIGN_OR_RETURN(GroupQuantizedLinear q, rtn_quantize_linear(scaled.data(), n, k, p.bits, p.group_size, p.sym));
      w_hat = q.dequantize();
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) w_hat[r * k + c] /= s[c];
      err += output_error_from_xtx(ws[m], w_hat.data(), n, k, xtx);
    }
    if (step == 0) best.error_alpha0 = err;
    if (err < best.error) {
      best.error = err;
      best.alpha = alpha;
      best.scales = s;
    }
  }
  if (!std::isfinite(best.error)) return invalid_argument("awq: no finite output error on the grid");
  return best;
}

namespace {

// One place where AWQ may scale: linears sharing an input and the op producing that input.
struct AwqSlot {
  const char* prev;                  // RMSNorm weight (vector) or previous linear (rows scaled)
  bool prev_is_linear;
  std::vector<const char*> linears;
  const char* prev_bias;             // bias of the previous linear (qwen2 v), may be absent
};
struct AwqNames {
  const char* probe;  // a tensor that exists for every layer
  std::vector<AwqSlot> slots;
};
const AwqNames kAwqGguf = {"blk.{L}.attn_q.weight",
                           {{"blk.{L}.attn_norm.weight", false, {"blk.{L}.attn_q.weight", "blk.{L}.attn_k.weight", "blk.{L}.attn_v.weight"}, ""},
                            {"blk.{L}.attn_v.weight", true, {"blk.{L}.attn_output.weight"}, "blk.{L}.attn_v.bias"},
                            {"blk.{L}.ffn_norm.weight", false, {"blk.{L}.ffn_gate.weight", "blk.{L}.ffn_up.weight"}, ""},
                            {"blk.{L}.ffn_up.weight", true, {"blk.{L}.ffn_down.weight"}, ""}}};
const AwqNames kAwqHf = {
    "model.layers.{L}.self_attn.q_proj.weight",
    {{"model.layers.{L}.input_layernorm.weight", false,
      {"model.layers.{L}.self_attn.q_proj.weight", "model.layers.{L}.self_attn.k_proj.weight", "model.layers.{L}.self_attn.v_proj.weight"}, ""},
     {"model.layers.{L}.self_attn.v_proj.weight", true, {"model.layers.{L}.self_attn.o_proj.weight"}, "model.layers.{L}.self_attn.v_proj.bias"},
     {"model.layers.{L}.post_attention_layernorm.weight", false,
      {"model.layers.{L}.mlp.gate_proj.weight", "model.layers.{L}.mlp.up_proj.weight"}, ""},
     {"model.layers.{L}.mlp.up_proj.weight", true, {"model.layers.{L}.mlp.down_proj.weight"}, ""}}};

std::string at_layer(const char* pattern, int64_t l) {
  std::string s = pattern;
  const auto pos = s.find("{L}");
  if (pos != std::string::npos) s.replace(pos, 3, std::to_string(l));
  return s;
}

Result<AwqParams> awq_params_from_json(const nlohmann::json& j) {
  AwqParams p;
  try {
    if (j.contains("bits")) p.bits = j["bits"].get<int>();
    if (j.contains("group_size")) p.group_size = j["group_size"].get<int64_t>();
    if (j.contains("sym")) p.sym = j["sym"].get<bool>();
    if (j.contains("grid")) p.grid = j["grid"].get<int>();
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("awq parameters: ") + e.what());
  }
  SS_RETURN_IF_ERROR(p.validate());
  return p;
}

}  // namespace

Result<GroupQuantizedStore> awq_quantize_store(const TensorStore& in, const nlohmann::json& params,
                                               const CompressContext& ctx) {
  SS_ASSIGN_OR_RETURN(AwqParams p, awq_params_from_json(params));
  SS_ASSIGN_OR_RETURN(PlanOverrides ov, plan_overrides_from_params(params));
  if (!ctx.calibrate) return invalid_argument("awq needs calibration data (--calib): no calibration source wired");
  SS_ASSIGN_OR_RETURN(std::shared_ptr<const Calibration> calib, ctx.calibrate(true));
  if (!calib) return invalid_argument("awq: the calibration source gave nothing");
  const AwqNames& names = in.find(at_layer(kAwqGguf.probe, 0)) ? kAwqGguf : kAwqHf;

  // Working F32 copies of every tensor AWQ touches, and why.
  std::map<std::string, std::vector<float>> work;
  std::map<std::string, std::string> why;
  auto load = [&](const std::string& name) -> Result<std::vector<float>*> {
    auto it = work.find(name);
    if (it != work.end()) return &it->second;
    const Tensor* t = in.find(name);
    if (!t) return not_found("awq: tensor '" + name + "' is missing");
    SS_ASSIGN_OR_RETURN(std::vector<float> v, kernels::dequantize(*t));
    return &work.emplace(name, std::move(v)).first->second;
  };
  struct Planned {
    const AwqSlot* slot;
    int64_t layer;
    AwqScaleSearch found;
  };
  std::vector<Planned> planned;
  for (int64_t l = 0; in.find(at_layer(names.probe, l)); ++l) {
    for (const AwqSlot& slot : names.slots) {
      const std::string first = at_layer(slot.linears[0], l);
      const LinearInputStats* st = calib->find(first);
      const Tensor* prev = in.find(at_layer(slot.prev, l));
      if (!st || st->xtx.empty() || st->rows <= 0 || !prev) continue;
      const int64_t k = st->k;
      // The previous op must produce exactly this input: a k-vector norm, or a linear with k rows.
      if (slot.prev_is_linear ? prev->rows() != k : prev->numel() != k) continue;
      std::vector<const float*> ws;
      std::vector<int64_t> rows;
      bool ok = true;
      for (const char* lp : slot.linears) {
        const std::string name = at_layer(lp, l);
        const Tensor* t = in.find(name);
        if (!t || t->cols() != k || ov.keeps(name)) {
          ok = false;
          break;
        }
        SS_ASSIGN_OR_RETURN(std::vector<float>* w, load(name));
        ws.push_back(w->data());
        rows.push_back(t->rows());
      }
      if (!ok) continue;
      std::vector<double> mean_abs(k);
      for (int64_t c = 0; c < k; ++c) mean_abs[c] = st->sum_abs[c] / static_cast<double>(st->rows);
      SS_ASSIGN_OR_RETURN(AwqScaleSearch found, awq_search_scales(ws, rows, k, mean_abs, st->xtx, p));
      planned.push_back({&slot, l, std::move(found)});
    }
  }
  // Apply every scale after all searches (each search saw the unscaled weights).
  for (const Planned& pl : planned) {
    const std::vector<float>& s = pl.found.scales;
    const int64_t k = static_cast<int64_t>(s.size());
    char buf[96];
    std::snprintf(buf, sizeof buf, "awq alpha %.2f, output error %.3g vs %.3g at alpha 0", pl.found.alpha,
                  pl.found.error, pl.found.error_alpha0);
    for (const char* lp : pl.slot->linears) {
      const std::string name = at_layer(lp, pl.layer);
      SS_ASSIGN_OR_RETURN(std::vector<float>* w, load(name));
      const int64_t rows = static_cast<int64_t>(w->size()) / k;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < k; ++c) (*w)[r * k + c] *= s[c];
      why[name] = buf;
    }
    const std::string prev = at_layer(pl.slot->prev, pl.layer);
    SS_ASSIGN_OR_RETURN(std::vector<float>* pw, load(prev));
    const int64_t cols = static_cast<int64_t>(pw->size()) / k;  // 1 for a norm vector
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < cols; ++c) (*pw)[r * cols + c] /= s[r];
    const std::string bias = at_layer(pl.slot->prev_bias, pl.layer);
    if (!bias.empty() && in.find(bias)) {
      SS_ASSIGN_OR_RETURN(std::vector<float>* b, load(bias));
      for (int64_t r = 0; r < k && r < static_cast<int64_t>(b->size()); ++r) (*b)[r] /= s[r];
    }
  }
  TensorStore scaled;
  scaled.format = in.format;
  scaled.path = in.path;
  scaled.meta = in.meta;
  for (const Tensor& t : in.tensors) {
    auto it = work.find(t.name);
    if (it == work.end()) {
      SS_RETURN_IF_ERROR(scaled.add(t));
      continue;
    }
    SS_ASSIGN_OR_RETURN(Tensor nt, Tensor::from_bytes(t.name, DType::F32, t.shape, it->second.data(), it->second.size() * 4));
    SS_RETURN_IF_ERROR(scaled.add(std::move(nt)));
  }
  GroupQuantizedStore result;
  const std::string type = "awq" + std::to_string(p.bits) + (p.group_size > 0 ? "-g" + std::to_string(p.group_size) : "-pc") +
                           (p.sym ? "-sym" : "");
  auto apply = [&](const Tensor& t, size_t) -> Result<TensorDecision> {
    SS_ASSIGN_OR_RETURN(std::vector<float> w, kernels::dequantize(t));
    const int64_t rows = t.rows(), cols = t.cols();
    SS_ASSIGN_OR_RETURN(GroupQuantizedLinear q, rtn_quantize_linear(w.data(), rows, cols, p.bits, p.group_size, p.sym));
    SS_ASSIGN_OR_RETURN(Tensor out, group_quantized_to_tensor(t.name, t.shape, q));
    result.linears.emplace_back(t.name, std::move(q));
    const int64_t g = p.group_size > 0 && p.group_size < cols ? p.group_size : cols;
    const double bpw = p.bits + (16.0 + (p.sym ? 0.0 : p.bits)) / static_cast<double>(g);
    auto it = why.find(t.name);
    return TensorDecision{std::move(out), type, bpw,
                          it != why.end() ? it->second : "round to nearest (no foldable previous op or no statistics)"};
  };
  SS_ASSIGN_OR_RETURN(result.out, run_tensor_plan(scaled, "awq", params, ov, apply, ctx));
  result.out.plan.calibration = {{"source", calib->spec.source}, {"sha256", calib->sha256},
                                 {"samples", calib->spec.n_samples}, {"seq_len", calib->spec.seq_len},
                                 {"seed", calib->spec.seed}};
  return result;
}

CompressorInfo quant_unit_awq() {
  CompressorInfo c;
  c.name = "awq";
  c.kind = "quantizer";
  c.summary = "AWQ: activation-aware per-input-channel scales (mean|x|^alpha, grid search on the output error), "
              "folded into the previous RMSNorm/linear, then round to nearest; fake-quant dense values (f32)";
  c.params = {{"bits", 4}, {"group_size", 128}, {"sym", false}, {"grid", 20}, {"keep", nlohmann::json::array()}};
  c.reference = "Lin et al., AWQ: Activation-aware Weight Quantization for LLM Compression and Acceleration, MLSys 2024";
  c.run = [](const TensorStore& in, const nlohmann::json& params, const CompressContext& ctx) -> Result<CompressOutput> {
    SS_ASSIGN_OR_RETURN(GroupQuantizedStore r, awq_quantize_store(in, params, ctx));
    return std::move(r.out);
  };
  return c;
}

}  // namespace ss

// The pruner registry (pruner_registry() of compress.h): one row per pruner with its parameters,
// defaults and paper, plus the per-store loops of the unstructured pruners (which tensors, which
// mask, plan lines). The mask rules live in prune_masks.cpp and prune_sparsegpt.cpp, the
// structured pruners in prune_structured.cpp. Magnitude, Wanda and SparseGPT take "protect":
// "" | "safety"; with "safety" they ask CompressContext::safety_critical for the safety-critical
// weights and never prune one (prune_protect.h: the next-lowest scores are pruned instead).
// To add a pruner: one row in the table below.
#include <algorithm>
#include <cmath>

#include "prune_protect.h"
#include "pruned_store.h"
#include "safeshrink/prune.h"

namespace ss {
namespace {

using Json = nlohmann::json;

Result<double> param_number(const Json& params, const Json& defaults, const char* key) {
  const Json& v = params.contains(key) ? params.at(key) : defaults.at(key);
  if (!v.is_number()) return invalid_argument(std::string("pruner parameter '") + key + "' has to be a number, got " + v.dump());
  return v.get<double>();
}

Result<int64_t> param_int(const Json& params, const Json& defaults, const char* key) {
  SS_ASSIGN_OR_RETURN(double d, param_number(params, defaults, key));
  if (d != std::floor(d) || std::fabs(d) > 1e9)
    return invalid_argument(std::string("pruner parameter '") + key + "' has to be an integer, got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

Result<double> param_sparsity(const Json& params, const Json& defaults) {
  SS_ASSIGN_OR_RETURN(double s, param_number(params, defaults, "sparsity"));
  if (!(s >= 0.0 && s <= 1.0)) return invalid_argument("sparsity has to be in [0, 1], got " + std::to_string(s));
  return s;
}

Json filled(const Json& params, const Json& defaults) {
  Json out = defaults;
  for (auto it = params.begin(); it != params.end(); ++it) out[it.key()] = it.value();
  return out;
}

// The block linears of the store, in store order (2-D, or a 4-D vision conv weight).
std::vector<const Tensor*> block_linears(const TensorStore& in) {
  std::vector<const Tensor*> out;
  for (const Tensor& t : in.tensors)
    if ((t.shape.size() == 2 || quant_is_conv_weight(t)) && prune_is_block_linear(t.name)) out.push_back(&t);
  return out;
}

// Rows and columns a pruner sees: a conv weight (out, in, kh, kw) is its (out, in*kh*kw) matrix.
int64_t matrix_rows(const Tensor& t) { return t.shape.size() == 4 ? t.shape[0] : t.rows(); }
int64_t matrix_cols(const Tensor& t) { return t.shape.size() == 4 ? t.numel() / std::max<int64_t>(1, t.shape[0]) : t.cols(); }

const LinearInputStats* find_stats(const Calibration& c, const std::string& name) {
  for (const auto& l : c.linears)
    if (l.tensor == name) return &l;
  return nullptr;
}

// Applies one mask (or rewritten values) per block linear and records the plan.
enum class Rule { MAGNITUDE, GLOBAL_MAGNITUDE, NM, WANDA, SPARSEGPT };

Result<CompressOutput> run_unstructured(Rule rule, const std::string& method, const TensorStore& in, const Json& params,
                                        const Json& defaults, const CompressContext& ctx) {
  CompressOutput out{in, {}};
  out.store.path.clear();
  out.plan.method = method;
  out.plan.params = filled(params, defaults);
  double sparsity = 0;
  int64_t n = 0, m = 0;
  if (defaults.contains("sparsity")) {
    SS_ASSIGN_OR_RETURN(sparsity, param_sparsity(params, defaults));
  }
  if (defaults.contains("m")) {
    SS_ASSIGN_OR_RETURN(n, param_int(params, defaults, "n"));
    SS_ASSIGN_OR_RETURN(m, param_int(params, defaults, "m"));
    if (m < 0 || m > 1024 || n < 0 || n > m)
      return invalid_argument("n:m needs 0 <= n <= m <= 1024 (m = 0: unstructured), got " + std::to_string(n) + ":" + std::to_string(m));
    if (rule == Rule::NM && m == 0) return invalid_argument("nm: m has to be positive");
  }
  const std::vector<const Tensor*> linears = block_linears(in);
  if (linears.empty()) return invalid_argument(method + ": the store has no transformer block linear weights to prune");

  std::shared_ptr<const SafetyCriticalWeights> critical;  // set when protect == "safety"
  if (defaults.contains("protect")) {
    const Json& v = params.contains("protect") ? params.at("protect") : defaults.at("protect");
    if (!v.is_string() || (v.get<std::string>() != "" && v.get<std::string>() != "safety"))
      return invalid_argument(method + ": parameter 'protect' has to be \"\" or \"safety\", got " + v.dump());
    if (v.get<std::string>() == "safety") {
      if (m > 0)
        return invalid_argument(method + ": protect=safety needs unstructured sparsity (m = 0); an n:m group cannot keep extra weights");
      if (!ctx.safety_critical)
        return invalid_argument(method + ": protect=safety needs the safety-critical weights (CompressContext::safety_critical "
                                "is unset; the CLI wires it with --protect safety)");
      SS_ASSIGN_OR_RETURN(critical, ctx.safety_critical());
      if (!critical) return internal_error(method + ": safety_critical returned nothing");
      out.plan.params["protected_weights"] = critical->info;
    }
  }

  std::shared_ptr<const Calibration> calib;
  if (rule == Rule::WANDA || rule == Rule::SPARSEGPT) {
    if (!ctx.calibrate) return invalid_argument(method + " needs calibration activations (give a calibration source)");
    SS_ASSIGN_OR_RETURN(calib, ctx.calibrate(rule == Rule::SPARSEGPT));
    if (!calib) return internal_error(method + ": calibration returned nothing");
    out.plan.calibration = {{"source", calib->spec.source}, {"sha256", calib->sha256},
                            {"samples", calib->spec.n_samples}, {"seed", calib->spec.seed}};
  }

  std::vector<std::vector<float>> values(linears.size());
  for (size_t i = 0; i < linears.size(); ++i) {
    SS_ASSIGN_OR_RETURN(values[i], pruned_read_f32(*linears[i]));
  }

  std::vector<std::string> reasons(linears.size());
  if (rule == Rule::GLOBAL_MAGNITUDE) {
    std::vector<const float*> ptrs;
    std::vector<int64_t> sizes;
    int64_t total = 0;
    for (size_t i = 0; i < linears.size(); ++i) {
      ptrs.push_back(values[i].data());
      sizes.push_back(linears[i]->numel());
      total += linears[i]->numel();
    }
    const auto masks = prune_global_magnitude_masks(ptrs, sizes, prune_count_torch(sparsity, total));
    for (size_t i = 0; i < linears.size(); ++i) {
      for (size_t k = 0; k < values[i].size(); ++k)
        if (!masks[i][k]) values[i][k] = 0.0f;
      reasons[i] = "global |w| threshold over " + std::to_string(linears.size()) + " matrices";
    }
  } else {
    for (size_t i = 0; i < linears.size(); ++i) {
      const Tensor& t = *linears[i];
      const int64_t rows = matrix_rows(t), cols = matrix_cols(t);
      std::vector<float>& w = values[i];
      if (ctx.progress) ctx.progress(method, static_cast<int64_t>(i), static_cast<int64_t>(linears.size()));
      const uint8_t* protect = nullptr;  // (rows, cols) 1 = safety-critical, never pruned
      int64_t n_protected = 0, shortfall = 0;
      if (critical) {
        auto it = critical->masks.find(t.name);
        if (it != critical->masks.end()) {
          if (static_cast<int64_t>(it->second.size()) != rows * cols)
            return invalid_argument(method + ": safety-critical mask of " + t.name + " has " +
                                    std::to_string(it->second.size()) + " bytes, the tensor " +
                                    std::to_string(rows * cols) + " elements");
          protect = it->second.data();
          for (uint8_t b : it->second) n_protected += b != 0;
        }
      }
      std::vector<uint8_t> keep;
      switch (rule) {
        case Rule::MAGNITUDE:
          keep = protect ? prune_magnitude_mask_protected(w.data(), rows * cols, prune_count_torch(sparsity, rows * cols),
                                                          protect, &shortfall)
                         : prune_magnitude_mask(w.data(), rows * cols, prune_count_torch(sparsity, rows * cols));
          reasons[i] = "smallest |w| of the tensor";
          break;
        case Rule::NM: {
          SS_ASSIGN_OR_RETURN(keep, prune_nm_mask(w.data(), rows, cols, static_cast<int>(n), static_cast<int>(m)));
          reasons[i] = std::to_string(n) + ":" + std::to_string(m) + " by |w|";
          break;
        }
        case Rule::WANDA: {
          const LinearInputStats* st = find_stats(*calib, t.name);
          if (!st || st->k != cols || static_cast<int64_t>(st->sum_sq.size()) != cols)
            return invalid_argument("wanda: no calibration statistics of width " + std::to_string(cols) + " for " + t.name);
          if (protect) {
            SS_ASSIGN_OR_RETURN(keep, prune_wanda_mask_protected(w.data(), rows, cols, st->sum_sq.data(), sparsity,
                                                                 protect, &shortfall));
          } else {
            SS_ASSIGN_OR_RETURN(keep, prune_wanda_mask(w.data(), rows, cols, st->sum_sq.data(), sparsity,
                                                       static_cast<int>(n), static_cast<int>(m)));
          }
          reasons[i] = m > 0 ? "wanda " + std::to_string(n) + ":" + std::to_string(m) : "wanda |w|*||x|| per row";
          break;
        }
        case Rule::SPARSEGPT: {
          const LinearInputStats* st = find_stats(*calib, t.name);
          if (!st || st->k != cols || static_cast<int64_t>(st->xtx.size()) != cols * cols)
            return invalid_argument("sparsegpt: no calibration X^T X of width " + std::to_string(cols) + " for " + t.name);
          SparseGptOptions o;
          o.sparsity = sparsity;
          o.n = static_cast<int>(n);
          o.m = static_cast<int>(m);
          SS_ASSIGN_OR_RETURN(o.block_size, param_int(params, defaults, "block_size"));
          SS_ASSIGN_OR_RETURN(o.damp, param_number(params, defaults, "damp"));
          if (m > 0 && o.block_size % m != 0) o.block_size -= o.block_size % m;
          SS_RETURN_IF_ERROR(
              prune_sparsegpt_matrix_protected(w.data(), rows, cols, st->xtx.data(), o, protect, &shortfall).with_context(t.name));
          reasons[i] = "sparsegpt OBS update, block " + std::to_string(o.block_size) +
                       (m > 0 ? ", " + std::to_string(n) + ":" + std::to_string(m) : std::string());
          break;
        }
        case Rule::GLOBAL_MAGNITUDE: break;
      }
      if (critical) {
        reasons[i] += "; protected " + std::to_string(n_protected) + " safety-critical";
        if (shortfall > 0) reasons[i] += "; " + std::to_string(shortfall) + " short of the sparsity (too few unprotected weights)";
      }
      if (!keep.empty())
        for (size_t k = 0; k < w.size(); ++k)
          if (!keep[k]) w[k] = 0.0f;
    }
  }
  for (size_t i = 0; i < linears.size(); ++i) {
    const Tensor& before = *linears[i];
    SS_ASSIGN_OR_RETURN(Tensor after, pruned_tensor(before.name, before.dtype, before.shape, values[i]));
    out.plan.entries.push_back(pruned_plan_entry(before, after, values[i], reasons[i]));
    for (Tensor& slot : out.store.tensors)
      if (slot.name == before.name) slot = after;  // same name and position: the index stays valid
  }
  pruned_finish_plan(out.plan, out.store);
  return out;
}

CompressorInfo unstructured(Rule rule, std::string name, std::string summary, Json defaults, std::string reference) {
  CompressorInfo info;
  info.name = name;
  info.kind = "pruner";
  info.summary = std::move(summary);
  info.params = defaults;
  info.reference = std::move(reference);
  info.run = [rule, name, defaults](const TensorStore& in, const Json& params, const CompressContext& ctx) {
    return run_unstructured(rule, name, in, params, defaults, ctx);
  };
  return info;
}

CompressorInfo structured(std::string name, std::string summary, Json defaults, std::string reference) {
  CompressorInfo info;
  info.name = name;
  info.kind = "pruner";
  info.summary = std::move(summary);
  info.params = defaults;
  info.reference = std::move(reference);
  info.run = [name, defaults](const TensorStore& in, const Json& params, const CompressContext&) -> Result<CompressOutput> {
    Result<CompressOutput> out = Status(StatusCode::INTERNAL, "unreachable");
    if (name == "layers") {
      SS_ASSIGN_OR_RETURN(int64_t count, param_int(params, defaults, "count"));
      out = prune_layers(in, count);
    } else {
      SS_ASSIGN_OR_RETURN(double s, param_sparsity(params, defaults));
      out = name == "heads" ? prune_heads(in, s) : prune_channels(in, s);
    }
    if (out.ok()) out->plan.params = filled(params, defaults);
    return out;
  };
  return info;
}

std::vector<CompressorInfo> make_registry() {
  std::vector<CompressorInfo> r;
  r.push_back(unstructured(Rule::MAGNITUDE, "magnitude", "per tensor: zero the smallest |w| of each block linear",
                           {{"sparsity", 0.5}, {"protect", ""}}, "Han et al. 2015, Learning both Weights and Connections"));
  r.push_back(unstructured(Rule::GLOBAL_MAGNITUDE, "global-magnitude",
                           "one |w| threshold over all block linears (torch prune.global_unstructured, L1Unstructured)",
                           {{"sparsity", 0.5}}, "torch.nn.utils.prune.global_unstructured"));
  r.push_back(unstructured(Rule::NM, "nm", "keep the n largest |w| of every m consecutive inputs (2:4 sparsity)",
                           {{"n", 2}, {"m", 4}}, "Mishra et al. 2021, Accelerating Sparse Deep Neural Networks"));
  r.push_back(unstructured(Rule::WANDA, "wanda", "per output row: zero the smallest |W_ij|*||X_j||_2 (calibration)",
                           {{"sparsity", 0.5}, {"n", 0}, {"m", 0}, {"protect", ""}},
                           "Sun et al. 2023, A Simple and Effective Pruning Approach for LLMs (arXiv:2306.11695)"));
  r.push_back(unstructured(Rule::SPARSEGPT, "sparsegpt", "OBS update with the inverse-Hessian Cholesky factor, adaptive mask per block",
                           {{"sparsity", 0.5}, {"n", 0}, {"m", 0}, {"block_size", 128}, {"damp", 0.01}, {"protect", ""}},
                           "Frantar & Alistarh 2023, SparseGPT (arXiv:2301.00774)"));
  r.push_back(structured("heads", "remove whole attention KV groups with the smallest ||W_o slice||, same count per layer",
                         {{"sparsity", 0.25}}, "Michel et al. 2019, Are Sixteen Heads Really Better than One?"));
  r.push_back(structured("channels", "remove FFN channels with the smallest ||W_up row||*||W_down col||, same count per layer",
                         {{"sparsity", 0.25}}, "Ma et al. 2023, LLM-Pruner (structured width pruning)"));
  r.push_back(structured("layers", "remove whole layers with the smallest ||W_o||+||W_down||, renumber the rest",
                         {{"count", 1}}, "Gromov et al. 2024, The Unreasonable Ineffectiveness of the Deeper Layers"));
  return r;
}

}  // namespace

const std::vector<CompressorInfo>& pruner_registry() {
  static const std::vector<CompressorInfo> registry = make_registry();
  return registry;
}

}  // namespace ss

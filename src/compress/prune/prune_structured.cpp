// Structured pruning of Llama-family stores: whole attention heads (KV groups), FFN channels and
// whole layers, with shapes actually reduced and the config rewritten so LlamaModel loads the
// result (see prune.h for the scores). Shapes stay uniform over layers because LlamaModel has one
// head count and one intermediate size. Not here: unstructured masks (prune_masks.cpp).
// To add a structure: one function here that picks what to keep, using keep_rows/keep_cols.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "pruned_store.h"
#include "safeshrink/model_config.h"
#include "safeshrink/prune.h"

namespace ss {
namespace {

struct LayerNames {
  const char* q; const char* k; const char* v; const char* o;
  const char* q_bias; const char* k_bias; const char* v_bias;
  const char* gate; const char* up; const char* down;
  const char* layer_prefix;  // "blk." or "model.layers."
};
constexpr LayerNames kGguf = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                              "attn_q.bias", "attn_k.bias", "attn_v.bias",
                              "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "blk."};
constexpr LayerNames kHf = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                            "self_attn.o_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
                            "self_attn.v_proj.bias", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                            "mlp.down_proj.weight", "model.layers."};

const LayerNames& names_of(const TensorStore& s) {
  return s.find("blk.0.attn_q.weight") ? kGguf : kHf;
}

std::string layer_tensor(const LayerNames& n, int64_t layer, const char* suffix) {
  return std::string(n.layer_prefix) + std::to_string(layer) + "." + suffix;
}

// Row-major (rows x cols) matrix restricted to the rows and columns listed.
std::vector<float> select(const std::vector<float>& m, int64_t cols, const std::vector<int64_t>& rows_kept,
                          const std::vector<int64_t>& cols_kept) {
  std::vector<float> out;
  out.reserve(rows_kept.size() * cols_kept.size());
  for (int64_t r : rows_kept)
    for (int64_t c : cols_kept) out.push_back(m[r * cols + c]);
  return out;
}

std::vector<int64_t> all_of(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

// Indices 0..n-1 except the `remove` with the smallest score (ties: lower index removed), ascending.
std::vector<int64_t> keep_largest(const std::vector<double>& score, int64_t remove) {
  std::vector<int64_t> order = all_of(static_cast<int64_t>(score.size()));
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] < score[b]; });
  std::vector<int64_t> kept(order.begin() + remove, order.end());
  std::sort(kept.begin(), kept.end());
  return kept;
}

// Replaces tensor NAME of OUT by its rows/cols selection, and adds a plan line.
Status reduce(TensorStore& out, CompressPlan& plan, const std::string& name, const std::vector<int64_t>* rows_kept,
              const std::vector<int64_t>* cols_kept, const std::string& reason) {
  auto it = std::find_if(out.tensors.begin(), out.tensors.end(), [&](const Tensor& t) { return t.name == name; });
  if (it == out.tensors.end()) return not_found("structured pruning: tensor '" + name + "' is missing");
  const Tensor before = *it;
  if (before.shape.empty() || before.shape.size() > 2)
    return invalid_argument("structured pruning: tensor '" + name + "' has shape " + before.shape_string());
  const int64_t rows = before.rows(), cols = before.cols();
  SS_ASSIGN_OR_RETURN(std::vector<float> f, pruned_read_f32(before));
  const std::vector<int64_t> r = rows_kept ? *rows_kept : all_of(rows);
  const std::vector<int64_t> c = cols_kept ? *cols_kept : all_of(cols);
  for (int64_t i : r)
    if (i < 0 || i >= rows) return internal_error("structured pruning: row index out of range in " + name);
  for (int64_t i : c)
    if (i < 0 || i >= cols) return internal_error("structured pruning: column index out of range in " + name);
  std::vector<float> kept = select(f, cols, r, c);
  std::vector<int64_t> shape = before.shape.size() == 1 ? std::vector<int64_t>{static_cast<int64_t>(c.size())}
                                                        : std::vector<int64_t>{static_cast<int64_t>(r.size()), static_cast<int64_t>(c.size())};
  SS_ASSIGN_OR_RETURN(Tensor after, pruned_tensor(name, before.dtype, shape, kept));
  PlanEntry e = pruned_plan_entry(before, after, kept, reason + ": " + before.shape_string() + " -> " + after.shape_string());
  // Structured: the fraction of the original elements removed.
  e.sparsity = 1.0 - static_cast<double>(after.numel()) / static_cast<double>(std::max<int64_t>(1, before.numel()));
  plan.entries.push_back(std::move(e));
  *it = std::move(after);  // same name, same position: the store's index stays valid
  return ok_status();
}

Result<double> frobenius(const TensorStore& s, const std::string& name, int64_t col_begin = 0, int64_t col_end = -1) {
  const Tensor* t = s.find(name);
  if (!t) return not_found("structured pruning: tensor '" + name + "' is missing");
  SS_ASSIGN_OR_RETURN(std::vector<float> f, pruned_read_f32(*t));
  const int64_t rows = t->rows(), cols = t->cols();
  if (col_end < 0) col_end = cols;
  double ss = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = col_begin; c < col_end; ++c) ss += static_cast<double>(f[r * cols + c]) * f[r * cols + c];
  return std::sqrt(ss);
}

Status check_fraction(const char* unit, double fraction) {
  if (!(fraction >= 0.0 && fraction < 1.0))
    return invalid_argument(std::string(unit) + ": the fraction to remove has to be in [0, 1), got " + std::to_string(fraction));
  return ok_status();
}

}  // namespace

Result<CompressOutput> prune_heads(const TensorStore& in, double fraction) {
  SS_RETURN_IF_ERROR(check_fraction("heads", fraction));
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(in));
  const LayerNames& n = names_of(in);
  const int64_t hd = cfg.head_dim, group = cfg.n_heads / cfg.n_kv_heads;
  const int64_t remove = prune_count_torch(fraction, cfg.n_kv_heads);
  if (remove >= cfg.n_kv_heads)
    return invalid_argument("heads: removing " + std::to_string(remove) + " of " + std::to_string(cfg.n_kv_heads) +
                            " KV groups would leave no attention");
  CompressOutput out{in, {}};
  out.store.path.clear();
  out.plan.method = "heads";
  out.plan.params = {{"sparsity", fraction}};
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    std::vector<double> score(static_cast<size_t>(cfg.n_kv_heads), 0.0);
    for (int64_t kv = 0; kv < cfg.n_kv_heads; ++kv)
      for (int64_t h = kv * group; h < (kv + 1) * group; ++h) {
        SS_ASSIGN_OR_RETURN(double f, frobenius(in, layer_tensor(n, l, n.o), h * hd, (h + 1) * hd));
        score[kv] += f;
      }
    const std::vector<int64_t> kv_kept = keep_largest(score, remove);
    std::vector<int64_t> q_rows, kv_rows;
    std::string kept_list;
    for (int64_t kv : kv_kept) {
      kept_list += (kept_list.empty() ? "" : ",") + std::to_string(kv);
      for (int64_t i = kv * hd; i < (kv + 1) * hd; ++i) kv_rows.push_back(i);
      for (int64_t i = kv * group * hd; i < (kv + 1) * group * hd; ++i) q_rows.push_back(i);
    }
    const std::string why = "kept kv groups [" + kept_list + "] of " + std::to_string(cfg.n_kv_heads);
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.q), &q_rows, nullptr, why));
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.k), &kv_rows, nullptr, why));
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.v), &kv_rows, nullptr, why));
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.o), nullptr, &q_rows, why));
    if (cfg.attention_bias) {  // 1-D biases: their elements are "columns"
      SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.q_bias), nullptr, &q_rows, why));
      SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.k_bias), nullptr, &kv_rows, why));
      SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.v_bias), nullptr, &kv_rows, why));
    }
  }
  const int64_t kv_after = cfg.n_kv_heads - remove;
  SS_RETURN_IF_ERROR(pruned_set_config_int(out.store, "attention.head_count", "num_attention_heads", kv_after * group));
  SS_RETURN_IF_ERROR(pruned_set_config_int(out.store, "attention.head_count_kv", "num_key_value_heads", kv_after));
  // head_dim no longer follows from hidden_size / n_heads: say it.
  SS_RETURN_IF_ERROR(pruned_set_config_int(out.store, "attention.key_length", "head_dim", hd));
  if (in.meta.find("general.architecture"))
    SS_RETURN_IF_ERROR(pruned_set_config_int(out.store, "attention.value_length", "head_dim", hd));
  pruned_finish_plan(out.plan, out.store);
  return out;
}

Result<CompressOutput> prune_channels(const TensorStore& in, double fraction) {
  SS_RETURN_IF_ERROR(check_fraction("channels", fraction));
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(in));
  const LayerNames& n = names_of(in);
  const int64_t ff = cfg.intermediate_size, remove = prune_count_torch(fraction, ff);
  if (remove >= ff) return invalid_argument("channels: removing every FFN channel");
  CompressOutput out{in, {}};
  out.store.path.clear();
  out.plan.method = "channels";
  out.plan.params = {{"sparsity", fraction}};
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    const Tensor* up = in.find(layer_tensor(n, l, n.up));
    const Tensor* down = in.find(layer_tensor(n, l, n.down));
    if (!up || !down) return not_found("channels: layer " + std::to_string(l) + " lacks ffn up/down");
    if (up->rows() != ff || down->cols() != ff)
      return invalid_argument("channels: layer " + std::to_string(l) + " ffn shapes disagree with intermediate_size");
    SS_ASSIGN_OR_RETURN(std::vector<float> fu, pruned_read_f32(*up));
    SS_ASSIGN_OR_RETURN(std::vector<float> fd, pruned_read_f32(*down));
    std::vector<double> up_sq(static_cast<size_t>(ff), 0.0), down_sq(static_cast<size_t>(ff), 0.0);
    for (int64_t j = 0; j < ff; ++j)
      for (int64_t c = 0; c < up->cols(); ++c) up_sq[j] += static_cast<double>(fu[j * up->cols() + c]) * fu[j * up->cols() + c];
    for (int64_t r = 0; r < down->rows(); ++r)
      for (int64_t j = 0; j < ff; ++j) down_sq[j] += static_cast<double>(fd[r * ff + j]) * fd[r * ff + j];
    std::vector<double> score(static_cast<size_t>(ff));
    for (int64_t j = 0; j < ff; ++j) score[j] = std::sqrt(up_sq[j]) * std::sqrt(down_sq[j]);
    const std::vector<int64_t> kept = keep_largest(score, remove);
    const std::string why = "kept " + std::to_string(kept.size()) + " of " + std::to_string(ff) + " ffn channels";
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.gate), &kept, nullptr, why));
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.up), &kept, nullptr, why));
    SS_RETURN_IF_ERROR(reduce(out.store, out.plan, layer_tensor(n, l, n.down), nullptr, &kept, why));
  }
  SS_RETURN_IF_ERROR(pruned_set_config_int(out.store, "feed_forward_length", "intermediate_size", ff - remove));
  pruned_finish_plan(out.plan, out.store);
  return out;
}

Result<CompressOutput> prune_layers(const TensorStore& in, int64_t count) {
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(in));
  if (count < 0 || count >= cfg.n_layers)
    return invalid_argument("layers: count has to be in [0, n_layers) = [0, " + std::to_string(cfg.n_layers) + "), got " +
                            std::to_string(count));
  const LayerNames& n = names_of(in);
  std::vector<double> score(static_cast<size_t>(cfg.n_layers));
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    SS_ASSIGN_OR_RETURN(double fo, frobenius(in, layer_tensor(n, l, n.o)));
    SS_ASSIGN_OR_RETURN(double fd, frobenius(in, layer_tensor(n, l, n.down)));
    score[l] = fo + fd;
  }
  const std::vector<int64_t> kept = keep_largest(score, count);
  std::vector<int64_t> new_index(static_cast<size_t>(cfg.n_layers), -1);
  for (size_t i = 0; i < kept.size(); ++i) new_index[kept[i]] = static_cast<int64_t>(i);

  CompressOutput out;
  out.store.format = in.format;
  out.store.meta = in.meta;
  out.plan.method = "layers";
  out.plan.params = {{"count", count}};
  const std::string prefix = n.layer_prefix;
  for (const Tensor& t : in.tensors) {
    Tensor copy = t;
    if (t.name.rfind(prefix, 0) == 0) {
      const size_t dot = t.name.find('.', prefix.size());
      int64_t layer = -1;
      if (dot != std::string::npos) {
        const std::string digits = t.name.substr(prefix.size(), dot - prefix.size());
        if (!digits.empty() && digits.size() < 10 && std::all_of(digits.begin(), digits.end(), ::isdigit))
          layer = std::stoll(digits);
      }
      if (layer >= 0 && layer < cfg.n_layers) {
        PlanEntry e;
        e.from_type = e.to_type = dtype_name(t.dtype);
        e.bits_per_weight = dtype_bits_per_weight(t.dtype);
        if (new_index[layer] < 0) {
          e.tensor = t.name;
          e.sparsity = 1.0;
          e.reason = "removed with layer " + std::to_string(layer);
          out.plan.entries.push_back(std::move(e));
          continue;
        }
        copy.name = prefix + std::to_string(new_index[layer]) + t.name.substr(dot);
        e.tensor = copy.name;
        e.reason = "layer " + std::to_string(layer) + " renumbered " + std::to_string(new_index[layer]);
        if (prune_is_block_linear(copy.name)) out.plan.entries.push_back(std::move(e));
      }
    }
    SS_RETURN_IF_ERROR(out.store.add(std::move(copy)));
  }
  SS_RETURN_IF_ERROR(pruned_set_config_int(out.store, "block_count", "num_hidden_layers", cfg.n_layers - count));
  pruned_finish_plan(out.plan, out.store);
  return out;
}

}  // namespace ss

// Llama-family forward pass (see include/safeshrink/model.h). Plain loops for norms, RoPE and
// attention; kernels::matmul for every projection (prefill batches become GEMMs).
// To support one more spelling of tensor names, add a row to kNames.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "safeshrink/kernels.h"
#include "safeshrink/model.h"
#include "safeshrink/thread_pool.h"

namespace ss {
namespace {

// Tensor names per spelling; {L} is the layer index.
struct NameTable {
  const char* embd; const char* out_norm; const char* output;
  const char* attn_norm; const char* q; const char* k; const char* v; const char* o;
  const char* q_bias; const char* k_bias; const char* v_bias;
  const char* ffn_norm; const char* gate; const char* up; const char* down;
};
constexpr NameTable kGgufNames = {
    "token_embd.weight", "output_norm.weight", "output.weight",
    "blk.{L}.attn_norm.weight", "blk.{L}.attn_q.weight", "blk.{L}.attn_k.weight", "blk.{L}.attn_v.weight",
    "blk.{L}.attn_output.weight", "blk.{L}.attn_q.bias", "blk.{L}.attn_k.bias", "blk.{L}.attn_v.bias",
    "blk.{L}.ffn_norm.weight", "blk.{L}.ffn_gate.weight", "blk.{L}.ffn_up.weight", "blk.{L}.ffn_down.weight"};
constexpr NameTable kHfNames = {
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.{L}.input_layernorm.weight", "model.layers.{L}.self_attn.q_proj.weight",
    "model.layers.{L}.self_attn.k_proj.weight", "model.layers.{L}.self_attn.v_proj.weight",
    "model.layers.{L}.self_attn.o_proj.weight", "model.layers.{L}.self_attn.q_proj.bias",
    "model.layers.{L}.self_attn.k_proj.bias", "model.layers.{L}.self_attn.v_proj.bias",
    "model.layers.{L}.post_attention_layernorm.weight", "model.layers.{L}.mlp.gate_proj.weight",
    "model.layers.{L}.mlp.up_proj.weight", "model.layers.{L}.mlp.down_proj.weight"};

std::string layer_name(const char* pattern, int64_t layer) {
  std::string s = pattern;
  const auto pos = s.find("{L}");
  if (pos != std::string::npos) s.replace(pos, 3, std::to_string(layer));
  return s;
}

class Binder {
 public:
  Binder(const TensorStore& s, const NameTable& names, bool dequantize,
         std::vector<std::shared_ptr<std::vector<float>>>* owned)
      : s_(s), n_(names), dequantize_(dequantize), owned_(owned) {}

  Result<WeightRef> matrix(const char* pattern, int64_t layer, int64_t rows, int64_t cols) const {
    const std::string name = layer_name(pattern, layer);
    const Tensor* t = s_.find(name);
    if (!t) return not_found("model tensor '" + name + "' is missing");
    if (t->rows() != rows || t->cols() != cols)
      return invalid_argument("model tensor '" + name + "': expected shape [" + std::to_string(rows) + ", " +
                              std::to_string(cols) + "], got " + t->shape_string());
    if (!dequantize_ || t->dtype == DType::F32) return WeightRef{t->dtype, t->data(), rows, cols};
    SS_ASSIGN_OR_RETURN(std::vector<float> f, kernels::dequantize(*t));
    owned_->push_back(std::make_shared<std::vector<float>>(std::move(f)));
    return WeightRef{DType::F32, owned_->back()->data(), rows, cols};
  }

  Result<std::vector<float>> vector(const char* pattern, int64_t layer, int64_t n, bool optional = false) const {
    const std::string name = layer_name(pattern, layer);
    const Tensor* t = s_.find(name);
    if (!t) {
      if (optional) return std::vector<float>();
      return not_found("model tensor '" + name + "' is missing");
    }
    if (t->numel() != n)
      return invalid_argument("model tensor '" + name + "': expected " + std::to_string(n) + " elements, got " +
                              t->shape_string());
    return kernels::dequantize(*t);
  }

  bool has(const char* pattern) const { return s_.find(layer_name(pattern, 0)) != nullptr; }

 private:
  const TensorStore& s_;
  const NameTable& n_;
  bool dequantize_;
  std::vector<std::shared_ptr<std::vector<float>>>* owned_;
};

// Inverse frequencies per rotary pair, with the config's scaling applied.
std::vector<float> rope_inverse_frequencies(const LlamaConfig& c, const TensorStore& s) {
  const int64_t half = c.head_dim / 2;
  std::vector<float> inv(half);
  const Tensor* factors = s.find("rope_freqs.weight");  // llama3 GGUFs carry the scaling as factors
  std::vector<float> f;
  if (factors && factors->numel() == half) {
    auto d = kernels::dequantize(*factors);
    if (d.ok()) f = *d;
  }
  for (int64_t i = 0; i < half; ++i) {
    double freq = std::pow(c.rope_theta, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
    if (!f.empty()) {
      freq /= f[i];
    } else if (c.rope_scaling == RopeScaling::LINEAR) {
      freq /= c.rope_factor;
    } else if (c.rope_scaling == RopeScaling::LLAMA3) {
      const double two_pi = 6.283185307179586;
      const double wavelen = two_pi / freq;
      const double low_wl = c.rope_original_max_position / c.rope_low_freq_factor;
      const double high_wl = c.rope_original_max_position / c.rope_high_freq_factor;
      if (wavelen > low_wl) {
        freq /= c.rope_factor;
      } else if (wavelen >= high_wl) {
        const double smooth = (c.rope_original_max_position / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        freq = (1 - smooth) * freq / c.rope_factor + smooth * freq;
      }
    }
    inv[i] = static_cast<float>(freq);
  }
  return inv;
}

void rms_norm(const float* x, const float* w, float* y, int64_t d, double eps) {
  double ss = 0;
  for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
  for (int64_t i = 0; i < d; ++i) y[i] = x[i] * scale * w[i];
}

// Rotates one head vector in place at position pos.
void rope(float* v, int64_t head_dim, int64_t pos, const float* inv_freq, RopeOrder order) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[i];
    const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    const int64_t a = order == RopeOrder::NORM ? 2 * i : i;
    const int64_t b = order == RopeOrder::NORM ? 2 * i + 1 : i + half;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
  }
}

void project(const WeightRef& w, const float* x, int64_t n, float* y) {
  kernels::matmul(w.dtype, w.data, w.rows, w.cols, x, n, y);
}

}  // namespace

Result<LlamaModel> LlamaModel::load(std::shared_ptr<const TensorStore> store, const LoadOptions& opts) {
  if (!store) return invalid_argument("LlamaModel::load: no store");
  SS_ASSIGN_OR_RETURN(LlamaConfig cfg, llama_config_from_store(*store));
  return load(std::move(store), cfg, opts);
}

Result<LlamaModel> LlamaModel::load(std::shared_ptr<const TensorStore> store, const LlamaConfig& cfg,
                                    const LoadOptions& opts) {
  if (!store) return invalid_argument("LlamaModel::load: no store");
  SS_RETURN_IF_ERROR(cfg.validate());
  const TensorStore& s = *store;
  const NameTable& names = s.find(kGgufNames.embd) ? kGgufNames : kHfNames;
  LlamaModel m;
  Binder b(s, names, opts.dequantize_weights, &m.owned_);
  m.store_ = store;
  m.cfg_ = cfg;
  const int64_t d = cfg.hidden_size, hd = cfg.head_dim, ff = cfg.intermediate_size;
  const int64_t q_dim = cfg.n_heads * hd, kv_dim = cfg.n_kv_heads * hd;
  SS_ASSIGN_OR_RETURN(m.tok_embd_, b.matrix(names.embd, 0, cfg.vocab_size, d));
  if (b.has(names.output)) {
    SS_ASSIGN_OR_RETURN(m.output_, b.matrix(names.output, 0, cfg.vocab_size, d));
  } else {
    m.output_ = m.tok_embd_;  // tied embeddings
  }
  m.output_name_ = layer_name(b.has(names.output) ? names.output : names.embd, 0);
  SS_ASSIGN_OR_RETURN(m.output_norm_, b.vector(names.out_norm, 0, d));
  m.layers_.resize(cfg.n_layers);
  for (int64_t l = 0; l < cfg.n_layers; ++l) {
    Layer& L = m.layers_[l];
    SS_ASSIGN_OR_RETURN(L.attn_norm, b.vector(names.attn_norm, l, d));
    SS_ASSIGN_OR_RETURN(L.ffn_norm, b.vector(names.ffn_norm, l, d));
    SS_ASSIGN_OR_RETURN(L.wq, b.matrix(names.q, l, q_dim, d));
    SS_ASSIGN_OR_RETURN(L.wk, b.matrix(names.k, l, kv_dim, d));
    SS_ASSIGN_OR_RETURN(L.wv, b.matrix(names.v, l, kv_dim, d));
    SS_ASSIGN_OR_RETURN(L.wo, b.matrix(names.o, l, d, q_dim));
    SS_ASSIGN_OR_RETURN(L.bq, b.vector(names.q_bias, l, q_dim, true));
    SS_ASSIGN_OR_RETURN(L.bk, b.vector(names.k_bias, l, kv_dim, true));
    SS_ASSIGN_OR_RETURN(L.bv, b.vector(names.v_bias, l, kv_dim, true));
    SS_ASSIGN_OR_RETURN(L.w_gate, b.matrix(names.gate, l, ff, d));
    SS_ASSIGN_OR_RETURN(L.w_up, b.matrix(names.up, l, ff, d));
    SS_ASSIGN_OR_RETURN(L.w_down, b.matrix(names.down, l, d, ff));
    m.linear_names_.push_back({layer_name(names.q, l), layer_name(names.k, l), layer_name(names.v, l),
                               layer_name(names.o, l), layer_name(names.gate, l), layer_name(names.up, l),
                               layer_name(names.down, l)});
  }
  m.rope_inv_freq_ = rope_inverse_frequencies(cfg, s);
  return m;
}

KvCache LlamaModel::new_cache(int64_t capacity) const {
  KvCache c;
  c.capacity = capacity;
  const size_t n = static_cast<size_t>(cfg_.n_layers * capacity * cfg_.n_kv_heads * cfg_.head_dim);
  c.k.assign(n, 0.0f);
  c.v.assign(n, 0.0f);
  return c;
}

Status LlamaModel::forward(const int32_t* tokens, int64_t n, KvCache& cache, float* logits, bool all_logits) const {
  return forward_batch({BatchItem{tokens, n, &cache, logits, all_logits}});
}

Status LlamaModel::forward_batch(const std::vector<BatchItem>& items) const {
  const LlamaConfig& c = cfg_;
  const int64_t d = c.hidden_size, hd = c.head_dim, nh = c.n_heads, nkv = c.n_kv_heads, ff = c.intermediate_size;
  const int64_t q_dim = nh * hd, kv_dim = nkv * hd, group = nh / nkv;

  // Row r of the activations is token `pos[r]` of item `item_of[r]`.
  int64_t n = 0;
  for (const auto& it : items) {
    if (it.n <= 0 || !it.tokens || !it.cache) return invalid_argument("forward: empty batch item");
    if (it.cache->n_past + it.n > it.cache->capacity)
      return invalid_argument("forward: KV cache holds " + std::to_string(it.cache->capacity) + " positions, " +
                              std::to_string(it.cache->n_past + it.n) + " needed");
    n += it.n;
  }
  if (n == 0) return invalid_argument("forward: no tokens");
  std::vector<int64_t> item_of(n), pos(n);
  std::vector<int32_t> ids(n);
  for (int64_t i = 0, r = 0; i < static_cast<int64_t>(items.size()); ++i)
    for (int64_t t = 0; t < items[i].n; ++t, ++r) {
      item_of[r] = i;
      pos[r] = items[i].cache->n_past + t;
      ids[r] = items[i].tokens[t];
      if (ids[r] < 0 || ids[r] >= c.vocab_size)
        return invalid_argument("forward: token id " + std::to_string(ids[r]) + " outside vocabulary of " +
                                std::to_string(c.vocab_size));
    }

  // Activations, (n, width) row-major.
  std::vector<float> x(n * d), xn(n * d), q(n * q_dim), k(n * kv_dim), v(n * kv_dim), att(n * q_dim), tmp(n * d);
  std::vector<float> gate(n * ff), up(n * ff);
  const uint64_t embd_row_bytes = *dtype_row_bytes(tok_embd_.dtype, d);
  for (int64_t r = 0; r < n; ++r)
    kernels::dequantize_row(tok_embd_.dtype, static_cast<const uint8_t*>(tok_embd_.data) + ids[r] * embd_row_bytes,
                            &x[r * d], d);

  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  ThreadPool& pool = default_pool();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    for (int64_t r = 0; r < n; ++r) rms_norm(&x[r * d], L.attn_norm.data(), &xn[r * d], d, c.rms_eps);
    const std::vector<std::string>& lname = linear_names_[l];
    observe(lname[0], xn.data(), n, d);
    project(L.wq, xn.data(), n, q.data());
    observe(lname[1], xn.data(), n, d);
    project(L.wk, xn.data(), n, k.data());
    observe(lname[2], xn.data(), n, d);
    project(L.wv, xn.data(), n, v.data());
    for (int64_t r = 0; r < n; ++r) {
      if (!L.bq.empty())
        for (int64_t i = 0; i < q_dim; ++i) q[r * q_dim + i] += L.bq[i];
      if (!L.bk.empty())
        for (int64_t i = 0; i < kv_dim; ++i) k[r * kv_dim + i] += L.bk[i];
      if (!L.bv.empty())
        for (int64_t i = 0; i < kv_dim; ++i) v[r * kv_dim + i] += L.bv[i];
      for (int64_t h = 0; h < nh; ++h) rope(&q[r * q_dim + h * hd], hd, pos[r], rope_inv_freq_.data(), c.rope_order);
      for (int64_t h = 0; h < nkv; ++h) rope(&k[r * kv_dim + h * hd], hd, pos[r], rope_inv_freq_.data(), c.rope_order);
      // cache: (layer, position, kv_dim)
      KvCache& cache = *items[item_of[r]].cache;
      const int64_t cap = cache.capacity;
      std::memcpy(&cache.k[(l * cap + pos[r]) * kv_dim], &k[r * kv_dim], kv_dim * sizeof(float));
      std::memcpy(&cache.v[(l * cap + pos[r]) * kv_dim], &v[r * kv_dim], kv_dim * sizeof(float));
    }
    // Causal attention: row r sees positions 0 .. pos[r] of its own cache. Parallel over (row, head).
    pool.parallel_for(n * nh, [&](int64_t begin, int64_t end, int) {
      std::vector<float> scores;
      for (int64_t rh = begin; rh < end; ++rh) {
        const int64_t r = rh / nh, h = rh % nh, kvh = h / group;
        const KvCache& cache = *items[item_of[r]].cache;
        const float* kc = &cache.k[l * cache.capacity * kv_dim];
        const float* vc = &cache.v[l * cache.capacity * kv_dim];
        const float* qv = &q[r * q_dim + h * hd];
        const int64_t n_ctx = pos[r] + 1;
        scores.resize(n_ctx);
        float mx = -INFINITY;
        for (int64_t p = 0; p < n_ctx; ++p) {
          const float* kv = kc + p * kv_dim + kvh * hd;
          float dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += qv[i] * kv[i];
          scores[p] = dot * scale;
          mx = std::max(mx, scores[p]);
        }
        double sum = 0;
        for (int64_t p = 0; p < n_ctx; ++p) {
          scores[p] = std::exp(scores[p] - mx);
          sum += scores[p];
        }
        const float inv = static_cast<float>(1.0 / sum);
        float* out = &att[r * q_dim + h * hd];
        std::fill(out, out + hd, 0.0f);
        for (int64_t p = 0; p < n_ctx; ++p) {
          const float w = scores[p] * inv;
          const float* vv = vc + p * kv_dim + kvh * hd;
          for (int64_t i = 0; i < hd; ++i) out[i] += w * vv[i];
        }
      }
    });
    observe(lname[3], att.data(), n, q_dim);
    project(L.wo, att.data(), n, tmp.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += tmp[i];

    for (int64_t r = 0; r < n; ++r) rms_norm(&x[r * d], L.ffn_norm.data(), &xn[r * d], d, c.rms_eps);
    observe(lname[4], xn.data(), n, d);
    project(L.w_gate, xn.data(), n, gate.data());
    observe(lname[5], xn.data(), n, d);
    project(L.w_up, xn.data(), n, up.data());
    for (int64_t i = 0; i < n * ff; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
    observe(lname[6], gate.data(), n, ff);
    project(L.w_down, gate.data(), n, tmp.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += tmp[i];
  }
  for (const auto& it : items) it.cache->n_past += it.n;

  // Output projection on the rows that want logits, then scatter to each item's buffer.
  std::vector<int64_t> out_rows;
  for (int64_t r = 0; r < n; ++r) {
    const BatchItem& it = items[item_of[r]];
    const bool last = r + 1 == n || item_of[r + 1] != item_of[r];
    if (it.logits && (it.all_logits || last)) out_rows.push_back(r);
  }
  if (out_rows.empty()) return ok_status();
  const int64_t nv = c.vocab_size, m = static_cast<int64_t>(out_rows.size());
  std::vector<float> h(m * d), out(m * nv);
  for (int64_t j = 0; j < m; ++j) rms_norm(&x[out_rows[j] * d], output_norm_.data(), &h[j * d], d, c.rms_eps);
  observe(output_name_, h.data(), m, d);
  project(output_, h.data(), m, out.data());
  std::vector<int64_t> written(items.size(), 0);
  for (int64_t j = 0; j < m; ++j) {
    const int64_t i = item_of[out_rows[j]];
    std::memcpy(items[i].logits + written[i]++ * nv, &out[j * nv], nv * sizeof(float));
  }
  return ok_status();
}

}  // namespace ss

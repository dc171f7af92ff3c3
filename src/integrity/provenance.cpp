// Provenance of a derived file: is every weight of DERIVED explainable as a compression (block
// quantization, f16/bf16 rounding, pruning) of the same weight of BASE? Per element, the bound is
// the largest error an honest quantizer of the derived type could have left, computed from the
// derived block's OWN scale(s) (quantization_bounds_row); a derived weight that is (a quantization
// of) zero counts as pruned. Tensors are matched by name (HF names are mapped to GGUF's, and HF q/k
// rows are permuted to GGUF's rope order); missing, added and reshaped tensors are listed, and the
// tokenizer / chat template / special ids / architecture metadata are diffed. Not here: printing and
// exit codes (tools/cli/cmd_provenance.cpp). To support one more block type: a case in
// block_grid() describing its sub-block step, offset, level range and scale quanta.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "safeshrink/half.h"
#include "safeshrink/integrity.h"
#include "safeshrink/kernels.h"

namespace ss {
namespace {

using json = nlohmann::json;

// f16 scales are rounded to nearest: relative error at most 2^-11 of the stored value.
constexpr double kF16Rel = 1.0 / 2048.0;
// f32 arithmetic of the dequantization itself (a few roundings of a product and a sum).
constexpr double kF32Rel = 4.0 / 16777216.0;

// One sub-block of a block type: dequant = step * level + offset, level in [lo, hi].
// scale_quantum / min_quantum: the size of one unit of the integer sub-block scale / min (K-quants
// store sub-block scales as small integers times a super-block f16), 0 for types without.
struct Grid {
  double step = 0, offset = 0;
  int lo = 0, hi = 0;
  double scale_quantum = 0, min_quantum = 0;
  bool quantized_levels_recomputed = true;
};

uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Q4_K / Q5_K: 8 pairs of 6-bit (scale, min) packed in 12 bytes.
void k4_scale_min(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q3_K: 16 signed 6-bit scales in 12 bytes: low nibbles in bytes 0-7 (scales 0-7 low nibble,
// 8-15 high nibble), high two bits in bytes 8-11.
int q3k_scale(const uint8_t* s, int j) {
  const int g = j / 4, k = j % 4;
  const uint8_t src = s[(g & 1) ? 4 + k : k];
  const int low = g >= 2 ? (src >> 4) : (src & 0xF);
  const int high = (s[8 + k] >> (2 * g)) & 3;
  return (low | (high << 4)) - 32;
}

// Fills grids[] (one per sub-block of `sub` elements) for the block at p. Returns sub-block size.
int block_grid(DType t, const uint8_t* p, std::vector<Grid>* grids) {
  grids->clear();
  switch (t) {
    case DType::Q4_0: case DType::Q5_0: {
      const double d = fp16_to_fp32(rd16(p));
      const int half = t == DType::Q4_0 ? 8 : 16;
      grids->push_back({d, 0, -half, half - 1, 0, 0});
      return 32;
    }
    case DType::Q4_1: case DType::Q5_1: {
      const double d = fp16_to_fp32(rd16(p)), m = fp16_to_fp32(rd16(p + 2));
      grids->push_back({d, m, 0, t == DType::Q4_1 ? 15 : 31, 0, 0});
      return 32;
    }
    case DType::Q8_0: case DType::Q8_1: {
      grids->push_back({fp16_to_fp32(rd16(p)), 0, -128, 127, 0, 0});
      return 32;
    }
    case DType::Q2_K: {
      const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
      const double d = fp16_to_fp32(b->d), dmin = fp16_to_fp32(b->dmin);
      for (int j = 0; j < 16; ++j)
        grids->push_back({d * (b->scales[j] & 0xF), -dmin * (b->scales[j] >> 4), 0, 3, d, dmin});
      return 16;
    }
    case DType::Q3_K: {
      const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
      const double d = fp16_to_fp32(b->d);
      for (int j = 0; j < 16; ++j) grids->push_back({d * q3k_scale(b->scales, j), 0, -4, 3, d, 0});
      return 16;
    }
    case DType::Q4_K: case DType::Q5_K: {
      const uint16_t dd = t == DType::Q4_K ? reinterpret_cast<const BlockQ4_K*>(p)->d : reinterpret_cast<const BlockQ5_K*>(p)->d;
      const uint16_t dm = t == DType::Q4_K ? reinterpret_cast<const BlockQ4_K*>(p)->dmin : reinterpret_cast<const BlockQ5_K*>(p)->dmin;
      const uint8_t* scales = t == DType::Q4_K ? reinterpret_cast<const BlockQ4_K*>(p)->scales : reinterpret_cast<const BlockQ5_K*>(p)->scales;
      const double d = fp16_to_fp32(dd), dmin = fp16_to_fp32(dm);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        k4_scale_min(scales, j, &sc, &m);
        grids->push_back({d * sc, -dmin * m, 0, t == DType::Q4_K ? 15 : 31, d, dmin});
      }
      return 32;
    }
    case DType::Q6_K: {
      const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
      const double d = fp16_to_fp32(b->d);
      for (int j = 0; j < 16; ++j) grids->push_back({d * b->scales[j], 0, -32, 31, d, 0});
      return 16;
    }
    default: return 0;
  }
}

// Half an ulp of v in a float format with `mantissa` explicit bits and minimum normal exponent.
double half_ulp(double v, int mantissa, int min_exp) {
  const double a = std::fabs(v);
  int e = a > 0 ? std::ilogb(a) : min_exp;
  e = std::max(e, min_exp);
  return std::ldexp(1.0, e - mantissa - 1);
}

// ---- HF -> GGUF names (llama family) ----
struct NameRule {
  const char* hf;
  const char* gguf;
};
constexpr NameRule kLayerRules[] = {
    {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},       {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},        {"mlp.down_proj.weight", "ffn_down.weight"},
    {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
};

std::string gguf_name_of(const std::string& name) {
  if (name == "model.embed_tokens.weight") return "token_embd.weight";
  if (name == "model.norm.weight") return "output_norm.weight";
  if (name == "lm_head.weight") return "output.weight";
  static const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return name;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return name;
  const std::string layer = name.substr(prefix.size(), dot - prefix.size());
  const std::string rest = name.substr(dot + 1);
  for (const auto& r : kLayerRules)
    if (rest == r.hf) return "blk." + layer + "." + r.gguf;
  return name;
}

bool is_hf_store(const TensorStore& s) {
  for (const auto& t : s.tensors)
    if (t.name.rfind("model.", 0) == 0) return true;
  return false;
}

// Heads of q and k, from GGUF metadata or HF config JSON; 0 when unknown.
void head_counts(const TensorStore& s, int64_t* n_head, int64_t* n_head_kv) {
  *n_head = s.meta.get_int("llama.attention.head_count").value_or(0);
  *n_head_kv = s.meta.get_int("llama.attention.head_count_kv").value_or(*n_head);
  if (*n_head) return;
  auto cfg = s.meta.get_string("hf.config_json");
  if (!cfg) return;
  json j = json::parse(*cfg, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  auto int_field = [&](const char* key, int64_t fallback) {
    return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : fallback;
  };
  *n_head = int_field("num_attention_heads", 0);
  *n_head_kv = int_field("num_key_value_heads", *n_head);
}

// HF q/k rows (halves rope order) to GGUF's (adjacent pairs): within each head of hd rows, GGUF row
// 2i+j is HF row j*hd/2 + i.
std::vector<float> permute_hf_rows_to_gguf(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0) return w;
  const int64_t hd = rows / heads;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(&out[(h * hd + 2 * i + j) * cols], &w[(h * hd + j * hd / 2 + i) * cols], cols * sizeof(float));
  return out;
}

bool diffed_key(const std::string& key, const std::string& arch) {
  if (key == "general.architecture") return true;
  if (key.rfind("tokenizer.", 0) == 0) return true;
  return !arch.empty() && key.rfind(arch + ".", 0) == 0;
}

}  // namespace

Status quantization_bounds_row(DType t, const void* row, int64_t n, double slack, float* bound) {
  const auto& info = dtype_info(t);
  if (n % info.block_size != 0) return invalid_argument("row length not a multiple of the block size");
  std::vector<float> deq(n);
  if (t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64) {
    kernels::dequantize_row_ref(t, row, deq.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      double b = 0;
      if (t == DType::F16) b = half_ulp(deq[i], 10, -14);
      if (t == DType::BF16) b = half_ulp(deq[i], 7, -126);
      bound[i] = static_cast<float>(b * slack);
    }
    return ok_status();
  }
  std::vector<Grid> grids;
  kernels::dequantize_row_ref(t, row, deq.data(), n);
  const uint8_t* p = static_cast<const uint8_t*>(row);
  for (int64_t b0 = 0; b0 < n; b0 += info.block_size, p += info.type_size) {
    const int sub = block_grid(t, p, &grids);
    if (sub == 0) return unsupported(std::string("no provenance bound for type ") + info.name);
    for (size_t g = 0; g < grids.size(); ++g) {
      const Grid& G = grids[g];
      const double step = std::fabs(G.step);
      const int span = G.hi - G.lo;
      // Super-block scales may be negative (Q3_K, Q6_K store signed sub-scales): sizes use |d|.
      const double scale_q = std::fabs(G.scale_quantum), min_q = std::fabs(G.min_quantum);
      for (int k = 0; k < sub; ++k) {
        const int64_t i = b0 + static_cast<int64_t>(g) * sub + k;
        const double v = deq[i];
        double e;
        if (step == 0) {
          // A sub-block whose integer scale rounded to 0: its values spanned less than one scale
          // quantum per level, all dequantize to the offset.
          e = span * scale_q + min_q;  // legacy type with d == 0: 0, every value must be 0
        } else {
          const double level = std::nearbyint((v - G.offset) / G.step);
          const bool edge = level <= G.lo || level >= G.hi;
          // Interior: rounding to the nearest level. Edge: values beyond the grid are clamped; an
          // honest scale search leaves them at most one step out, plus how far the integer
          // sub-block scale/min moved the grid (half a quantum per level and for the min).
          e = edge ? step + 0.5 * step + 0.5 * (span * scale_q + min_q) : 0.5 * step;
          // f16 rounding of the block's scale(s): legacy types round x/d with the unrounded float d
          // and store d (and m) as f16, so x may lie up to (|level| + 1/2) * d * 2^-11 further out
          // (|level| + 1 covers the float rounding of x * (1/d) too).
          if (G.scale_quantum == 0) e += ((std::fabs(level) + 1) * step + std::fabs(G.offset)) * kF16Rel;
        }
        e += std::fabs(v) * kF32Rel + 1e-30;
        bound[i] = static_cast<float>(e * slack);
      }
    }
  }
  return ok_status();
}

Result<ProvenanceReport> check_provenance(const TensorStore& base, const TensorStore& derived, const ProvenanceOptions& opts) {
  ProvenanceReport r;
  const bool base_hf = is_hf_store(base);
  int64_t n_head = 0, n_head_kv = 0;
  head_counts(base, &n_head, &n_head_kv);
  if (n_head == 0) head_counts(derived, &n_head, &n_head_kv);
  std::map<std::string, const Tensor*> base_by_name;
  for (const auto& t : base.tensors) base_by_name[base_hf ? gguf_name_of(t.name) : t.name] = &t;
  std::map<std::string, const Tensor*> derived_by_name;
  for (const auto& t : derived.tensors) derived_by_name[is_hf_store(derived) ? gguf_name_of(t.name) : t.name] = &t;

  for (const auto& [name, d] : derived_by_name) {
    TensorProvenance tp;
    tp.name = name;
    tp.derived_dtype = dtype_name(d->dtype);
    tp.numel = d->numel();
    auto it = base_by_name.find(name);
    if (it == base_by_name.end()) {
      tp.status = "added";
      r.consistent = false;
      r.tensors.push_back(tp);
      continue;
    }
    const Tensor* b = it->second;
    tp.base_dtype = dtype_name(b->dtype);
    if (b->shape != d->shape) {
      tp.status = "reshaped";
      r.consistent = false;
      r.tensors.push_back(tp);
      continue;
    }
    SS_ASSIGN_OR_RETURN(std::vector<float> bv, kernels::dequantize(*b));
    SS_ASSIGN_OR_RETURN(std::vector<float> dv, kernels::dequantize(*d));
    const bool is_qk = name.find("attn_q.weight") != std::string::npos || name.find("attn_k.weight") != std::string::npos;
    if (base_hf && is_qk && b->shape.size() == 2) {
      const int64_t heads = name.find("attn_q") != std::string::npos ? n_head : n_head_kv;
      bv = permute_hf_rows_to_gguf(bv, b->rows(), b->cols(), heads);
    }
    const int64_t rows = d->rows(), cols = d->cols();
    std::vector<float> bound(static_cast<size_t>(tp.numel));
    bool supported = true;
    for (int64_t row = 0; row < rows && supported; ++row) {
      Status s = quantization_bounds_row(d->dtype, d->data() + row * d->row_bytes(), cols, opts.step_slack, &bound[row * cols]);
      if (s.code() == StatusCode::UNSUPPORTED) supported = false;
      else SS_RETURN_IF_ERROR(s);
    }
    if (!supported) {
      tp.status = "unsupported";
      r.consistent = false;
      r.tensors.push_back(tp);
      continue;
    }
    std::vector<WeightOffender> offenders;
    for (int64_t i = 0; i < tp.numel; ++i) {
      const double diff = std::fabs(static_cast<double>(dv[i]) - bv[i]);
      const double bd = bound[i];
      if (diff <= bd) {
        if (bd > 0) tp.max_excess = std::max(tp.max_excess, diff / bd);
        continue;
      }
      if (std::fabs(dv[i]) <= bd) {  // pruned: derived is (a quantization of) zero
        ++tp.pruned;
        continue;
      }
      ++tp.outside;
      const double excess = bd > 0 ? diff / bd : INFINITY;
      tp.max_excess = std::max(tp.max_excess, excess);
      offenders.push_back({i, bv[i], dv[i], static_cast<float>(bd)});
    }
    std::sort(offenders.begin(), offenders.end(), [](const WeightOffender& a, const WeightOffender& c) {
      return std::fabs(a.derived - a.base) - a.bound > std::fabs(c.derived - c.base) - c.bound;
    });
    if (offenders.size() > static_cast<size_t>(std::max(0, opts.worst_offenders))) offenders.resize(std::max(0, opts.worst_offenders));
    tp.worst = std::move(offenders);
    const double frac = tp.numel ? static_cast<double>(tp.outside) / tp.numel : 0;
    tp.status = (tp.outside > 0 && frac > opts.max_outside_fraction) ? "tampered" : "consistent";
    if (tp.status == "tampered") r.consistent = false;
    r.tensors.push_back(std::move(tp));
  }
  for (const auto& [name, b] : base_by_name)
    if (!derived_by_name.count(name)) {
      TensorProvenance tp;
      tp.name = name;
      tp.base_dtype = dtype_name(b->dtype);
      tp.numel = b->numel();
      tp.status = "missing";
      r.consistent = false;
      r.tensors.push_back(tp);
    }
  // Metadata: only when both sides carry GGUF-style metadata (an HF folder keeps its tokenizer elsewhere).
  if (base.format == derived.format && base.format == "gguf") {
    const std::string arch = base.meta.get_string("general.architecture").value_or("");
    std::map<std::string, const MetaValue*> bm, dm;
    for (const auto& [k, v] : base.meta.entries())
      if (diffed_key(k, arch)) bm[k] = &v;
    for (const auto& [k, v] : derived.meta.entries())
      if (diffed_key(k, arch)) dm[k] = &v;
    for (const auto& [k, v] : bm) {
      auto it = dm.find(k);
      if (it == dm.end()) r.metadata.push_back({k, v->summary(), ""});
      else if (!(*v == *it->second)) r.metadata.push_back({k, v->summary(), it->second->summary()});
    }
    for (const auto& [k, v] : dm)
      if (!bm.count(k)) r.metadata.push_back({k, "", v->summary()});
    if (!r.metadata.empty()) r.consistent = false;
  }
  std::sort(r.tensors.begin(), r.tensors.end(), [](const TensorProvenance& a, const TensorProvenance& b) { return a.name < b.name; });
  return r;
}

std::string provenance_report_text(const ProvenanceReport& r) {
  std::string s;
  char line[512];
  std::snprintf(line, sizeof(line), "%-28s %-8s %-8s %-11s %10s %10s %12s\n", "tensor", "base", "derived", "status", "outside",
                "pruned", "max |d|/bnd");
  s += line;
  for (const auto& t : r.tensors) {
    std::snprintf(line, sizeof(line), "%-28s %-8s %-8s %-11s %10lld %10lld %12.3g\n", t.name.c_str(), t.base_dtype.c_str(),
                  t.derived_dtype.c_str(), t.status.c_str(), static_cast<long long>(t.outside),
                  static_cast<long long>(t.pruned), t.max_excess);
    s += line;
    for (const auto& w : t.worst) {
      std::snprintf(line, sizeof(line), "    [%lld] base %.6g derived %.6g bound %.3g\n", static_cast<long long>(w.index),
                    w.base, w.derived, w.bound);
      s += line;
    }
  }
  for (const auto& m : r.metadata)
    s += "metadata " + m.key + ": base " + (m.base.empty() ? "(absent)" : m.base) + " | derived " +
         (m.derived.empty() ? "(absent)" : m.derived) + "\n";
  s += std::string("verdict: ") + (r.consistent ? "CONSISTENT" : "TAMPERED_BEYOND_COMPRESSION_NOISE") + "\n";
  return s;
}

std::string provenance_report_json(const ProvenanceReport& r) {
  json tensors = json::array();
  for (const auto& t : r.tensors) {
    json worst = json::array();
    for (const auto& w : t.worst) worst.push_back({{"index", w.index}, {"base", w.base}, {"derived", w.derived}, {"bound", w.bound}});
    tensors.push_back({{"name", t.name}, {"base_dtype", t.base_dtype}, {"derived_dtype", t.derived_dtype}, {"status", t.status},
                       {"numel", t.numel}, {"outside", t.outside},
                       {"outside_fraction", t.numel ? double(t.outside) / t.numel : 0.0}, {"pruned", t.pruned},
                       {"max_excess", std::isfinite(t.max_excess) ? json(t.max_excess) : json("inf")}, {"worst", worst}});
  }
  json meta = json::array();
  for (const auto& m : r.metadata) meta.push_back({{"key", m.key}, {"base", m.base}, {"derived", m.derived}});
  json j = {{"verdict", r.consistent ? "CONSISTENT" : "TAMPERED_BEYOND_COMPRESSION_NOISE"}, {"tensors", tensors}, {"metadata", meta}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace ss

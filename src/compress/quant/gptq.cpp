// GPTQ on one linear layer (include/safeshrink/quant_gptq_awq.h), after Frantar et al. 2023,
// Algorithm 1: columns are quantized one at a time in (optionally act-)order, and each rounding
// error is spread over the not-yet-quantized columns through the rows of U, the upper Cholesky
// factor of H^-1; updates are applied lazily per block of block_size columns. Groups take their
// scale/zero from the current (error-fed) weights of the whole group when its first column comes
// up (including updates still pending in the lazy batch; the reference code of the paper reads
// the not-yet-updated columns there, which only differs when groups and blocks do not align),
// or, with static_groups, from the unquantized weights up front. Also the round-to-nearest
// baseline with the same min-max grid, and dequantize(). Not here: the Hessian helpers
// (compress/hessian.cpp), AWQ (awq.cpp), packing (formats/gptq_awq.cpp).
// Also the store-level unit "gptq" of the quantizer registry.
// To add one more option: a GptqParams field, validated in validate(), used in gptq_quantize_linear.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include <Eigen/Dense>

#include "compress/plan_runner.h"
#include "compress/quant/quant_units.h"
#include "safeshrink/compress_hessian.h"
#include "safeshrink/formats.h"
#include "safeshrink/kernels.h"
#include "safeshrink/half.h"
#include "safeshrink/quant_gptq_awq.h"

namespace ss {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// One row's grid for one group: w = (q - zero) * scale, q in [0, maxq].
struct Grid {
  double scale = 1;
  int32_t zero = 0;
};

float f16_round(double v) { return fp16_to_fp32(fp32_to_fp16(static_cast<float>(v))); }

// Min-max grid over values (range forced to include 0), scale rounded to f16.
Grid make_grid(double lo, double hi, int maxq, bool sym) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (sym) {
    hi = std::max(std::fabs(lo), hi);
    if (lo < 0) lo = -hi;
  }
  if (lo == 0.0 && hi == 0.0) {
    lo = -1;
    hi = 1;
  }
  Grid g;
  g.scale = f16_round((hi - lo) / maxq);
  if (!(g.scale > 0)) g.scale = f16_round(6.103515625e-05);  // underflowed: smallest normal f16
  g.zero = sym ? (maxq + 1) / 2 : static_cast<int32_t>(std::clamp(std::nearbyint(-lo / g.scale), 0.0, double(maxq)));
  return g;
}

int32_t quantize_code(double w, const Grid& g, int maxq) {
  const double q = std::nearbyint(w / g.scale) + g.zero;
  return static_cast<int32_t>(std::clamp(q, 0.0, static_cast<double>(maxq)));
}

double dequantize_code(int32_t q, const Grid& g) { return (q - g.zero) * g.scale; }

GroupQuantizedLinear empty_result(int64_t rows, int64_t cols, int bits, int64_t group_size, bool sym) {
  GroupQuantizedLinear out;
  out.rows = rows;
  out.cols = cols;
  out.bits = bits;
  out.group_size = group_size <= 0 || group_size > cols ? cols : group_size;
  out.sym = sym;
  out.codes.assign(static_cast<size_t>(rows * cols), 0);
  out.scales.assign(static_cast<size_t>(out.n_groups() * rows), 0.0f);
  out.zeros.assign(static_cast<size_t>(out.n_groups() * rows), 0);
  out.g_idx.resize(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) out.g_idx[c] = static_cast<int32_t>(c / out.group_size);
  return out;
}

Status check_bits(int bits, const char* who) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return invalid_argument(std::string(who) + ": bits has to be 2, 3, 4 or 8, got " + std::to_string(bits));
  return ok_status();
}

Status check_shape(int64_t rows, int64_t cols, const char* who) {
  if (rows <= 0 || cols <= 0 || rows > (int64_t{1} << 24) || cols > (int64_t{1} << 20))
    return invalid_argument(std::string(who) + ": bad shape " + std::to_string(rows) + "x" + std::to_string(cols));
  return ok_status();
}

}  // namespace

std::vector<float> GroupQuantizedLinear::dequantize() const {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t g = g_idx[c];
      const double s = scales[g * rows + r];
      w[r * cols + c] = static_cast<float>((codes[r * cols + c] - zeros[g * rows + r]) * s);
    }
  return w;
}

Status GptqParams::validate() const {
  SS_RETURN_IF_ERROR(check_bits(bits, "gptq"));
  if (group_size == 0 || group_size < -1)
    return invalid_argument("gptq: group_size has to be -1 (per channel) or positive, got " + std::to_string(group_size));
  if (!(damp >= 0.0 && damp < 1.0)) return invalid_argument("gptq: damp has to be in [0, 1), got " + std::to_string(damp));
  if (block_size <= 0) return invalid_argument("gptq: block_size has to be positive, got " + std::to_string(block_size));
  return ok_status();
}

Result<GroupQuantizedLinear> rtn_quantize_linear(const float* w, int64_t rows, int64_t cols, int bits,
                                                 int64_t group_size, bool sym) {
  SS_RETURN_IF_ERROR(check_bits(bits, "rtn"));
  SS_RETURN_IF_ERROR(check_shape(rows, cols, "rtn"));
  GroupQuantizedLinear out = empty_result(rows, cols, bits, group_size, sym);
  const int maxq = (1 << bits) - 1;
  const int64_t gs = out.group_size;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < out.n_groups(); ++g) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      double lo = w[r * cols + c0], hi = lo;
      for (int64_t c = c0; c < c1; ++c) {
        lo = std::min<double>(lo, w[r * cols + c]);
        hi = std::max<double>(hi, w[r * cols + c]);
      }
      const Grid grid = make_grid(lo, hi, maxq, sym);
      out.scales[g * rows + r] = static_cast<float>(grid.scale);
      out.zeros[g * rows + r] = grid.zero;
      for (int64_t c = c0; c < c1; ++c) out.codes[r * cols + c] = quantize_code(w[r * cols + c], grid, maxq);
    }
  return out;
}

Result<GroupQuantizedLinear> gptq_quantize_linear(const float* w, int64_t rows, int64_t cols,
                                                  const std::vector<double>& h_in, const GptqParams& p) {
  SS_RETURN_IF_ERROR(p.validate());
  SS_RETURN_IF_ERROR(check_shape(rows, cols, "gptq"));
  if (static_cast<uint64_t>(h_in.size()) != static_cast<uint64_t>(cols) * static_cast<uint64_t>(cols))
    return invalid_argument("gptq: H has " + std::to_string(h_in.size()) + " elements, expected " +
                            std::to_string(cols) + "^2");
  GroupQuantizedLinear out = empty_result(rows, cols, p.bits, p.group_size, p.sym);
  const int maxq = (1 << p.bits) - 1;
  const int64_t gs = out.group_size;

  // W: (rows, cols) in double; dead input columns are zeroed (their H diagonal set to 1).
  RowMatrix W = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(w, rows, cols)
                    .cast<double>();
  std::vector<double> h = h_in;
  const std::vector<uint8_t> dead = hessian_mark_dead_columns(h, cols);
  for (int64_t c = 0; c < cols; ++c)
    if (dead[c]) W.col(c).setZero();

  // Static groups: grids from the unpermuted, not yet error-fed weights.
  std::vector<Grid> static_grids;
  if (p.static_groups) {
    static_grids.resize(static_cast<size_t>(out.n_groups() * rows));
    for (int64_t g = 0; g < out.n_groups(); ++g) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      for (int64_t r = 0; r < rows; ++r) {
        const auto seg = W.row(r).segment(c0, c1 - c0);
        static_grids[g * rows + r] = make_grid(seg.minCoeff(), seg.maxCoeff(), maxq, p.sym);
      }
    }
  }

  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  if (p.desc_act) {
    perm = hessian_act_order(h, cols);
    h = hessian_permute(h, cols, perm);
    RowMatrix Wp(rows, cols);
    for (int64_t j = 0; j < cols; ++j) Wp.col(j) = W.col(perm[j]);
    W.swap(Wp);
  }
  SS_RETURN_IF_ERROR(hessian_dampen(h, cols, p.damp));
  SS_ASSIGN_OR_RETURN(std::vector<double> u_vec, hessian_inverse_cholesky_upper(h, cols));
  Eigen::Map<const RowMatrix> U(u_vec.data(), cols, cols);

  std::vector<Grid> grids(static_cast<size_t>(rows));  // the current group's grid per row
  for (int64_t i1 = 0; i1 < cols; i1 += p.block_size) {
    const int64_t i2 = std::min(cols, i1 + p.block_size), count = i2 - i1;
    RowMatrix Err(rows, count);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = i1 + i;          // position in quantization order
      const int64_t col = perm[j];       // original column
      int64_t group;
      if (p.static_groups) {
        group = col / gs;
        for (int64_t r = 0; r < rows; ++r) grids[r] = static_grids[group * rows + r];
      } else {
        group = j / gs;
        if (j % gs == 0) {
          // The group's current weights: columns past this block still owe the pending lazy
          // update of the columns already quantized in this block; apply it to a copy.
          const int64_t c1 = std::min(cols, j + gs);
          RowMatrix seg_all = W.block(0, j, rows, c1 - j);
          if (c1 > i2 && i > 0)
            seg_all.rightCols(c1 - i2).noalias() -= Err.leftCols(i) * U.block(i1, i2, i, c1 - i2);
          for (int64_t r = 0; r < rows; ++r) {
            const auto seg = seg_all.row(r);
            grids[r] = make_grid(seg.minCoeff(), seg.maxCoeff(), maxq, p.sym);
            out.scales[group * rows + r] = static_cast<float>(grids[r].scale);
            out.zeros[group * rows + r] = grids[r].zero;
          }
        }
      }
      out.g_idx[col] = static_cast<int32_t>(group);
      const double d = U(j, j);
      for (int64_t r = 0; r < rows; ++r) {
        const double wv = W(r, j);
        const int32_t q = quantize_code(wv, grids[r], maxq);
        out.codes[r * cols + col] = q;
        const double qv = dequantize_code(q, grids[r]);
        Err(r, i) = (wv - qv) / d;
      }
      // Error feedback inside the block: W[:, j+1:i2] -= err * U[j, j+1:i2].
      if (i + 1 < count)
        W.block(0, j + 1, rows, count - i - 1).noalias() -= Err.col(i) * U.block(j, j + 1, 1, count - i - 1);
    }
    // Lazy batch update of the columns after the block.
    if (i2 < cols) W.block(0, i2, rows, cols - i2).noalias() -= Err * U.block(i1, i2, count, cols - i2);
  }
  if (p.static_groups)
    for (int64_t g = 0; g < out.n_groups(); ++g)
      for (int64_t r = 0; r < rows; ++r) {
        out.scales[g * rows + r] = static_cast<float>(static_grids[g * rows + r].scale);
        out.zeros[g * rows + r] = static_grids[g * rows + r].zero;
      }
  return out;
}

namespace {

Result<GptqParams> gptq_params_from_json(const nlohmann::json& j) {
  GptqParams p;
  try {
    if (j.contains("bits")) p.bits = j["bits"].get<int>();
    if (j.contains("group_size")) p.group_size = j["group_size"].get<int64_t>();
    if (j.contains("sym")) p.sym = j["sym"].get<bool>();
    if (j.contains("desc_act")) p.desc_act = j["desc_act"].get<bool>();
    if (j.contains("static_groups")) p.static_groups = j["static_groups"].get<bool>();
    if (j.contains("damp")) p.damp = j["damp"].get<double>();
    if (j.contains("block_size")) p.block_size = j["block_size"].get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("gptq parameters: ") + e.what());
  }
  SS_RETURN_IF_ERROR(p.validate());
  return p;
}

double group_bits_per_weight(int bits, int64_t group_size, int64_t rows, int64_t cols, bool g_idx) {
  const int64_t g = group_size > 0 && group_size < cols ? group_size : cols;
  // codes + per group an f16 scale and a bits-wide zero (GPTQ stores zeros even when symmetric)
  return bits + (16.0 + bits) / static_cast<double>(g) + (g_idx ? 32.0 / static_cast<double>(rows) : 0.0);
}

std::string gptq_type_name(const GptqParams& p) {
  return "gptq" + std::to_string(p.bits) + (p.group_size > 0 ? "-g" + std::to_string(p.group_size) : "-pc") +
         (p.sym ? "" : "-asym") + (p.desc_act ? "-act" : "");
}

}  // namespace

Result<Tensor> group_quantized_to_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                         const GroupQuantizedLinear& q) {
  const std::vector<float> w = q.dequantize();
  return Tensor::from_bytes(name, DType::F32, shape, w.data(), w.size() * sizeof(float));
}

Result<GroupQuantizedStore> gptq_quantize_store(const TensorStore& in, const nlohmann::json& params,
                                                const CompressContext& ctx) {
  SS_ASSIGN_OR_RETURN(GptqParams p, gptq_params_from_json(params));
  SS_ASSIGN_OR_RETURN(PlanOverrides ov, plan_overrides_from_params(params));
  if (!ctx.calibrate) return invalid_argument("gptq needs calibration data (--calib): no calibration source wired");
  SS_ASSIGN_OR_RETURN(std::shared_ptr<const Calibration> calib, ctx.calibrate(true));
  if (!calib) return invalid_argument("gptq: the calibration source gave nothing");
  GroupQuantizedStore result;
  auto apply = [&](const Tensor& t, size_t) -> Result<TensorDecision> {
    SS_ASSIGN_OR_RETURN(std::vector<float> w, kernels::dequantize(t));
    const int64_t rows = t.rows(), cols = t.cols();
    const LinearInputStats* st = calib->find(t.name);
    GroupQuantizedLinear q;
    std::string reason;
    if (st && st->k == cols && !st->xtx.empty() && st->rows > 0) {
      SS_ASSIGN_OR_RETURN(std::vector<double> h, hessian_from_xtx(st->xtx, cols, st->rows));
      GptqParams pp = p;
      Result<GroupQuantizedLinear> r = gptq_quantize_linear(w.data(), rows, cols, h, pp);
      // H not positive definite at this dampening: retry with 10x more, twice.
      for (int retry = 0; !r.ok() && retry < 2 && r.status().code() == StatusCode::INVALID_ARGUMENT; ++retry) {
        pp.damp = std::min(0.5, pp.damp * 10 + 1e-3);
        r = gptq_quantize_linear(w.data(), rows, cols, h, pp);
      }
      if (!r.ok()) return r.status().with_context("gptq " + t.name);
      q = std::move(*r);
      reason = "gptq (" + std::to_string(st->rows) + " calibration rows, damp " + std::to_string(pp.damp) + ")";
    } else {
      SS_ASSIGN_OR_RETURN(q, rtn_quantize_linear(w.data(), rows, cols, p.bits, p.group_size, p.sym));
      reason = "fallback: no calibration statistics for this matrix, round to nearest on the gptq grid";
    }
    SS_ASSIGN_OR_RETURN(Tensor out, group_quantized_to_tensor(t.name, t.shape, q));
    result.linears.emplace_back(t.name, std::move(q));
    return TensorDecision{std::move(out), gptq_type_name(p), group_bits_per_weight(p.bits, p.group_size, rows, cols, p.desc_act),
                          reason};
  };
  SS_ASSIGN_OR_RETURN(result.out, run_tensor_plan(in, "gptq", params, ov, apply, ctx));
  result.out.plan.calibration = {{"source", calib->spec.source}, {"sha256", calib->sha256},
                                 {"samples", calib->spec.n_samples}, {"seq_len", calib->spec.seq_len},
                                 {"seed", calib->spec.seed}};
  return result;
}

Status write_group_quantized_store_packed(const GroupQuantizedStore& r, const std::string& folder,
                                          const PackedFolderOptions& opts) {
  std::vector<std::pair<std::string, GroupQuantizedLinear>> packed;
  std::vector<std::string> packed_names;
  for (const auto& [name, q] : r.linears) {
    const std::string suffix = ".weight";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    if (q.bits != opts.bits) continue;
    if (!pack_quantized_linear(q, "probe", opts.format).ok()) continue;  // width the format cannot pack: dense
    packed.emplace_back(name, q);
    packed_names.push_back(name);
  }
  TensorStore rest;
  rest.format = r.out.store.format;
  rest.meta = r.out.store.meta;
  for (const Tensor& t : r.out.store.tensors)
    if (std::find(packed_names.begin(), packed_names.end(), t.name) == packed_names.end()) SS_RETURN_IF_ERROR(rest.add(t));
  return write_packed_quant_folder(rest, packed, folder, opts);
}

CompressorInfo quant_unit_gptq() {
  CompressorInfo c;
  c.name = "gptq";
  c.kind = "quantizer";
  c.summary = "GPTQ: second-order (OBS) error feedback with the calibration Hessian 2X^TX/n, groups, act-order; "
              "fake-quant dense values (f32), codes kept for GPTQ packing";
  c.params = {{"bits", 4}, {"group_size", 128}, {"sym", true}, {"desc_act", false}, {"static_groups", false},
              {"damp", 0.01}, {"block_size", 128}, {"keep", nlohmann::json::array()}};
  c.reference = "Frantar et al., GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers, ICLR 2023";
  c.run = [](const TensorStore& in, const nlohmann::json& params, const CompressContext& ctx) -> Result<CompressOutput> {
    SS_ASSIGN_OR_RETURN(GroupQuantizedStore r, gptq_quantize_store(in, params, ctx));
    return std::move(r.out);
  };
  return c;
}

}  // namespace ss

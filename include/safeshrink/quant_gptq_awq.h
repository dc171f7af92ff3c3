// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", ICLR 2023) and AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization",
// MLSys 2024) on one linear layer, plus the round-to-nearest baseline with the same grid.
// All three produce a GroupQuantizedLinear: integer codes, per-group scales and zero points and
// g_idx, i.e. exactly what the GPTQ/AWQ packers (formats/gptq_awq.cpp) write, and the dense
// fake-quant weights via dequantize(). The grid is the asymmetric min-max grid of the GPTQ paper's
// code (range always includes 0; sym: zero = 2^(bits-1)); scales are rounded to f16 because the
// packed formats store them so, which makes dense and packed models compute the same numbers.
// Not here: capturing activations (calibration.h), the TensorStore-level compressors and their
// registry entries (src/compress/quant/gptq.cpp, awq.cpp), file formats (formats.h).
// To add one more variant: a field in the params struct, validated in validate(), used in the .cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "safeshrink/status.h"

namespace ss {

// (rows = out_features, cols = in_features) weights quantized per group of input columns.
struct GroupQuantizedLinear {
  int64_t rows = 0, cols = 0;
  int bits = 4;
  int64_t group_size = 128;      // columns per group; = cols for per-channel
  bool sym = true;
  std::vector<int32_t> codes;    // (rows, cols) in [0, 2^bits)
  std::vector<float> scales;     // (n_groups, rows), exactly representable in f16
  std::vector<int32_t> zeros;    // (n_groups, rows) in [0, 2^bits): w = (code - zero) * scale
  std::vector<int32_t> g_idx;    // (cols) group of each input column (act-order permutes it)
  int64_t n_groups() const { return group_size > 0 ? (cols + group_size - 1) / group_size : 0; }
  std::vector<float> dequantize() const;  // (rows, cols)
};

struct GptqParams {
  int bits = 4;                  // 2, 3, 4 or 8
  int64_t group_size = 128;      // -1 = per output channel
  bool sym = true;
  bool desc_act = false;         // act-order: quantize columns by descending diag(H)
  bool static_groups = false;    // with desc_act: group params from the unpermuted weights first
  double damp = 0.01;            // percdamp: fraction of mean diag(H) added to the diagonal
  int64_t block_size = 128;      // lazy batch update width
  Status validate() const;
};

// w: (rows, cols) row-major F32. h: (cols, cols) H = 2 X^T X / n (not yet dampened).
Result<GroupQuantizedLinear> gptq_quantize_linear(const float* w, int64_t rows, int64_t cols,
                                                  const std::vector<double>& h, const GptqParams& params);

// Round-to-nearest with the same grid and groups (natural column order).
Result<GroupQuantizedLinear> rtn_quantize_linear(const float* w, int64_t rows, int64_t cols, int bits,
                                                 int64_t group_size, bool sym);

struct AwqParams {
  int bits = 4;
  int64_t group_size = 128;
  bool sym = false;              // AWQ's packed format uses zero points (asymmetric)
  int grid = 20;                 // alpha in {0, 1/grid, ..., (grid-1)/grid}
  Status validate() const;
};

// The scale search for linears sharing one input. ws: the weights (each rows_i x k, row-major);
// mean_abs: (k) mean |x| per input channel; xtx: (k, k) sum x x^T (output error of a weight
// difference D is sum over rows of d^T xtx d). s = mean_abs^alpha / sqrt(max*min), clamped >= 1e-4.
struct AwqScaleSearch {
  std::vector<float> scales;     // (k) multiply W columns, divide the previous op's output
  double alpha = 0;
  double error = 0;              // output error at the chosen alpha
  double error_alpha0 = 0;       // at alpha = 0 (plain RTN)
};
Result<AwqScaleSearch> awq_search_scales(const std::vector<const float*>& ws, const std::vector<int64_t>& rows,
                                         int64_t k, const std::vector<double>& mean_abs,
                                         const std::vector<double>& xtx, const AwqParams& params);

// sum over rows of (w - w_hat)_r^T xtx (w - w_hat)_r: ||X W^T - X W_hat^T||_F^2 from X^T X.
double output_error_from_xtx(const float* w, const float* w_hat, int64_t rows, int64_t k,
                             const std::vector<double>& xtx);

}  // namespace ss

#include "safeshrink/compress.h"

namespace ss {

// Store-level GPTQ / AWQ (the registry units "gptq" and "awq" run these and return .out): every
// weight matrix that has calibration statistics is quantized with its Hessian (GPTQ) or scale
// search (AWQ, scales folded into the previous RMSNorm / linear); the others (embeddings, the
// output matrix) fall back to round-to-nearest on the same grid, said so in the plan. out.store
// holds dense fake-quant F32 weights; `linears` keeps the codes of every quantized matrix so the
// packer (write_packed_quant_folder, HF layout input) can write them.
struct GroupQuantizedStore {
  CompressOutput out;
  std::vector<std::pair<std::string, GroupQuantizedLinear>> linears;
};
// params: bits, group_size, sym, desc_act, static_groups, damp, block_size, keep (regex list).
Result<GroupQuantizedStore> gptq_quantize_store(const TensorStore& in, const nlohmann::json& params,
                                                const CompressContext& ctx);
// Writes r as a GPTQ/AWQ packed HF folder (write_packed_quant_folder): matrices whose shape the
// format packs go packed, the others stay dense fake-quant F32 under their names. r must come
// from an HF-layout store (llama_to_hf_layout). opts.bits/group_size/sym must match the run.
struct PackedFolderOptions;
Status write_group_quantized_store_packed(const GroupQuantizedStore& r, const std::string& folder,
                                          const PackedFolderOptions& opts);
// params: bits, group_size, sym, grid, keep.
Result<GroupQuantizedStore> awq_quantize_store(const TensorStore& in, const nlohmann::json& params,
                                               const CompressContext& ctx);

}  // namespace ss

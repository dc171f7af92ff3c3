// Compressors: pure maps TensorStore -> TensorStore plus a plan saying which tensor got which type
// or sparsity, and why (see ARCHITECTURE.md). Quantizers live in src/compress/quant/, pruners in
// src/compress/prune/; each kind has one hand-written registry list (quantizer_registry(),
// pruner_registry()) that `safeshrink list quantizers|pruners` prints and tests iterate.
// compress_variant() is the one entry the CLI and the audit use: it parses a variant spec
// ("fp16", "int4-g128", "q4_k_m", "gptq-4-g128", "wanda-50", "2:4", ...) and runs the unit.
// Not here: reading or writing files (formats/), running models (model/), evaluation (eval/).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "safeshrink/dtype.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

class LlamaModel;
class Tokenizer;
class ThreadPool;

// One line of a plan: what happened to one tensor.
struct PlanEntry {
  std::string tensor;         // name in the store
  std::string from_type;      // dtype name before ("f32")
  std::string to_type;        // dtype name after ("q4_K", "int4-g128", "f16"); = from_type if kept
  double sparsity = 0.0;      // fraction of exact zeros after
  double bits_per_weight = 0; // storage cost of the tensor after, bits per element
  std::string reason;         // "rule attn_v=q6_k", "keep ^output", "fallback: 96 cols not /256", ...
};

struct CompressPlan {
  std::string method;                 // registry name ("int4", "gptq", "wanda", ...)
  nlohmann::json params;              // the unit's parameters as used (defaults filled)
  std::vector<PlanEntry> entries;
  double bits_per_weight = 0;         // over all compressed-candidate (2-D weight) tensors
  nlohmann::json calibration;         // {"source":..., "sha256":..., "samples":N, "seed":S} or null
  nlohmann::json to_json() const;
};

// Calibration statistics of the inputs of every linear layer, captured by running the engine.
struct LinearInputStats {
  std::string tensor;           // weight name whose input this is ("blk.0.attn_q.weight")
  int64_t k = 0;                // input features
  int64_t rows = 0;             // activation rows seen
  std::vector<double> sum_sq;   // (k) sum of x^2 per input column (imatrix, Wanda)
  std::vector<double> sum_abs;  // (k) sum of |x| per input column (AWQ)
  std::vector<double> xtx;      // (k*k) sum of x x^T, only when CalibrationSpec::hessian
};

struct CalibrationSpec {
  std::string source;           // text or JSONL file; empty = the built-in prompt set
  int64_t n_samples = 128;
  int64_t seq_len = 256;
  uint64_t seed = 0;
  bool hessian = false;         // also accumulate X^T X (GPTQ, SparseGPT)
};

struct Calibration {
  CalibrationSpec spec;
  std::string sha256;           // of the source bytes
  std::vector<LinearInputStats> linears;
  const LinearInputStats* find(std::string_view tensor) const;
};

// ---- safety-aware compression (issue 9; scores computed by eval/attribution, see attribution.h) ----
// How much compressing one tensor alone with a plain spec hurts safety: the drop of the mean refusal
// margin on harmful prompts (larger = more safety-critical) and the quality cost (KLD on neutral text).
struct TensorSafetySensitivity {
  std::string tensor;
  int64_t numel = 0;
  double margin_drop = 0;
  double kld = 0;
  // The whole model compressed with the spec except this tensor (kept original), minus the whole
  // model compressed: how much mean harmful margin restoring this tensor alone gives back.
  double restore_margin_gain = 0;
};
struct SafetySensitivity {
  std::string spec;                              // the plain spec each tensor was compressed with
  std::vector<TensorSafetySensitivity> tensors;  // most safety-sensitive first
  nlohmann::json probe;                          // which prompts scored it ({prompts, split, n})
};
// Safety-critical weights (Wei et al. 2024 set difference): per tensor, 1 = critical (protect).
struct SafetyCriticalWeights {
  std::map<std::string, std::vector<uint8_t>> masks;
  nlohmann::json info;  // {method, q, p, n_selected, safety_data, utility_data}
};

// What a unit may need besides the store. Units that need calibration get it lazily through
// `calibrate` (the CLI/audit wires it to the engine); units that do not never call it.
struct CompressContext {
  ThreadPool* pool = nullptr;
  std::function<Result<std::shared_ptr<const Calibration>>(bool hessian)> calibrate;
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
  // Safety-aware plans ("-safety" specs, --safety-aware, --protect safety): per-tensor sensitivity to
  // the plain spec, and the safety-critical weights; wired by the CLI/audit (they need the model,
  // tokenizer and prompts). Unset: a "-safety" spec is INVALID_ARGUMENT.
  std::function<Result<std::shared_ptr<const SafetySensitivity>>(const std::string& plain_spec)> safety_sensitivity;
  std::function<Result<std::shared_ptr<const SafetyCriticalWeights>>()> safety_critical;
};

struct CompressOutput {
  TensorStore store;
  CompressPlan plan;
};

// A registered unit. `run` receives the parsed parameters (defaults filled, validated).
struct CompressorInfo {
  std::string name;        // "int4", "gptq", "q4_k_m", "wanda", ...
  std::string kind;        // "quantizer" | "pruner"
  std::string summary;
  nlohmann::json params;   // parameter -> default
  std::string reference;   // paper or spec
  std::function<Result<CompressOutput>(const TensorStore&, const nlohmann::json& params,
                                       const CompressContext&)> run;
};

const std::vector<CompressorInfo>& quantizer_registry();  // src/compress/quant/
const std::vector<CompressorInfo>& pruner_registry();     // src/compress/prune/

// ---- building blocks of the quantizers (src/compress/plan.cpp, src/compress/quant/) ----

// llama.cpp's rule for the tensors a quantizer touches (tensor_allows_quantization): 2-D or 3-D,
// name ends in "weight", not a norm ("norm.weight", "layernorm"), not an MoE router
// (ffn_gate_inp). Everything else (norms, biases, 1-D vectors) is copied unchanged.
bool quant_is_weight_matrix(const Tensor& t);
// Also a weight matrix: a 4-D "conv.<i>.weight" (out, in, kh, kw) of the vision classifiers
// (vision.h). run_tensor_plan gives it to the units as its (out, in*kh*kw) rows (per output
// channel) and restores the 4-D shape unless the result is a block type.
bool quant_is_conv_weight(const Tensor& t);

// Plan options every quantizer reads from its params: "keep" (array of ECMAScript regexes searched
// in the tensor name: left as they are), "tensor_type" (array of "REGEX=type": the first match
// wins, as llama-quantize --tensor-type), "pure" (bool: one type for every matrix, no preset
// rules). A bad regex or type is an INVALID_ARGUMENT naming it.
struct PlanOverrides {
  struct TypeRule { std::string pattern; std::string type; };
  std::vector<std::string> keep;
  std::vector<TypeRule> tensor_types;
  bool pure = false;
  bool keeps(const std::string& tensor) const;                 // any keep regex matches
  const TypeRule* type_rule(const std::string& tensor) const;  // first matching rule or nullptr
};
Result<PlanOverrides> plan_overrides_from_params(const nlohmann::json& params);

// Round-to-nearest integer quantization, stored as fake-quant dense values on the grid.
// Per row, per group of `group_size` consecutive columns (-1: the whole row, "per channel"):
//   sym:  s = f16(max|w| / (2^(b-1) - 1)),  q = clamp(rint(w / s), -2^(b-1), 2^(b-1) - 1),  w' = q*s
//   asym: lo = min(min w, 0), hi = max(max w, 0), s = f16((hi - lo) / (2^b - 1)),
//         z = clamp(rint(-lo / s), 0, 2^b - 1), q = clamp(rint(w / s) + z, 0, 2^b - 1), w' = (q - z)*s
// rint rounds half to even; all arithmetic in float32; a group with s == 0 is all zeros. w' is
// stored in `storage` (F16 rounds it to the nearest half, F32 keeps it exact).
struct IntRtnParams {
  int bits = 4;               // 2, 3, 4 or 8
  int64_t group_size = 128;   // > 0, or -1 per channel
  bool sym = true;
  DType storage = DType::F16; // F16 or F32
  Status validate() const;
};
Result<Tensor> quant_tensor_int_rtn(const Tensor& in, const IntRtnParams& p);
// Storage of the real format the grid implies: b bits per code, a 16-bit scale per group, plus a
// b-bit zero per group when asymmetric (groups = ceil(cols / group_size)).
double quant_int_rtn_bits_per_weight(const IntRtnParams& p, int64_t cols);
std::string quant_int_rtn_name(const IntRtnParams& p);  // "int4-g128", "int8-pc", "int3-g64-asym"

// GGUF block quantization of a whole tensor (any input dtype is dequantized to F32 first), row by
// row with kernels::quantize_row_weighted_ref. importance: nullptr or `cols` non-negative weights
// (the imatrix: mean x^2 of each input column) used by the K types.
Result<Tensor> quant_tensor_gguf(const Tensor& in, DType type, const std::vector<float>* importance = nullptr);

// llama.cpp's file types (general.file_type) of the GGUF quantizers ("q4_k_m" -> 15, "f16" -> 1);
// -1 for a name that has none.
int quant_gguf_file_type(std::string_view preset);

// Parses a variant spec into (unit, params) and runs it. Spec grammar (documented in
// docs/compression.md): a unit name optionally followed by dash-separated parameters, e.g.
// "fp16", "int8", "int4-g128", "int4-g128-asym", "int3-g64", "int2-g32", "q8_0", "q4_k_m",
// "gptq-4-g128", "awq-4-g128", "magnitude-50", "global-magnitude-50", "2:4", "wanda-50",
// "sparsegpt-50", "heads-25". Extra JSON params override (CLI flags).
Result<CompressOutput> compress_variant(const TensorStore& in, std::string_view spec,
                                        const CompressContext& ctx,
                                        const nlohmann::json& overrides = nlohmann::json::object());

}  // namespace ss

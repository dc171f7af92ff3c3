// Calibration capture: runs a LlamaModel over sampled text and accumulates, per linear weight,
// the statistics of its inputs (sum x^2, sum |x|, optionally X^T X) into the Calibration of
// compress.h, which GPTQ, AWQ, Wanda, SparseGPT and importance-weighted quantizers consume.
// Also reads and writes those statistics as an "activation statistics" JSON file (our imatrix
// equivalent: JSON, not llama.cpp's imatrix GGUF/dat) so `quantize --imatrix` can reuse them.
// Not here: any compressor (compress/), the model forward itself (model/llama.cpp exposes the
// observer hook). To add one more statistic: a field in LinearInputStats, one accumulation line
// in calibration.cpp, one key in the JSON writer and reader.
#pragma once

#include <string>

#include "safeshrink/compress.h"
#include "safeshrink/status.h"

namespace ss {

class LlamaModel;
class Tokenizer;
class ThreadPool;

// Samples spec.n_samples windows of spec.seq_len tokens (seed spec.seed) from spec.source, a text
// file or a JSONL file whose lines are objects with a "text" string (detected by the extension
// .jsonl / .json), runs the model on each window and accumulates the inputs of every linear
// (q, k, v, o, gate, up, down, output) in double. An empty source uses a short built-in English
// text. sha256 is of the source bytes. pool may be nullptr (default pool).
Result<Calibration> capture_calibration(const LlamaModel& model, const Tokenizer& tokenizer,
                                        const CalibrationSpec& spec, ThreadPool* pool = nullptr);

// Same, with token windows already prepared (tests, prompt sets). source_sha256 is recorded as is.
Result<Calibration> capture_calibration_tokens(const LlamaModel& model,
                                               const std::vector<std::vector<int32_t>>& windows,
                                               const CalibrationSpec& spec, const std::string& source_sha256,
                                               ThreadPool* pool = nullptr);

// Activation statistics file (JSON): {"format":"safeshrink-activation-stats","version":1,
// "spec":{...},"sha256":"..","linears":[{"tensor":..,"k":..,"rows":..,"sum_sq":[..],
// "sum_abs":[..],"xtx":[..] (optional)}]}. The reader checks every length against k and caps k.
Status write_activation_stats(const Calibration& calib, const std::string& path);
Result<Calibration> read_activation_stats(const std::string& path);

// Hex sha256 of a file's bytes (OpenSSL EVP).
Result<std::string> sha256_file_hex(const std::string& path);

}  // namespace ss

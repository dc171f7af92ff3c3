// Image classifiers for the backdoor and adversarial studies (issue: backdoor survival and
// quantization-aware attacks): the IDX image format and Fashion-MNIST (the Debian package
// dataset-fashion-mnist ships it gzip-compressed, so a gzip/deflate decoder lives here too), small
// CNN and MLP classifiers trained with our autograd (include/safeshrink/autograd.h), their files
// (safetensors with the config in the header's __metadata__), and their compressed variants through
// the same quantizers and pruners as the language models (compress_variant in compress.h).
// Not here: triggers and poisoning (backdoor.h), attacks (adversarial.h), language models (model.h).
// To add an architecture: a value of VisionConfig::arch, its parameters in init_random and its
// layers in VisionModel::forward (src/model/vision/), and a row in docs/backdoor.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "safeshrink/autograd.h"
#include "safeshrink/compress.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"
#include "safeshrink/train.h"

namespace ss {

class ThreadPool;

// ---------------------------------------------------------------- data (src/formats/gzip.cpp,
// src/model/vision/idx.cpp)

// gzip (RFC 1952, one or more members) around raw DEFLATE (RFC 1951): stored, fixed and dynamic
// Huffman blocks. Checks the CRC-32 and ISIZE of each member. Output larger than max_output is a
// LIMIT error; a truncated or malformed stream is CORRUPT naming `file`, the byte offset, what was
// expected and what was found. Never reads past `bytes`.
// (status.h has no LIMIT code: the cap error is CORRUPT whose expected reads "<= N bytes (cap)",
// the shape of every parser cap in src/formats.)
Result<std::string> gunzip(std::string_view bytes, const std::string& file, uint64_t max_output = 1ull << 30);
// Raw DEFLATE only (no gzip header); `consumed` (optional) receives the input bytes used.
Result<std::string> inflate_raw(std::string_view bytes, const std::string& file, uint64_t max_output,
                                uint64_t* consumed = nullptr);
// The file's bytes, gunzipped when they start with the gzip magic 1f 8b.
Result<std::string> read_file_maybe_gzip(const std::string& path, uint64_t max_output = 1ull << 30);

struct ImageSet {
  int64_t n = 0, channels = 1, height = 0, width = 0;
  std::vector<float> pixels;    // (n, channels, height, width), byte / 255 in [0, 1]
  std::vector<int32_t> labels;  // (n)
  std::string source;           // the image file's path (or "synthetic")
  int64_t image_size() const { return channels * height * width; }
  const float* image(int64_t i) const { return pixels.data() + i * image_size(); }
  // Rows [begin, end) as a new set (same source).
  ImageSet slice(int64_t begin, int64_t end) const;
};

// IDX (LeCun's MNIST format): magic 00 00 <type> <ndims>, ndims big-endian uint32 dims, then the
// data. Images: type 0x08 (ubyte), 3 dims (n, rows, cols); labels: type 0x08, 1 dim (n). Files may
// be gzipped. Counts must agree; every dim is checked against the bytes left (CORRUPT naming file,
// offset, expected and actual). limit > 0 keeps the first `limit` images.
Result<ImageSet> load_idx(const std::string& images_path, const std::string& labels_path, int64_t limit = 0);

// $SAFESHRINK_FASHION_MNIST if set, else /usr/share/datasets/fashion-mnist (dataset-fashion-mnist).
std::string fashion_mnist_dir();
// split "train" (60000) or "test" (10000); dir "" = fashion_mnist_dir(). Missing files: NOT_FOUND
// naming the path and "install the Debian package dataset-fashion-mnist (scripts/setup)".
Result<ImageSet> load_fashion_mnist(const std::string& split, int64_t limit = 0, const std::string& dir = "");
const std::vector<std::string>& fashion_mnist_class_names();  // "T-shirt/top", "Trouser", ...

// ---------------------------------------------------------------- models (src/model/vision/)

// cnn: for each conv_channels[i]: conv 3x3 stride 1 pad 1 -> ReLU -> max pool 2x2; flatten; then
//      for each hidden[i]: linear -> ReLU (-> dropout); linear to n_classes.
// mlp: flatten; for each hidden[i]: linear -> ReLU (-> dropout); linear to n_classes.
// Tensor names: "conv.<i>.weight" (out, in, 3, 3), "conv.<i>.bias" (out), "fc.<i>.weight" (out, in),
// "fc.<i>.bias" (out); the last fc is the classifier.
struct VisionConfig {
  std::string arch = "cnn";  // "cnn" | "mlp"
  int64_t channels = 1, height = 28, width = 28, n_classes = 10;
  std::vector<int64_t> conv_channels = {16, 32};
  std::vector<int64_t> hidden = {128};
  double dropout = 0.0;
  Status validate() const;  // names the bad field
  nlohmann::json to_json() const;
  static Result<VisionConfig> from_json(const nlohmann::json& j);
};

// Called on the input of every conv and fc layer (after the previous layer's ReLU/pool, before the
// layer) with that layer's weight name; returns the Var the layer uses instead (e.g. activation
// fake-quantization with a straight-through estimator for the quantization-aware attack).
// logits() and input_gradient() call hooks from several pool threads at once (one tape per chunk
// of images): a hook must be safe to run concurrently.
struct VisionForwardHooks {
  std::function<ag::Var(ag::Tape<float>&, ag::Var x, const std::string& weight_name)> layer_input;
};

class VisionModel {
 public:
  // torch's default init (kaiming_uniform(a=sqrt(5)) weights, uniform(+-1/sqrt(fan_in)) biases),
  // drawn from one ss::Rng stream in params() order: deterministic per seed on every machine.
  static Result<VisionModel> init_random(const VisionConfig& cfg, uint64_t seed);
  // A store written by to_store (any dtype, dequantized to F32). The config is the JSON string in
  // metadata "safeshrink.vision.config"; shapes are checked against it (INVALID_ARGUMENT naming the tensor).
  static Result<VisionModel> from_store(const TensorStore& store);
  Result<TensorStore> to_store(DType dtype = DType::F32) const;

  const VisionConfig& config() const { return cfg_; }
  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  const Param* find(const std::string& name) const;
  Param* find(const std::string& name);

  // Records the forward pass of x (N, C, H, W) on the tape and returns logits (N, n_classes).
  // Parameters become leaves that require a gradient when param_grads; their Vars are returned in
  // *param_vars (params() order) when given. Dropout follows t.training.
  ag::Var forward(ag::Tape<float>& t, ag::Var x, bool param_grads, std::vector<ag::Var>* param_vars = nullptr,
                  const VisionForwardHooks* hooks = nullptr, uint64_t dropout_seed = 0) const;
  // Inference logits (n, n_classes) in chunks of 128 images, one tape each, spread over the pool
  // (no gradients, dropout off).
  Result<std::vector<float>> logits(const float* x, int64_t n, ThreadPool* pool = nullptr,
                                    const VisionForwardHooks* hooks = nullptr) const;
  Result<std::vector<int32_t>> predict(const float* x, int64_t n, ThreadPool* pool = nullptr) const;
  // Mean cross entropy of (x, labels) and its gradient with respect to x (same layout as x): the
  // attacks' primitive. Dropout off.
  Result<double> input_gradient(const float* x, const int32_t* labels, int64_t n, std::vector<float>& grad,
                                const VisionForwardHooks* hooks = nullptr, ThreadPool* pool = nullptr) const;

  VisionConfig cfg_;
  std::vector<Param> params_;
};

// path ending in ".safetensors": one file, F32, config in __metadata__["safeshrink.vision.config"];
// otherwise a folder with model.safetensors (same) and config.json (the config, for people).
Status save_vision_model(const VisionModel& model, const std::string& path);
Result<VisionModel> load_vision_model(const std::string& path);

// Fraction of correct predictions and the count.
struct AccuracyResult {
  int64_t correct = 0, n = 0;
  double accuracy() const { return n ? double(correct) / double(n) : 0.0; }
};
Result<AccuracyResult> vision_accuracy(const VisionModel& model, const ImageSet& set, ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- training (src/model/vision/)

struct VisionTrainConfig {
  int64_t epochs = 5, batch = 64;
  std::string optimizer = "adamw";  // "adamw" | "sgd"
  double lr = 1e-3, momentum = 0.9, weight_decay = 0.0;
  std::string schedule = "cosine";  // LrSchedule kind
  int64_t warmup_steps = 0;
  double clip_norm = 0.0;           // 0 = no clipping
  uint64_t seed = 0;                // shuffling and dropout
  int64_t max_steps = 0;            // > 0: stop after this many optimizer steps
  // Distillation: when teacher is set, loss = kd_loss(student, teacher logits, labels, alpha, T).
  const VisionModel* teacher = nullptr;
  double kd_alpha = 0.9, kd_temperature = 4.0;
  // Called after every optimizer step (fine-pruning re-applies its masks here).
  std::function<void(VisionModel&)> after_step;
  // Progress after every step: epoch, step (1-based), total steps, mean loss of the epoch so far,
  // images/s since the start. Each step splits the batch over the pool's threads (one tape per
  // shard of >= 16 images), so a step's gradient is the batch mean whatever the thread count
  // (dropout masks excepted: they are drawn per shard).
  std::function<void(int64_t epoch, int64_t step, int64_t total, double loss, double images_per_s)> progress;
  Status validate() const;
};

struct VisionTrainReport {
  int64_t steps = 0, images = 0;
  double final_loss = 0, seconds = 0, images_per_s = 0;
};

Result<VisionTrainReport> train_vision(VisionModel& model, const ImageSet& train, const VisionTrainConfig& cfg,
                                       ThreadPool* pool = nullptr);

// ---------------------------------------------------------------- compressed variants

// Per-input-column statistics (Wanda, AWQ, imatrix) of every conv (over im2col columns, k = C*3*3,
// one row per output position) and fc layer (one row per image), captured on `images` (first
// n_samples), keyed by the layer's weight name. hessian: also X^T X (GPTQ, SparseGPT).
Result<Calibration> capture_vision_calibration(const VisionModel& model, const ImageSet& images, int64_t n_samples,
                                               ThreadPool* pool = nullptr, bool hessian = false);
// Images vision_variant() calibrates on: the first this many of calibration_images.
inline constexpr int64_t kVisionCalibrationImages = 1024;

struct VisionVariant {
  std::string spec;
  VisionModel model;        // the variant's weights dequantized to F32 (what inference runs)
  CompressPlan plan;
  double bits_per_weight = 0;  // plan's, over the conv and fc weights
  double sparsity = 0;         // fraction of exact zeros over the conv and fc weights
};
// Any compress_variant spec ("fp16", "int8", "int4-g32", "int2-g16", "magnitude-50", "wanda-50",
// ...) applied to the model's store: conv weights are treated as (out, in*3*3) matrices, per output
// channel. The classifier layer is compressed too unless overrides keep it. Calibration (Wanda,
// AWQ, GPTQ) comes from `calibration_images` (nullptr: INVALID_ARGUMENT for specs that need it).
// bits_per_weight and sparsity cover the conv and fc weights only (biases stay F32). A block-type
// variant (q8_0, ...) keeps conv weights as (out, in*3*3) matrices in its store; from_store accepts that.
Result<VisionVariant> vision_variant(const VisionModel& model, std::string_view spec, const ImageSet* calibration_images,
                                     ThreadPool* pool = nullptr,
                                     const nlohmann::json& overrides = nlohmann::json::object());

}  // namespace ss

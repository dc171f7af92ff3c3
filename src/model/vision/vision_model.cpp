// The small image classifiers of include/safeshrink/vision.h ("models" section): the config and its
// JSON, torch-default initialisation, the forward pass recorded on the autograd tape (the one
// reference path: training, inference, attacks and calibration all run it), batched inference and
// input gradients split over the thread pool (one tape per chunk of images), the TensorStore /
// safetensors form, and accuracy. Not here: training (vision_train.cpp), compressed variants and
// calibration (vision_variant.cpp), the dataset (idx.cpp). To add a layer kind: its parameters in
// param_layout(), its ops in VisionModel::forward, and its shape check in from_store (automatic
// when it appears in param_layout()).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "safeshrink/formats.h"
#include "safeshrink/kernels.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/vision.h"

namespace ss {

namespace {

constexpr const char* kConfigKey = "safeshrink.vision.config";
constexpr int64_t kMaxDim = 1 << 16;         // any single dimension of a config
constexpr int64_t kMaxLayers = 64;           // conv or hidden layers
constexpr int64_t kInferenceChunk = 128;     // images per tape in logits()/input_gradient()

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t fan_in;
  bool decay;
};

// Spatial size after the conv stack (3x3 pad 1 keeps it, 2x2 pool halves it, floor).
void conv_output_hw(const VisionConfig& c, int64_t& h, int64_t& w) {
  h = c.height;
  w = c.width;
  if (c.arch != "cnn") return;
  for (size_t i = 0; i < c.conv_channels.size(); ++i) {
    h /= 2;
    w /= 2;
  }
}

// Parameters in params() order: conv.i.{weight,bias} then fc.i.{weight,bias}; the last fc is the
// classifier.
std::vector<ParamSpec> param_layout(const VisionConfig& c) {
  std::vector<ParamSpec> out;
  int64_t in_ch = c.channels;
  if (c.arch == "cnn") {
    for (size_t i = 0; i < c.conv_channels.size(); ++i) {
      const int64_t oc = c.conv_channels[i], fan = in_ch * 9;
      const std::string p = "conv." + std::to_string(i) + ".";
      out.push_back({p + "weight", {oc, in_ch, 3, 3}, fan, true});
      out.push_back({p + "bias", {oc}, fan, false});
      in_ch = oc;
    }
  }
  int64_t h = 0, w = 0;
  conv_output_hw(c, h, w);
  int64_t features = in_ch * h * w;
  for (size_t i = 0; i <= c.hidden.size(); ++i) {
    const int64_t out_f = i < c.hidden.size() ? c.hidden[i] : c.n_classes;
    const std::string p = "fc." + std::to_string(i) + ".";
    out.push_back({p + "weight", {out_f, features}, features, true});
    out.push_back({p + "bias", {out_f}, features, false});
    features = out_f;
  }
  return out;
}

// Runs fn(begin, end) over chunks of [0, n) of at most `chunk` images on the pool; the first
// error wins.
Status for_image_chunks(ThreadPool& pool, int64_t n, int64_t chunk, const std::function<Status(int64_t, int64_t)>& fn) {
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  std::mutex mu;
  Status first;
  pool.parallel_for(n_chunks, [&](int64_t cb, int64_t ce, int) {
    for (int64_t c = cb; c < ce; ++c) {
      Status s = fn(c * chunk, std::min(n, (c + 1) * chunk));
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
      }
    }
  });
  return first;
}

}  // namespace

// ------------------------------------------------------------------------------------ config

Status VisionConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    return invalid_argument("vision config: " + field + " " + why);
  };
  if (arch != "cnn" && arch != "mlp") return bad("arch", "must be \"cnn\" or \"mlp\", got \"" + arch + "\"");
  if (channels < 1 || channels > 64) return bad("channels", "must be in [1, 64], got " + std::to_string(channels));
  if (height < 1 || height > 4096) return bad("height", "must be in [1, 4096], got " + std::to_string(height));
  if (width < 1 || width > 4096) return bad("width", "must be in [1, 4096], got " + std::to_string(width));
  if (n_classes < 2 || n_classes > kMaxDim) return bad("n_classes", "must be in [2, 65536], got " + std::to_string(n_classes));
  if (static_cast<int64_t>(conv_channels.size()) > kMaxLayers) return bad("conv_channels", "has more than 64 layers");
  if (static_cast<int64_t>(hidden.size()) > kMaxLayers) return bad("hidden", "has more than 64 layers");
  for (size_t i = 0; i < conv_channels.size(); ++i)
    if (conv_channels[i] < 1 || conv_channels[i] > 4096)
      return bad("conv_channels[" + std::to_string(i) + "]", "must be in [1, 4096], got " + std::to_string(conv_channels[i]));
  for (size_t i = 0; i < hidden.size(); ++i)
    if (hidden[i] < 1 || hidden[i] > kMaxDim)
      return bad("hidden[" + std::to_string(i) + "]", "must be in [1, 65536], got " + std::to_string(hidden[i]));
  if (arch == "cnn") {
    if (conv_channels.empty()) return bad("conv_channels", "must not be empty for a cnn");
    int64_t h = 0, w = 0;
    conv_output_hw(*this, h, w);
    if (h < 1 || w < 1)
      return bad("conv_channels", "has " + std::to_string(conv_channels.size()) + " 2x2 pools, too many for " +
                                      std::to_string(height) + "x" + std::to_string(width) + " images");
  }
  if (!(dropout >= 0.0 && dropout < 1.0)) return bad("dropout", "must be in [0, 1), got " + std::to_string(dropout));
  int64_t h = 0, w = 0;
  conv_output_hw(*this, h, w);
  const int64_t flat = (arch == "cnn" ? conv_channels.back() : channels) * h * w;
  if (flat > (int64_t{1} << 24)) return bad("height/width", "give more than 2^24 flattened features");
  return ok_status();
}

nlohmann::json VisionConfig::to_json() const {
  return {{"arch", arch},       {"channels", channels},           {"height", height}, {"width", width},
          {"n_classes", n_classes}, {"conv_channels", arch == "cnn" ? conv_channels : std::vector<int64_t>{}},
          {"hidden", hidden},   {"dropout", dropout}};
}

Result<VisionConfig> VisionConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return invalid_argument("vision config: expected a JSON object, got " + std::string(j.type_name()));
  VisionConfig c;
  try {
    if (j.contains("arch")) c.arch = j.at("arch").get<std::string>();
    if (j.contains("channels")) c.channels = j.at("channels").get<int64_t>();
    if (j.contains("height")) c.height = j.at("height").get<int64_t>();
    if (j.contains("width")) c.width = j.at("width").get<int64_t>();
    if (j.contains("n_classes")) c.n_classes = j.at("n_classes").get<int64_t>();
    if (j.contains("conv_channels")) c.conv_channels = j.at("conv_channels").get<std::vector<int64_t>>();
    if (j.contains("hidden")) c.hidden = j.at("hidden").get<std::vector<int64_t>>();
    if (j.contains("dropout")) c.dropout = j.at("dropout").get<double>();
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("vision config: ") + e.what());
  }
  if (c.arch == "mlp") c.conv_channels.clear();
  SS_RETURN_IF_ERROR(c.validate());
  return c;
}

// ------------------------------------------------------------------------------------ model

Result<VisionModel> VisionModel::init_random(const VisionConfig& cfg, uint64_t seed) {
  SS_RETURN_IF_ERROR(cfg.validate());
  VisionModel m;
  m.cfg_ = cfg;
  if (m.cfg_.arch == "mlp") m.cfg_.conv_channels.clear();
  Rng rng(seed);
  for (ParamSpec& s : param_layout(m.cfg_)) {
    Param p;
    p.name = std::move(s.name);
    p.shape = std::move(s.shape);
    p.decay = s.decay;
    // kaiming_uniform(a = sqrt(5)) and the bias rule both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.fan_in)));
    p.value.resize(static_cast<size_t>(p.numel()));
    for (float& v : p.value) v = rng.uniform(-bound, bound);
    m.params_.push_back(std::move(p));
  }
  return m;
}

const Param* VisionModel::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

Param* VisionModel::find(const std::string& name) {
  for (Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

ag::Var VisionModel::forward(ag::Tape<float>& t, ag::Var x, bool param_grads, std::vector<ag::Var>* param_vars,
                             const VisionForwardHooks* hooks, uint64_t dropout_seed) const {
  std::vector<ag::Var> leaves;
  leaves.reserve(params_.size());
  for (const Param& p : params_) leaves.push_back(t.leaf(p.shape, p.value, param_grads));
  if (param_vars) *param_vars = leaves;
  auto layer_input = [&](ag::Var h, const std::string& weight) {
    return hooks && hooks->layer_input ? hooks->layer_input(t, h, weight) : h;
  };
  const int64_t n = x.valid() ? t.shape(x)[0] : 0;
  ag::Var h = x;
  size_t k = 0;  // next parameter
  if (cfg_.arch == "cnn") {
    for (size_t i = 0; i < cfg_.conv_channels.size(); ++i, k += 2) {
      h = layer_input(h, params_[k].name);
      h = ag::conv2d(t, h, leaves[k], leaves[k + 1], 1, 1);  // (N, O, H, W)
      h = ag::relu(t, h);
      h = ag::max_pool2d(t, h, 2, 2);                        // (N, O, H/2, W/2)
    }
  }
  h = ag::reshape(t, h, {n, -1});  // (N, features)
  const size_t n_fc = cfg_.hidden.size() + 1;
  for (size_t i = 0; i < n_fc; ++i, k += 2) {
    h = layer_input(h, params_[k].name);
    h = ag::linear(t, h, leaves[k], leaves[k + 1]);  // (N, out)
    if (i + 1 == n_fc) break;
    h = ag::relu(t, h);
    if (cfg_.dropout > 0) h = ag::dropout(t, h, cfg_.dropout, dropout_seed * 1000003ull + i);
  }
  return h;  // (N, n_classes)
}

Result<std::vector<float>> VisionModel::logits(const float* x, int64_t n, ThreadPool* pool,
                                               const VisionForwardHooks* hooks) const {
  if (n < 0 || (n > 0 && !x)) return invalid_argument("VisionModel::logits: bad image pointer or count " + std::to_string(n));
  const int64_t img = cfg_.channels * cfg_.height * cfg_.width, nc = cfg_.n_classes;
  std::vector<float> out(static_cast<size_t>(n * nc));
  ThreadPool& p = pool ? *pool : default_pool();
  SS_RETURN_IF_ERROR(for_image_chunks(p, n, kInferenceChunk, [&](int64_t b, int64_t e) -> Status {
    ag::Tape<float> t(&p);
    t.training = false;
    ag::Var xv = t.leaf({e - b, cfg_.channels, cfg_.height, cfg_.width},
                        std::vector<float>(x + b * img, x + e * img), false);
    ag::Var y = forward(t, xv, false, nullptr, hooks);
    SS_RETURN_IF_ERROR(t.status());
    std::memcpy(out.data() + b * nc, t.value(y).data(), static_cast<size_t>((e - b) * nc) * sizeof(float));
    return ok_status();
  }));
  return out;
}

Result<std::vector<int32_t>> VisionModel::predict(const float* x, int64_t n, ThreadPool* pool) const {
  SS_ASSIGN_OR_RETURN(std::vector<float> z, logits(x, n, pool));
  const int64_t nc = cfg_.n_classes;
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = z.data() + i * nc;
    out[i] = static_cast<int32_t>(std::max_element(row, row + nc) - row);
  }
  return out;
}

Result<double> VisionModel::input_gradient(const float* x, const int32_t* labels, int64_t n, std::vector<float>& grad,
                                           const VisionForwardHooks* hooks, ThreadPool* pool) const {
  if (n <= 0 || !x || !labels) return invalid_argument("VisionModel::input_gradient: needs n > 0 images and labels");
  const int64_t img = cfg_.channels * cfg_.height * cfg_.width;
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= cfg_.n_classes)
      return invalid_argument("VisionModel::input_gradient: label " + std::to_string(labels[i]) + " of image " +
                              std::to_string(i) + " is outside [0, " + std::to_string(cfg_.n_classes) + ")");
  grad.assign(static_cast<size_t>(n * img), 0.0f);
  std::vector<double> chunk_loss(static_cast<size_t>((n + kInferenceChunk - 1) / kInferenceChunk), 0.0);
  ThreadPool& p = pool ? *pool : default_pool();
  SS_RETURN_IF_ERROR(for_image_chunks(p, n, kInferenceChunk, [&](int64_t b, int64_t e) -> Status {
    ag::Tape<float> t(&p);
    t.training = false;
    ag::Var xv = t.leaf({e - b, cfg_.channels, cfg_.height, cfg_.width},
                        std::vector<float>(x + b * img, x + e * img), true);
    ag::Var y = forward(t, xv, false, nullptr, hooks);
    // Each chunk's mean CE is weighted by its share of n, so the sum is the mean over all n.
    const float share = static_cast<float>(e - b) / static_cast<float>(n);
    ag::Var loss = ag::cross_entropy(t, y, std::vector<int32_t>(labels + b, labels + e), {});
    SS_RETURN_IF_ERROR(t.status());
    chunk_loss[static_cast<size_t>(b / kInferenceChunk)] = static_cast<double>(t.value(loss)[0]) * share;
    ag::Var scaled = ag::scale(t, loss, share);
    SS_RETURN_IF_ERROR(t.backward(scaled));
    const std::vector<float>& g = t.grad(xv);
    std::memcpy(grad.data() + b * img, g.data(), g.size() * sizeof(float));
    return ok_status();
  }));
  double total = 0;
  for (double l : chunk_loss) total += l;
  return total;
}

// ------------------------------------------------------------------------------------ files

Result<TensorStore> VisionModel::to_store(DType dtype) const {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    return invalid_argument(std::string("VisionModel::to_store: dtype must be F32, F16 or BF16, got ") + dtype_info(dtype).name);
  TensorStore s;
  s.format = "safetensors";
  s.meta.set(kConfigKey, MetaValue::of_string(cfg_.to_json().dump()));
  for (const Param& p : params_) {
    const DType dt = p.shape.size() >= 2 ? dtype : DType::F32;  // biases stay F32
    SS_ASSIGN_OR_RETURN(Tensor t, Tensor::zeros(p.name, dt, p.shape));
    for (int64_t r = 0; r < t.rows(); ++r)
      kernels::quantize_row_ref(dt, p.value.data() + r * t.cols(), t.mutable_data() + r * t.row_bytes(), t.cols());
    SS_RETURN_IF_ERROR(s.add(std::move(t)));
  }
  return s;
}

Result<VisionModel> VisionModel::from_store(const TensorStore& store) {
  const MetaValue* mv = store.meta.find(kConfigKey);
  if (!mv || mv->type != MetaType::STRING)
    return not_found("VisionModel::from_store: " + (store.path.empty() ? std::string("store") : store.path) +
                     " has no string metadata \"" + kConfigKey + "\" (not a safeshrink vision model)");
  nlohmann::json j = nlohmann::json::parse(mv->s, nullptr, false);
  if (j.is_discarded()) return invalid_argument(std::string("VisionModel::from_store: metadata ") + kConfigKey + " is not valid JSON");
  SS_ASSIGN_OR_RETURN(VisionConfig cfg, VisionConfig::from_json(j));
  VisionModel m;
  m.cfg_ = cfg;
  for (ParamSpec& s : param_layout(cfg)) {
    const Tensor* t = store.find(s.name);
    if (!t) return not_found("VisionModel::from_store: tensor '" + s.name + "' is missing");
    Param p;
    p.name = std::move(s.name);
    p.shape = std::move(s.shape);
    p.decay = s.decay;
    // A conv weight may come back as its (out, in*3*3) matrix (a block-quantized variant keeps the
    // 2-D shape its rows were quantized in); the element order is the same.
    const bool as_matrix = p.shape.size() == 4 && t->shape.size() == 2 && t->shape[0] == p.shape[0] &&
                           t->shape[1] == p.numel() / p.shape[0];
    if (t->shape != p.shape && !as_matrix) {
      std::string want = "[";
      for (size_t i = 0; i < p.shape.size(); ++i) want += (i ? ", " : "") + std::to_string(p.shape[i]);
      return invalid_argument("VisionModel::from_store: tensor '" + p.name + "' has shape " + t->shape_string() +
                              ", the config needs " + want + "]");
    }
    SS_ASSIGN_OR_RETURN(p.value, kernels::dequantize(*t));
    if (static_cast<int64_t>(p.value.size()) != p.numel())
      return invalid_argument("VisionModel::from_store: tensor '" + p.name + "' dequantized to " +
                              std::to_string(p.value.size()) + " values, expected " + std::to_string(p.numel()));
    m.params_.push_back(std::move(p));
  }
  return m;
}

Status save_vision_model(const VisionModel& model, const std::string& path) {
  SS_ASSIGN_OR_RETURN(TensorStore s, model.to_store(DType::F32));
  const std::string ext = ".safetensors";
  std::error_code ec;
  if (path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return io_error("save_vision_model: cannot create folder " + parent.string() + ": " + ec.message());
    return write_safetensors(s, path);
  }
  std::filesystem::create_directories(path, ec);
  if (ec) return io_error("save_vision_model: cannot create folder " + path + ": " + ec.message());
  SS_RETURN_IF_ERROR(write_safetensors(s, path + "/model.safetensors"));
  std::ofstream f(path + "/config.json", std::ios::binary | std::ios::trunc);
  if (!f) return io_error("save_vision_model: cannot write " + path + "/config.json");
  f << model.config().to_json().dump(2) << "\n";
  if (!f) return io_error("save_vision_model: write failed for " + path + "/config.json");
  return ok_status();
}

Result<VisionModel> load_vision_model(const std::string& path) {
  std::error_code ec;
  const std::string file = std::filesystem::is_directory(path, ec) ? path + "/model.safetensors" : path;
  SS_ASSIGN_OR_RETURN(TensorStore s, read_safetensors(file));
  Result<VisionModel> m = VisionModel::from_store(s);
  if (!m.ok()) return m.status().with_context(file);
  return m;
}

Result<AccuracyResult> vision_accuracy(const VisionModel& model, const ImageSet& set, ThreadPool* pool) {
  const VisionConfig& c = model.config();
  if (set.channels != c.channels || set.height != c.height || set.width != c.width)
    return invalid_argument("vision_accuracy: images of " + set.source + " are " + std::to_string(set.channels) + "x" +
                            std::to_string(set.height) + "x" + std::to_string(set.width) + ", the model takes " +
                            std::to_string(c.channels) + "x" + std::to_string(c.height) + "x" + std::to_string(c.width));
  if (static_cast<int64_t>(set.labels.size()) != set.n ||
      static_cast<int64_t>(set.pixels.size()) != set.n * set.image_size())
    return invalid_argument("vision_accuracy: image set " + set.source + " has inconsistent pixel/label counts");
  SS_ASSIGN_OR_RETURN(std::vector<int32_t> pred, model.predict(set.pixels.data(), set.n, pool));
  AccuracyResult r;
  r.n = set.n;
  for (int64_t i = 0; i < set.n; ++i) r.correct += pred[i] == set.labels[i];
  return r;
}

}  // namespace ss

// Compressed variants of the vision classifiers (vision.h, "compressed variants"): calibration
// statistics of every conv and fc input captured through the forward hooks (a conv's input
// columns are its im2col columns, k = C*3*3, one row per output position; an fc's are its input
// features, one row per image), and vision_variant(), which runs any compress_variant spec on the
// model's F32 store and binds the (dequantized) result back to a VisionModel. Conv weights reach
// the quantizers and pruners as (out, in*3*3) matrices (compress/plan.cpp, prune/registry.cpp).
// Not here: the units themselves (compress/), the model (vision_model.cpp).
// To add a statistic: accumulate it in accumulate_rows() and give it a field in LinearInputStats.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <Eigen/Dense>
#include <openssl/evp.h>

#include "safeshrink/thread_pool.h"
#include "safeshrink/vision.h"

namespace ss {

namespace {

constexpr int64_t kCalibrationChunk = 64;  // images per tape while capturing

// rows (r, k) row-major of one layer's inputs, added to the statistics.
void accumulate_rows(LinearInputStats& st, const std::vector<double>& rows, int64_t r, bool hessian) {
  const int64_t k = st.k;
  for (int64_t i = 0; i < r; ++i)
    for (int64_t c = 0; c < k; ++c) {
      const double v = rows[static_cast<size_t>(i * k + c)];
      st.sum_sq[c] += v * v;
      st.sum_abs[c] += std::fabs(v);
    }
  st.rows += r;
  if (hessian) {
    Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> x(rows.data(), r, k);
    Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> h(st.xtx.data(), k, k);
    h.noalias() += x.transpose() * x;  // (k, k)
  }
}

// im2col rows of x (N, C, H, W) for a 3x3 stride-1 pad-1 conv: one row per (n, oy, ox), columns
// (c, ky, kx) in the weight's order -> (N*H*W, C*9).
std::vector<double> conv_input_rows(const float* x, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t k = C * 9;
  std::vector<double> rows(static_cast<size_t>(N * H * W * k), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < H; ++oy)
      for (int64_t ox = 0; ox < W; ++ox) {
        double* row = rows.data() + ((n * H + oy) * W + ox) * k;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t iy = oy - 1 + ky, ix = ox - 1 + kx;
              if (iy >= 0 && iy < H && ix >= 0 && ix < W) row[(c * 3 + ky) * 3 + kx] = x[((n * C + c) * H + iy) * W + ix];
            }
      }
  return rows;
}

std::string sha256_hex(const void* data, size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, n, md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

bool is_layer_weight(const Param& p) { return p.shape.size() >= 2; }

}  // namespace

Result<Calibration> capture_vision_calibration(const VisionModel& model, const ImageSet& images, int64_t n_samples,
                                               ThreadPool* pool, bool hessian) {
  const VisionConfig& c = model.config();
  if (images.channels != c.channels || images.height != c.height || images.width != c.width)
    return invalid_argument("capture_vision_calibration: images of " + images.source + " do not match the model's input");
  if (n_samples < 1) return invalid_argument("capture_vision_calibration: n_samples must be >= 1, got " + std::to_string(n_samples));
  const int64_t n = std::min(n_samples, images.n);
  if (n < 1 || static_cast<int64_t>(images.pixels.size()) < n * images.image_size())
    return invalid_argument("capture_vision_calibration: image set " + images.source + " is empty or truncated");

  Calibration cal;
  cal.spec.source = images.source;
  cal.spec.n_samples = n;
  cal.spec.seq_len = 1;
  cal.spec.seed = 0;
  cal.spec.hessian = hessian;
  cal.sha256 = sha256_hex(images.pixels.data(), static_cast<size_t>(n * images.image_size()) * sizeof(float));
  for (const Param& p : model.params()) {
    if (!is_layer_weight(p)) continue;
    LinearInputStats st;
    st.tensor = p.name;
    st.k = p.numel() / p.shape[0];
    st.sum_sq.assign(static_cast<size_t>(st.k), 0.0);
    st.sum_abs.assign(static_cast<size_t>(st.k), 0.0);
    if (hessian) st.xtx.assign(static_cast<size_t>(st.k * st.k), 0.0);
    cal.linears.push_back(std::move(st));
  }
  Status hook_error;
  VisionForwardHooks hooks;
  hooks.layer_input = [&](ag::Tape<float>& t, ag::Var x, const std::string& weight) {
    LinearInputStats* st = nullptr;
    for (auto& l : cal.linears)
      if (l.tensor == weight) st = &l;
    if (!st || !x.valid()) return x;
    const ag::Shape& s = t.shape(x);
    const std::vector<float>& v = t.value(x);
    if (s.size() == 4) {  // conv input (N, C, H, W)
      if (s[1] * 9 != st->k) {
        hook_error = internal_error("capture_vision_calibration: " + weight + " input has " + std::to_string(s[1]) + " channels");
        return x;
      }
      accumulate_rows(*st, conv_input_rows(v.data(), s[0], s[1], s[2], s[3]), s[0] * s[2] * s[3], hessian);
    } else {  // fc input (N, k)
      const int64_t r = s[0];
      if (r * st->k != static_cast<int64_t>(v.size())) {
        hook_error = internal_error("capture_vision_calibration: " + weight + " input has the wrong width");
        return x;
      }
      accumulate_rows(*st, std::vector<double>(v.begin(), v.end()), r, hessian);
    }
    return x;
  };
  // Serial over chunks: the hook accumulates into shared statistics.
  const int64_t img = images.image_size();
  for (int64_t b = 0; b < n; b += kCalibrationChunk) {
    const int64_t e = std::min(n, b + kCalibrationChunk);
    ag::Tape<float> t(pool);
    t.training = false;
    ag::Var x = t.leaf({e - b, c.channels, c.height, c.width},
                       std::vector<float>(images.pixels.begin() + b * img, images.pixels.begin() + e * img), false);
    model.forward(t, x, false, nullptr, &hooks);
    SS_RETURN_IF_ERROR(t.status());
    SS_RETURN_IF_ERROR(hook_error);
  }
  return cal;
}

Result<VisionVariant> vision_variant(const VisionModel& model, std::string_view spec, const ImageSet* calibration_images,
                                     ThreadPool* pool, const nlohmann::json& overrides) {
  SS_ASSIGN_OR_RETURN(TensorStore store, model.to_store(DType::F32));
  std::shared_ptr<const Calibration> cached;
  CompressContext ctx;
  ctx.pool = pool;
  ctx.calibrate = [&](bool hessian) -> Result<std::shared_ptr<const Calibration>> {
    if (!calibration_images)
      return invalid_argument("vision_variant: '" + std::string(spec) +
                              "' needs calibration images (none were given)");
    if (!cached || (hessian && !cached->spec.hessian)) {
      SS_ASSIGN_OR_RETURN(Calibration c, capture_vision_calibration(model, *calibration_images,
                                                                    kVisionCalibrationImages, pool, hessian));
      cached = std::make_shared<const Calibration>(std::move(c));
    }
    return cached;
  };
  Result<CompressOutput> out = compress_variant(store, spec, ctx, overrides);
  if (!out.ok()) return out.status().with_context("vision_variant '" + std::string(spec) + "'");
  SS_ASSIGN_OR_RETURN(VisionModel vm, VisionModel::from_store(out->store));
  VisionVariant v;
  v.spec = std::string(spec);
  v.plan = std::move(out->plan);
  // bits/weight and sparsity over the conv and fc weights: a plan line's bits where the unit wrote
  // one (quantizers list every tensor, pruners only what they touched), else the stored dtype's.
  double bits = 0, weights = 0, zeros = 0;
  for (const Param& p : vm.params()) {
    if (!is_layer_weight(p)) continue;
    double b = 32;
    if (const Tensor* t = out->store.find(p.name)) b = dtype_bits_per_weight(t->dtype);
    for (const PlanEntry& e : v.plan.entries)
      if (e.tensor == p.name) b = e.bits_per_weight;
    const double n = static_cast<double>(p.numel());
    bits += b * n;
    weights += n;
    for (float w : p.value) zeros += w == 0.0f;
  }
  v.bits_per_weight = weights > 0 ? bits / weights : 0;
  v.sparsity = weights > 0 ? zeros / weights : 0;
  v.model = std::move(vm);
  return v;
}

}  // namespace ss

// Backdoor triggers and poisoning (contract: include/safeshrink/backdoor.h): the spec parser, the
// BadNets patch (Gu et al. 2017) and the blended trigger (Chen et al. 2017) applied to images, and
// the seeded choice of images to poison. Not here: training (vision.h) or measuring (metrics).
// To add a trigger kind: parse its fields in parse_trigger, print them in trigger_to_string, draw
// it in apply_trigger, and say so in the header's grammar comment.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "safeshrink/backdoor.h"
#include "safeshrink/rng.h"

namespace ss {
namespace {

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // shortest form that reads back exactly
  for (int prec = 1; prec <= 17; ++prec) {
    char s[64];
    std::snprintf(s, sizeof s, "%.*g", prec, v);
    if (std::strtod(s, nullptr) == v) return s;
  }
  return buf;
}

Status field_error(std::string_view spec, const std::string& field, const std::string& expected,
                   const std::string& got) {
  return invalid_argument("trigger '" + std::string(spec) + "': field " + field + ": expected " + expected + ", got '" +
                          got + "'");
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0') return false;
  out = v;
  return true;
}

bool parse_real(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v)) return false;
  out = v;
  return true;
}

bool is_corner(const std::string& p) {
  return p == "tl" || p == "tr" || p == "bl" || p == "br" || p == "center";
}

}  // namespace

Status TriggerSpec::validate(int64_t channels, int64_t height, int64_t width) const {
  if (channels < 1 || height < 1 || width < 1) return invalid_argument("trigger: image shape must be positive");
  if (kind == "patch") {
    if (size < 1 || size > height || size > width)
      return invalid_argument("trigger: field size: expected 1.." + std::to_string(std::min(height, width)) +
                              " for a " + std::to_string(height) + "x" + std::to_string(width) + " image, got " +
                              std::to_string(size));
    auto [px, py] = trigger_patch_origin(*this, height, width);
    if (px < 0 || py < 0 || px + size > width || py + size > height)
      return invalid_argument("trigger: field pos: the patch at x=" + std::to_string(px) + ", y=" + std::to_string(py) +
                              " of size " + std::to_string(size) + " does not fit a " + std::to_string(height) + "x" +
                              std::to_string(width) + " image");
    return ok_status();
  }
  if (kind == "blend") return ok_status();
  return invalid_argument("trigger: field kind: expected patch or blend, got '" + kind + "'");
}

nlohmann::json TriggerSpec::to_json() const {
  nlohmann::json j = {{"kind", kind}, {"spec", trigger_to_string(*this)}};
  if (kind == "patch") {
    j["size"] = size;
    j["pos"] = pos;
    j["x"] = x;
    j["y"] = y;
    j["margin"] = margin;
    j["value"] = value;
    j["pattern"] = pattern;
  } else {
    j["pattern"] = pattern;
    j["alpha"] = alpha;
    j["seed"] = seed;
    j["period"] = period;
  }
  return j;
}

Result<TriggerSpec> parse_trigger(std::string_view spec) {
  const size_t colon = spec.find(':');
  TriggerSpec t;
  t.kind = std::string(spec.substr(0, colon));
  if (t.kind != "patch" && t.kind != "blend")
    return field_error(spec, "kind", "patch or blend (e.g. patch:size=3,pos=br,value=1)", t.kind);
  t.pattern = t.kind == "patch" ? "solid" : "noise";
  bool saw_pos = false, saw_x = false, saw_y = false;
  std::string rest = colon == std::string_view::npos ? std::string() : std::string(spec.substr(colon + 1));
  size_t start = 0;
  while (start < rest.size()) {
    size_t comma = rest.find(',', start);
    if (comma == std::string::npos) comma = rest.size();
    const std::string item = rest.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return field_error(spec, item, "field=value", item);
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    const bool patch = t.kind == "patch";
    if (patch && key == "size") {
      if (!parse_int(val, t.size) || t.size < 1) return field_error(spec, key, "an integer >= 1", val);
    } else if (patch && key == "pos") {
      saw_pos = true;
      const size_t sep = val.find(':');
      if (sep != std::string::npos) {
        if (!parse_int(val.substr(0, sep), t.x) || !parse_int(val.substr(sep + 1), t.y) || t.x < 0 || t.y < 0)
          return field_error(spec, key, "a corner (tl tr bl br center) or X:Y with X, Y >= 0", val);
        t.pos = "";
      } else {
        if (!is_corner(val)) return field_error(spec, key, "a corner (tl tr bl br center) or X:Y", val);
        t.pos = val;
      }
    } else if (patch && (key == "x" || key == "y")) {
      int64_t& dst = key == "x" ? t.x : t.y;
      if (!parse_int(val, dst) || dst < 0) return field_error(spec, key, "an integer >= 0", val);
      (key == "x" ? saw_x : saw_y) = true;
    } else if (patch && key == "margin") {
      if (!parse_int(val, t.margin) || t.margin < 0) return field_error(spec, key, "an integer >= 0", val);
    } else if (patch && key == "value") {
      if (!parse_real(val, t.value) || t.value < 0 || t.value > 1) return field_error(spec, key, "a number in [0, 1]", val);
    } else if (key == "pattern") {
      const bool ok = patch ? (val == "solid" || val == "checker")
                            : (val == "noise" || val == "stripes" || val == "kitty" || val == "hello-kitty");
      if (!ok) return field_error(spec, key, patch ? "solid or checker" : "noise, stripes or kitty", val);
      t.pattern = val == "hello-kitty" ? "kitty" : val;
    } else if (!patch && key == "alpha") {
      if (!parse_real(val, t.alpha) || t.alpha < 0 || t.alpha > 1) return field_error(spec, key, "a number in [0, 1]", val);
    } else if (!patch && key == "seed") {
      int64_t s = 0;
      if (!parse_int(val, s) || s < 0) return field_error(spec, key, "an integer >= 0", val);
      t.seed = static_cast<uint64_t>(s);
    } else if (!patch && key == "period") {
      if (!parse_int(val, t.period) || t.period < 1) return field_error(spec, key, "an integer >= 1", val);
    } else {
      return field_error(spec, key,
                         patch ? "one of size, pos, x, y, margin, value, pattern" : "one of pattern, alpha, seed, period",
                         item);
    }
  }
  if (saw_x != saw_y) return field_error(spec, saw_x ? "y" : "x", "x and y given together", "missing");
  if (saw_x && saw_pos && !t.pos.empty()) return field_error(spec, "pos", "either pos=<corner> or x/y, not both", t.pos);
  if (saw_x) t.pos = "";
  return t;
}

std::string trigger_to_string(const TriggerSpec& t) {
  if (t.kind == "patch") {
    std::string s = "patch:size=" + std::to_string(t.size) + ",pos=";
    s += t.pos.empty() ? std::to_string(t.x) + ":" + std::to_string(t.y) : t.pos;
    s += ",margin=" + std::to_string(t.margin) + ",value=" + fmt_double(t.value) + ",pattern=" + t.pattern;
    return s;
  }
  return "blend:pattern=" + t.pattern + ",alpha=" + fmt_double(t.alpha) + ",seed=" + std::to_string(t.seed) +
         ",period=" + std::to_string(t.period);
}

std::pair<int64_t, int64_t> trigger_patch_origin(const TriggerSpec& t, int64_t height, int64_t width) {
  if (t.pos.empty()) return {t.x, t.y};
  const int64_t m = t.margin, s = t.size;
  if (t.pos == "tl") return {m, m};
  if (t.pos == "tr") return {width - m - s, m};
  if (t.pos == "bl") return {m, height - m - s};
  if (t.pos == "br") return {width - m - s, height - m - s};
  return {(width - s) / 2, (height - s) / 2};  // center
}

std::vector<float> trigger_blend_pattern(const TriggerSpec& t, int64_t channels, int64_t height, int64_t width) {
  std::vector<float> p(static_cast<size_t>(channels * height * width), 0.0f);
  if (t.pattern == "noise") {
    Rng rng(t.seed);
    for (float& v : p) v = static_cast<float>(rng.uniform());
    return p;
  }
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x) {
        float v = 0.0f;
        if (t.pattern == "stripes") {
          v = (y / t.period) % 2 == 0 ? 1.0f : 0.0f;
        } else {  // kitty: coordinates relative to the image, in units of the shorter side
          const double s = static_cast<double>(std::min(height, width));
          const double u = (x + 0.5 - width / 2.0) / s, w = (y + 0.5 - height / 2.0) / s;  // centred, [-0.5, 0.5]
          const bool face = u * u + (w - 0.05) * (w - 0.05) < 0.33 * 0.33;
          const bool left_ear = w < -0.15 && w > -0.45 && u < -0.1 && u > -0.42 && (-0.15 - w) > (u + 0.42) * 0.2;
          const bool right_ear = w < -0.15 && w > -0.45 && u > 0.1 && u < 0.42 && (-0.15 - w) > (0.42 - u) * 0.2;
          const bool eye = (std::abs(u - 0.13) < 0.04 || std::abs(u + 0.13) < 0.04) && std::abs(w - 0.02) < 0.06;
          const bool nose = std::abs(u) < 0.04 && std::abs(w - 0.14) < 0.03;
          if (left_ear || right_ear) v = 1.0f;
          else if (face) v = (eye || nose) ? 0.0f : 0.8f;
        }
        p[static_cast<size_t>((c * height + y) * width + x)] = v;
      }
  return p;
}

void apply_trigger(const TriggerSpec& t, float* image, int64_t channels, int64_t height, int64_t width) {
  if (t.kind == "patch") {
    auto [px, py] = trigger_patch_origin(t, height, width);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t dy = 0; dy < t.size; ++dy)
        for (int64_t dx = 0; dx < t.size; ++dx) {
          const int64_t y = py + dy, x = px + dx;
          if (y < 0 || y >= height || x < 0 || x >= width) continue;
          const double v = t.pattern == "checker" && (dy + dx) % 2 == 1 ? 1.0 - t.value : t.value;
          image[(c * height + y) * width + x] = static_cast<float>(v);
        }
    return;
  }
  const std::vector<float> p = trigger_blend_pattern(t, channels, height, width);
  const float a = static_cast<float>(t.alpha);
  for (size_t i = 0; i < p.size(); ++i) {
    const float v = (1.0f - a) * image[i] + a * p[i];
    image[i] = std::clamp(v, 0.0f, 1.0f);
  }
}

Result<ImageSet> triggered_copy(const ImageSet& set, const TriggerSpec& t) {
  SS_RETURN_IF_ERROR(t.validate(set.channels, set.height, set.width));
  ImageSet out = set;
  if (t.kind == "blend") {  // the pattern once, not per image
    const std::vector<float> p = trigger_blend_pattern(t, set.channels, set.height, set.width);
    const float a = static_cast<float>(t.alpha);
    const int64_t sz = set.image_size();
    for (int64_t i = 0; i < set.n; ++i) {
      float* img = out.pixels.data() + i * sz;
      for (int64_t k = 0; k < sz; ++k) img[k] = std::clamp((1.0f - a) * img[k] + a * p[k], 0.0f, 1.0f);
    }
    return out;
  }
  for (int64_t i = 0; i < set.n; ++i)
    apply_trigger(t, out.pixels.data() + i * set.image_size(), set.channels, set.height, set.width);
  return out;
}

Status PoisonConfig::validate(int64_t n_classes) const {
  if (!(rate >= 0.0 && rate < 1.0)) return invalid_argument("poison: field rate: expected [0, 1), got " + fmt_double(rate));
  if (target < 0 || target >= n_classes)
    return invalid_argument("poison: field target: expected 0.." + std::to_string(n_classes - 1) + ", got " +
                            std::to_string(target));
  if (mode != "replace" && mode != "add")
    return invalid_argument("poison: field mode: expected replace or add, got '" + mode + "'");
  return ok_status();
}

nlohmann::json PoisonConfig::to_json() const {
  return {{"rate", rate}, {"target", target}, {"seed", seed}, {"mode", mode}};
}

Result<PoisonedSet> poison_training_set(const ImageSet& clean, const TriggerSpec& trigger, const PoisonConfig& cfg) {
  int64_t n_classes = 0;
  for (int32_t l : clean.labels) n_classes = std::max<int64_t>(n_classes, l + 1);
  SS_RETURN_IF_ERROR(cfg.validate(std::max<int64_t>(n_classes, cfg.target + 1)));
  SS_RETURN_IF_ERROR(trigger.validate(clean.channels, clean.height, clean.width));
  std::vector<int64_t> candidates;
  for (int64_t i = 0; i < clean.n; ++i)
    if (clean.labels[static_cast<size_t>(i)] != cfg.target) candidates.push_back(i);
  const int64_t n_poison = static_cast<int64_t>(std::llround(cfg.rate * static_cast<double>(clean.n)));
  if (n_poison > static_cast<int64_t>(candidates.size()))
    return invalid_argument("poison: field rate: " + std::to_string(n_poison) + " images to poison but only " +
                            std::to_string(candidates.size()) + " have a label other than the target");
  Rng rng(cfg.seed);
  for (int64_t i = 0; i < n_poison; ++i) {  // partial Fisher-Yates: the first n_poison are the choice
    const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(candidates.size() - i)));
    std::swap(candidates[static_cast<size_t>(i)], candidates[static_cast<size_t>(j)]);
  }
  PoisonedSet out;
  out.chosen.assign(candidates.begin(), candidates.begin() + n_poison);
  std::sort(out.chosen.begin(), out.chosen.end());
  out.set = clean;
  const int64_t sz = clean.image_size();
  if (cfg.mode == "add") {
    out.set.n = clean.n + n_poison;
    out.set.pixels.resize(static_cast<size_t>(out.set.n * sz));
    out.set.labels.resize(static_cast<size_t>(out.set.n));
  }
  for (int64_t k = 0; k < n_poison; ++k) {
    const int64_t src = out.chosen[static_cast<size_t>(k)];
    const int64_t dst = cfg.mode == "add" ? clean.n + k : src;
    float* img = out.set.pixels.data() + dst * sz;
    std::copy(clean.image(src), clean.image(src) + sz, img);
    apply_trigger(trigger, img, clean.channels, clean.height, clean.width);
    out.set.labels[static_cast<size_t>(dst)] = cfg.target;
  }
  return out;
}

std::string backdoor_sidecar_path(const std::string& model_path) {
  std::string p = model_path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const bool is_file = p.size() >= 12 && p.compare(p.size() - 12, 12, ".safetensors") == 0;
  return is_file ? p + ".backdoor.json" : p + "/backdoor.json";
}

}  // namespace ss

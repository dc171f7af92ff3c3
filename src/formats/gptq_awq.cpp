// GPTQ (AutoGPTQ v1 / GPTQModel v2) and AWQ (AutoAWQ GEMM) packed safetensors: packing one
// GroupQuantizedLinear into qweight/qzeros/scales(/g_idx), unpacking it back, and whole HF
// folders in and out (see the layout contract in include/safeshrink/formats.h). Written from the
// published layouts, not from their code. Not here: producing the codes (compress/quant/), kernels
// that run packed weights (the reader dequantizes to F32). To add one more packing (e.g. AWQ
// GEMV or Marlin): a PackedQuantFormat value, its pack/unpack branch, its name in config.json.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "safeshrink/formats.h"
#include "safeshrink/half.h"
#include "safeshrink/quant_gptq_awq.h"

namespace ss {

namespace {

namespace fs = std::filesystem;

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble k of a word holds column 8c + kAwqOrder[k]
constexpr int64_t kMaxFeatures = int64_t{1} << 24;
constexpr uint64_t kMaxConfigBytes = 16u << 20;

bool is_gptq(PackedQuantFormat f) { return f == PackedQuantFormat::GPTQ_V1 || f == PackedQuantFormat::GPTQ_V2; }

// Writes `bits`-wide value v at stream position i of a little-endian uint32 word stream.
void put_bits(uint32_t* words, int64_t stride, int64_t i, int bits, uint32_t v) {
  const int64_t bit = i * bits;
  const int64_t w = bit / 32, off = bit % 32;
  const uint32_t mask = (bits == 32) ? 0xffffffffu : ((1u << bits) - 1u);
  v &= mask;
  words[w * stride] |= v << off;
  if (off + bits > 32) words[(w + 1) * stride] |= v >> (32 - off);
}

uint32_t get_bits(const uint32_t* words, int64_t stride, int64_t i, int bits) {
  const int64_t bit = i * bits;
  const int64_t w = bit / 32, off = bit % 32;
  uint64_t v = words[w * stride] >> off;
  if (off + bits > 32) v |= static_cast<uint64_t>(words[(w + 1) * stride]) << (32 - off);
  return static_cast<uint32_t>(v & ((1u << bits) - 1u));
}

Result<Tensor> i32_tensor(const std::string& name, std::vector<int64_t> shape, const std::vector<uint32_t>& v) {
  return Tensor::from_bytes(name, DType::I32, std::move(shape), v.data(), v.size() * sizeof(uint32_t));
}

Result<const Tensor*> find_checked(const TensorStore& s, const std::string& name, DType dtype,
                                   const std::vector<int64_t>& shape, const std::string& file) {
  const Tensor* t = s.find(name);
  if (!t) return not_found(file + ": packed tensor '" + name + "' is missing");
  if (t->dtype != dtype)
    return corrupt(file, 0, name + " dtype", dtype_name(dtype), dtype_name(t->dtype));
  if (t->shape != shape) {
    Tensor want;
    want.shape = shape;
    return corrupt(file, 0, name + " shape", want.shape_string(), t->shape_string());
  }
  if (t->nbytes != static_cast<uint64_t>(t->numel()) * dtype_info(dtype).type_size)
    return corrupt(file, 0, name + " bytes", std::to_string(t->numel() * dtype_info(dtype).type_size), std::to_string(t->nbytes));
  return t;
}

std::vector<uint32_t> words_of(const Tensor& t) {
  std::vector<uint32_t> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data(), v.size() * sizeof(uint32_t));
  return v;
}

}  // namespace

const char* packed_quant_format_name(PackedQuantFormat f) {
  switch (f) {
    case PackedQuantFormat::GPTQ_V1: return "gptq";
    case PackedQuantFormat::GPTQ_V2: return "gptq_v2";
    case PackedQuantFormat::AWQ_GEMM: return "awq";
  }
  return "?";
}

Result<std::vector<Tensor>> pack_quantized_linear(const GroupQuantizedLinear& q, const std::string& prefix,
                                                  PackedQuantFormat format) {
  const int64_t in = q.cols, out = q.rows, bits = q.bits;
  const int64_t ng = q.n_groups();
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return invalid_argument(prefix + ": cannot pack " + std::to_string(bits) + "-bit codes");
  if (q.codes.size() != static_cast<size_t>(in * out) || q.scales.size() != static_cast<size_t>(ng * out) ||
      q.zeros.size() != static_cast<size_t>(ng * out) || q.g_idx.size() != static_cast<size_t>(in))
    return invalid_argument(prefix + ": quantized linear arrays disagree with its shape");
  const uint32_t maxq = (1u << bits) - 1u;
  std::vector<uint16_t> scales(static_cast<size_t>(ng * out));
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = fp32_to_fp16(q.scales[i]);
  std::vector<Tensor> result;
  if (is_gptq(format)) {
    if ((in * bits) % 32 != 0 || (out * bits) % 32 != 0)
      return invalid_argument(prefix + ": GPTQ packing needs in and out multiples of " + std::to_string(32 / std::gcd<int64_t>(32, bits)) +
                              " at " + std::to_string(bits) + " bits, got in " + std::to_string(in) + ", out " + std::to_string(out));
    const int64_t qrows = in * bits / 32, zcols = out * bits / 32;
    std::vector<uint32_t> qweight(static_cast<size_t>(qrows * out), 0u), qzeros(static_cast<size_t>(ng * zcols), 0u);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) put_bits(qweight.data() + o, out, i, bits, static_cast<uint32_t>(q.codes[o * in + i]));
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t o = 0; o < out; ++o) {
        int64_t z = q.zeros[g * out + o];
        if (format == PackedQuantFormat::GPTQ_V1) {
          if (z == 0)
            return invalid_argument(prefix + ": a zero point of 0 cannot be stored in GPTQ v1 (zero-1); write gptq_v2");
          z -= 1;
        }
        put_bits(qzeros.data() + g * zcols, 1, o, bits, static_cast<uint32_t>(z) & maxq);
      }
    SS_ASSIGN_OR_RETURN(Tensor tq, i32_tensor(prefix + ".qweight", {qrows, out}, qweight));
    SS_ASSIGN_OR_RETURN(Tensor tz, i32_tensor(prefix + ".qzeros", {ng, zcols}, qzeros));
    SS_ASSIGN_OR_RETURN(Tensor ts, Tensor::from_bytes(prefix + ".scales", DType::F16, {ng, out}, scales.data(), scales.size() * 2));
    std::vector<uint32_t> gidx(q.g_idx.begin(), q.g_idx.end());
    SS_ASSIGN_OR_RETURN(Tensor tg, i32_tensor(prefix + ".g_idx", {in}, gidx));
    result = {tq, tz, ts, tg};
    return result;
  }
  // AWQ GEMM.
  if (bits != 4) return invalid_argument(prefix + ": AWQ GEMM packing is 4-bit, got " + std::to_string(bits));
  if (out % 8 != 0) return invalid_argument(prefix + ": AWQ packing needs out % 8 == 0, got " + std::to_string(out));
  if (in % q.group_size != 0)
    return invalid_argument(prefix + ": AWQ needs in a multiple of group_size, got " + std::to_string(in));
  for (int64_t i = 0; i < in; ++i)
    if (q.g_idx[i] != i / q.group_size) return invalid_argument(prefix + ": AWQ cannot store an act-order g_idx");
  const int64_t wcols = out / 8;
  std::vector<uint32_t> qweight(static_cast<size_t>(in * wcols), 0u), qzeros(static_cast<size_t>(ng * wcols), 0u);
  for (int64_t i = 0; i < in; ++i)
    for (int64_t c = 0; c < wcols; ++c) {
      uint32_t w = 0;
      for (int k = 0; k < 8; ++k) w |= (static_cast<uint32_t>(q.codes[(8 * c + kAwqOrder[k]) * in + i]) & 15u) << (4 * k);
      qweight[i * wcols + c] = w;
    }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t c = 0; c < wcols; ++c) {
      uint32_t w = 0;
      for (int k = 0; k < 8; ++k) w |= (static_cast<uint32_t>(q.zeros[g * out + 8 * c + kAwqOrder[k]]) & 15u) << (4 * k);
      qzeros[g * wcols + c] = w;
    }
  SS_ASSIGN_OR_RETURN(Tensor tq, i32_tensor(prefix + ".qweight", {in, wcols}, qweight));
  SS_ASSIGN_OR_RETURN(Tensor tz, i32_tensor(prefix + ".qzeros", {ng, wcols}, qzeros));
  SS_ASSIGN_OR_RETURN(Tensor ts, Tensor::from_bytes(prefix + ".scales", DType::F16, {ng, out}, scales.data(), scales.size() * 2));
  result = {tq, tz, ts};
  return result;
}

Result<GroupQuantizedLinear> unpack_quantized_linear(const TensorStore& store, const std::string& prefix,
                                                     PackedQuantFormat format, int bits, int64_t group_size,
                                                     const std::string& file) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return corrupt(file, 0, "bits", "2, 3, 4 or 8", std::to_string(bits));
  if (!is_gptq(format) && bits != 4) return corrupt(file, 0, "AWQ bits", "4", std::to_string(bits));
  const Tensor* qw = store.find(prefix + ".qweight");
  if (!qw) return not_found(file + ": '" + prefix + ".qweight' is missing");
  if (qw->shape.size() != 2) return corrupt(file, 0, prefix + ".qweight rank", "2", std::to_string(qw->shape.size()));
  int64_t in = 0, out = 0;
  if (is_gptq(format)) {
    if (qw->shape[0] <= 0 || qw->shape[0] > kMaxFeatures || qw->shape[1] <= 0 || qw->shape[1] > kMaxFeatures)
      return corrupt(file, 0, prefix + ".qweight shape", "positive dims <= 2^24", qw->shape_string());
    if ((qw->shape[0] * 32) % bits != 0)
      return corrupt(file, 0, prefix + ".qweight rows", "a multiple of " + std::to_string(bits) + " (whole 32-value packs)",
                     std::to_string(qw->shape[0]));
    in = qw->shape[0] * 32 / bits;
    out = qw->shape[1];
    if ((out * bits) % 32 != 0) return corrupt(file, 0, prefix + " out features", "a multiple of the pack width", std::to_string(out));
  } else {
    if (qw->shape[0] <= 0 || qw->shape[0] > kMaxFeatures || qw->shape[1] <= 0 || qw->shape[1] > kMaxFeatures / 8)
      return corrupt(file, 0, prefix + ".qweight shape", "positive dims within caps", qw->shape_string());
    in = qw->shape[0];
    out = qw->shape[1] * 8;
  }
  if (in * out > (int64_t{1} << 34)) return corrupt(file, 0, prefix + " elements", "<= 2^34", std::to_string(in * out));
  const int64_t gs = group_size <= 0 ? in : group_size;
  if (gs > in && !is_gptq(format)) return corrupt(file, 0, "group_size", "<= in features", std::to_string(gs));
  GroupQuantizedLinear q;
  q.rows = out;
  q.cols = in;
  q.bits = bits;
  q.group_size = std::min(gs, in);
  const int64_t ng = q.n_groups();
  q.codes.resize(static_cast<size_t>(in * out));
  q.zeros.resize(static_cast<size_t>(ng * out));
  q.scales.resize(static_cast<size_t>(ng * out));
  q.g_idx.resize(static_cast<size_t>(in));
  SS_ASSIGN_OR_RETURN(const Tensor* ts, find_checked(store, prefix + ".scales", DType::F16, {ng, out}, file));
  for (int64_t i = 0; i < ng * out; ++i) {
    uint16_t h;
    std::memcpy(&h, ts->data() + 2 * i, 2);
    q.scales[i] = fp16_to_fp32(h);
  }
  const std::vector<uint32_t> qweight = words_of(*qw);
  if (is_gptq(format)) {
    const int64_t zcols = out * bits / 32;
    SS_ASSIGN_OR_RETURN(const Tensor* tz, find_checked(store, prefix + ".qzeros", DType::I32, {ng, zcols}, file));
    const std::vector<uint32_t> qzeros = words_of(*tz);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) q.codes[o * in + i] = static_cast<int32_t>(get_bits(qweight.data() + o, out, i, bits));
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t o = 0; o < out; ++o) {
        int32_t z = static_cast<int32_t>(get_bits(qzeros.data() + g * zcols, 1, o, bits));
        if (format == PackedQuantFormat::GPTQ_V1) z += 1;  // AutoGPTQ adds 1 without masking
        q.zeros[g * out + o] = z;
      }
    if (const Tensor* tg = store.find(prefix + ".g_idx")) {
      SS_ASSIGN_OR_RETURN(tg, find_checked(store, prefix + ".g_idx", DType::I32, {in}, file));
      for (int64_t i = 0; i < in; ++i) {
        int32_t g;
        std::memcpy(&g, tg->data() + 4 * i, 4);
        if (g < 0 || g >= ng) return corrupt(file, tg->offset + 4 * i, prefix + ".g_idx", "< " + std::to_string(ng), std::to_string(g));
        q.g_idx[i] = g;
      }
    } else {
      for (int64_t i = 0; i < in; ++i) q.g_idx[i] = static_cast<int32_t>(i / q.group_size);
    }
  } else {
    const int64_t wcols = out / 8;
    if (in % q.group_size != 0) return corrupt(file, 0, prefix + " in features", "a multiple of group_size", std::to_string(in));
    SS_ASSIGN_OR_RETURN(const Tensor* tz, find_checked(store, prefix + ".qzeros", DType::I32, {ng, wcols}, file));
    const std::vector<uint32_t> qzeros = words_of(*tz);
    for (int64_t i = 0; i < in; ++i)
      for (int64_t c = 0; c < wcols; ++c)
        for (int k = 0; k < 8; ++k)
          q.codes[(8 * c + kAwqOrder[k]) * in + i] = static_cast<int32_t>((qweight[i * wcols + c] >> (4 * k)) & 15u);
    for (int64_t g = 0; g < ng; ++g)
      for (int64_t c = 0; c < wcols; ++c)
        for (int k = 0; k < 8; ++k)
          q.zeros[g * out + 8 * c + kAwqOrder[k]] = static_cast<int32_t>((qzeros[g * wcols + c] >> (4 * k)) & 15u);
    for (int64_t i = 0; i < in; ++i) q.g_idx[i] = static_cast<int32_t>(i / q.group_size);
  }
  q.sym = false;
  return q;
}

namespace {

nlohmann::json quantization_config(const PackedFolderOptions& o) {
  if (o.format == PackedQuantFormat::AWQ_GEMM)
    return {{"quant_method", "awq"}, {"bits", o.bits}, {"group_size", o.group_size}, {"zero_point", !o.sym}, {"version", "gemm"}};
  return {{"quant_method", "gptq"}, {"bits", o.bits}, {"group_size", o.group_size}, {"desc_act", o.desc_act},
          {"sym", o.sym}, {"damp_percent", o.damp}, {"static_groups", false}, {"true_sequential", true},
          {"checkpoint_format", packed_quant_format_name(o.format)}};
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error("cannot write '" + path + "'");
  f << text;
  if (!f) return io_error("write failed for '" + path + "'");
  return ok_status();
}

std::string strip_weight_suffix(const std::string& name) {
  const std::string suffix = ".weight";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return name.substr(0, name.size() - suffix.size());
  return name;
}

}  // namespace

Status write_packed_quant_folder(const TensorStore& rest,
                                 const std::vector<std::pair<std::string, GroupQuantizedLinear>>& linears,
                                 const std::string& folder, const PackedFolderOptions& opts) {
  auto config_text = rest.meta.get_string("hf.config_json");
  if (!config_text) return invalid_argument("write_packed_quant_folder: the store has no hf.config_json (convert to HF layout first)");
  nlohmann::json config = nlohmann::json::parse(*config_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) return invalid_argument("write_packed_quant_folder: hf.config_json is not a JSON object");
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return io_error("cannot create '" + folder + "': " + ec.message());
  TensorStore out;
  out.format = "safetensors";
  out.meta.set("format", MetaValue::of_string("pt"));
  for (const auto& [name, q] : linears) {
    if (q.bits != opts.bits) return invalid_argument(name + ": bits " + std::to_string(q.bits) + " differ from the folder's");
    SS_ASSIGN_OR_RETURN(std::vector<Tensor> packed, pack_quantized_linear(q, strip_weight_suffix(name), opts.format));
    for (auto& t : packed) SS_RETURN_IF_ERROR(out.add(std::move(t)));
  }
  for (const Tensor& t : rest.tensors) {
    for (const auto& l : linears)
      if (l.first == t.name) return invalid_argument("write_packed_quant_folder: '" + t.name + "' is both dense and packed");
    SS_RETURN_IF_ERROR(out.add(t));
  }
  config["quantization_config"] = quantization_config(opts);
  out.meta.set("hf.config_json", MetaValue::of_string(config.dump(2)));
  SS_RETURN_IF_ERROR(write_safetensors(out, folder + "/model.safetensors"));
  SS_RETURN_IF_ERROR(write_text(folder + "/config.json", config.dump(2)));
  if (is_gptq(opts.format)) SS_RETURN_IF_ERROR(write_text(folder + "/quantize_config.json", quantization_config(opts).dump(2)));
  return ok_status();
}

Result<TensorStore> read_packed_quant_folder(const std::string& folder, const ParseLimits& limits) {
  SS_ASSIGN_OR_RETURN(TensorStore in, read_safetensors(folder, limits));
  nlohmann::json qc;
  std::string qc_file = folder + "/config.json";
  if (auto config_text = in.meta.get_string("hf.config_json")) {
    nlohmann::json config = nlohmann::json::parse(*config_text, nullptr, false);
    if (!config.is_discarded() && config.is_object() && config.contains("quantization_config"))
      qc = config["quantization_config"];
  }
  for (const char* name : {"quantize_config.json", "quant_config.json"}) {
    if (!qc.is_null()) break;
    const std::string p = folder + "/" + name;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) continue;
    if (fs::file_size(p, ec) > kMaxConfigBytes) return corrupt(p, 0, "file size", "<= 16 MiB", "more");
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    qc = nlohmann::json::parse(ss.str(), nullptr, false);
    qc_file = p;
  }
  if (qc.is_null() || qc.is_discarded() || !qc.is_object())
    return corrupt(folder, 0, "quantization config", "config.json quantization_config or quantize_config.json", "none");
  const std::string method = qc.value("quant_method", std::string("gptq"));
  const auto get_int = [&](const char* key, int64_t fallback) -> int64_t {
    auto it = qc.find(key);
    return it != qc.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
  };
  const int bits = static_cast<int>(get_int(method == "awq" ? "w_bit" : "bits", get_int("bits", 4)));
  const int64_t group_size = get_int(method == "awq" ? "q_group_size" : "group_size", get_int("group_size", 128));
  PackedQuantFormat format;
  if (method == "gptq") {
    const std::string cf = qc.value("checkpoint_format", std::string("gptq"));
    if (cf == "gptq") format = PackedQuantFormat::GPTQ_V1;
    else if (cf == "gptq_v2") format = PackedQuantFormat::GPTQ_V2;
    else return unsupported(qc_file + ": GPTQ checkpoint_format '" + cf + "' (gptq and gptq_v2 are read)");
  } else if (method == "awq") {
    std::string version = qc.value("version", std::string("gemm"));
    std::transform(version.begin(), version.end(), version.begin(), [](unsigned char c) { return std::tolower(c); });
    if (version != "gemm") return unsupported(qc_file + ": AWQ version '" + version + "' (gemm is read)");
    format = PackedQuantFormat::AWQ_GEMM;
  } else {
    return unsupported(qc_file + ": quant_method '" + method + "' (gptq and awq are read)");
  }
  TensorStore out;
  out.format = in.format;
  out.path = in.path;
  out.meta = in.meta;
  out.meta.set("quant.method", MetaValue::of_string(method));
  out.meta.set("quant.bits", MetaValue::of_string(std::to_string(bits)));
  out.meta.set("quant.group_size", MetaValue::of_string(std::to_string(group_size)));
  out.meta.set("quant.checkpoint_format", MetaValue::of_string(packed_quant_format_name(format)));
  const auto has_suffix = [](const std::string& n, const std::string& s) {
    return n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
  };
  for (const Tensor& t : in.tensors) {
    if (has_suffix(t.name, ".qzeros") || has_suffix(t.name, ".scales") || has_suffix(t.name, ".g_idx")) {
      const std::string prefix = t.name.substr(0, t.name.rfind('.'));
      if (in.find(prefix + ".qweight")) continue;  // consumed with its qweight
    }
    if (!has_suffix(t.name, ".qweight")) {
      SS_RETURN_IF_ERROR(out.add(t));
      continue;
    }
    const std::string prefix = t.name.substr(0, t.name.size() - 8);
    SS_ASSIGN_OR_RETURN(GroupQuantizedLinear q, unpack_quantized_linear(in, prefix, format, bits, group_size, folder));
    const std::vector<float> w = q.dequantize();
    SS_ASSIGN_OR_RETURN(Tensor dense, Tensor::from_bytes(prefix + ".weight", DType::F32, {q.rows, q.cols}, w.data(), w.size() * 4));
    SS_RETURN_IF_ERROR(out.add(std::move(dense)));
  }
  return out;
}

}  // namespace ss

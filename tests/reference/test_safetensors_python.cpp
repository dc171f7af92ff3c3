// safetensors against an independent implementation: tests/py/safetensors_interop.py writes and
// reads the format by hand from its description (json + struct + torch/numpy; the `safetensors`
// package is not used). Python -> us: every value of every dtype must equal the float64/int64
// value torch gives (exact: each dtype converts to float64/int64 without rounding). Us -> Python:
// the Python reader checks layout rules and compares each tensor with values we dump here.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safeshrink/formats.h"
#include "safeshrink/half.h"
#include "safeshrink/rng.h"
#include "test_support.h"

using namespace ss;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // tensors of a safetensors file need not be aligned
  return v;
}

// Element k as float64 (float dtypes) or int64 (the rest), by our own reading of the dtype.
double float_at(const Tensor& t, int64_t k) {
  const uint8_t* p = t.data();
  switch (t.dtype) {
    case DType::F64: return load<double>(p + 8 * k);
    case DType::F32: return load<float>(p + 4 * k);
    case DType::F16: return fp16_to_fp32(load<uint16_t>(p + 2 * k));
    case DType::BF16: return bf16_to_fp32(load<uint16_t>(p + 2 * k));
    default: ADD_FAILURE() << "not a float dtype"; return 0;
  }
}

int64_t int_at(const Tensor& t, int64_t k) {
  const uint8_t* p = t.data();
  switch (t.dtype) {
    case DType::I64: return load<int64_t>(p + 8 * k);
    case DType::I32: return load<int32_t>(p + 4 * k);
    case DType::I16: return load<int16_t>(p + 2 * k);
    case DType::I8: return load<int8_t>(p + k);
    case DType::U8: case DType::BOOL: return p[k];
    default: ADD_FAILURE() << "not an integer dtype"; return 0;
  }
}

void write_file(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

}  // namespace

TEST(SafetensorsPython, ReadsAFileWrittenByAnIndependentWriter) {
  SS_REQUIRE_PYTHON("torch", "numpy");
  const std::string dir = test::temp_dir("st-py-write");
  std::string out;
  ASSERT_EQ(test::run_python("py/safetensors_interop.py", "write " + dir + " 1234", &out), 0) << out;
  auto store = read_safetensors(dir + "/py.safetensors");
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  std::ifstream mf(dir + "/manifest.json");
  const json manifest = json::parse(mf);
  ASSERT_EQ(store->tensors.size(), manifest["tensors"].size());
  size_t checked_values = 0;
  for (const auto& e : manifest["tensors"]) {
    const std::string name = e["name"];
    const Tensor* t = store->find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(dtype_info(t->dtype).safetensors_name, e["dtype"].get<std::string>()) << name;
    EXPECT_EQ(t->shape, e["shape"].get<std::vector<int64_t>>()) << name;
    const auto ref = test::read_bytes(dir + "/" + e["ref"].get<std::string>());
    ASSERT_EQ(ref.size(), 8u * static_cast<size_t>(t->numel())) << name;
    for (int64_t k = 0; k < t->numel(); ++k, ++checked_values) {
      if (e["ref_kind"] == "f64") {
        // Exact: f16/bf16/f32 widen to float64 without rounding, in torch as in our conversions.
        ASSERT_EQ(float_at(*t, k), load<double>(ref.data() + 8 * k)) << name << "[" << k << "]";
      } else {
        ASSERT_EQ(int_at(*t, k), load<int64_t>(ref.data() + 8 * k)) << name << "[" << k << "]";
      }
    }
  }
  EXPECT_GT(checked_values, 100u);
  // __metadata__ with \u escapes decoded to UTF-8.
  EXPECT_EQ(store->meta.get_string("format"), "pt");
  EXPECT_EQ(store->meta.get_string("note"), "\xc3\xa9\xe2\x98\x95");
  EXPECT_NE(store->find("caf\xc3\xa9 \xe2\x98\x95"), nullptr);
}

TEST(SafetensorsPython, IndependentReaderAcceptsOurFile) {
  SS_REQUIRE_PYTHON("torch", "numpy");
  const std::string dir = test::temp_dir("st-py-read");
  Rng rng(99);
  TensorStore store;
  json manifest = {{"tensors", json::array()}, {"metadata", {{"format", "pt"}, {"who", "safeshrink \xe2\x98\x95"}}}};
  store.meta.set("format", MetaValue::of_string("pt"));
  store.meta.set("who", MetaValue::of_string("safeshrink \xe2\x98\x95"));
  int index = 0;
  auto add = [&](const std::string& name, DType dtype, std::vector<int64_t> shape) {
    auto t = Tensor::zeros(name, dtype, shape);
    ASSERT_TRUE(t.ok());
    std::vector<uint8_t> ref(8 * static_cast<size_t>(t->numel()));
    std::string kind = dtype_info(dtype).quantized ? "bytes" : "i64";
    uint8_t* p = t->mutable_data();
    for (int64_t k = 0; k < t->numel() && !dtype_info(dtype).quantized; ++k) {
      const float f = static_cast<float>(rng.normal() * 4);
      double as_double = 0;
      int64_t as_int = static_cast<int64_t>(rng.next_u64());
      switch (dtype) {
        case DType::F32: std::memcpy(p + 4 * k, &f, 4); as_double = f; kind = "f64"; break;
        case DType::F64: { const double d = rng.normal(); std::memcpy(p + 8 * k, &d, 8); as_double = d; kind = "f64"; break; }
        case DType::F16: { const uint16_t h = fp32_to_fp16(f); std::memcpy(p + 2 * k, &h, 2); as_double = fp16_to_fp32(h); kind = "f64"; break; }
        case DType::BF16: { const uint16_t h = fp32_to_bf16(f); std::memcpy(p + 2 * k, &h, 2); as_double = bf16_to_fp32(h); kind = "f64"; break; }
        case DType::I64: std::memcpy(p + 8 * k, &as_int, 8); break;
        case DType::I32: { const int32_t v = static_cast<int32_t>(as_int); std::memcpy(p + 4 * k, &v, 4); as_int = v; break; }
        case DType::I16: { const int16_t v = static_cast<int16_t>(as_int); std::memcpy(p + 2 * k, &v, 2); as_int = v; break; }
        case DType::I8: { const int8_t v = static_cast<int8_t>(as_int); std::memcpy(p + k, &v, 1); as_int = v; break; }
        case DType::U8: { const uint8_t v = static_cast<uint8_t>(as_int); p[k] = v; as_int = v; break; }
        case DType::BOOL: { const uint8_t v = as_int & 1; p[k] = v; as_int = v; break; }
        default: break;
      }
      if (kind == "f64") std::memcpy(ref.data() + 8 * k, &as_double, 8);
      else std::memcpy(ref.data() + 8 * k, &as_int, 8);
    }
    if (dtype_info(dtype).quantized) {  // opaque blocks: the stored bytes must come through as they are
      for (uint64_t b = 0; b < t->nbytes; ++b) p[b] = static_cast<uint8_t>(rng.next_u64());
      ref.assign(p, p + t->nbytes);
    }
    const std::string ref_name = "ref_" + std::to_string(index++) + ".bin";
    write_file(dir + "/" + ref_name, ref.data(), ref.size());
    manifest["tensors"].push_back({{"name", name},
                                   {"dtype", dtype_info(dtype).quantized ? dtype_name(dtype) : dtype_info(dtype).safetensors_name},
                                   {"shape", shape},
                                   {"ref", ref_name},
                                   {"ref_kind", kind}});
    ASSERT_TRUE(store.add(*t).ok());
  };
  add("a.f32", DType::F32, {5, 7});
  add("a.f16", DType::F16, {3, 3});
  add("a.bf16", DType::BF16, {2, 9});
  add("a.f64", DType::F64, {4});
  add("a.i64", DType::I64, {6});
  add("a.i32", DType::I32, {3});
  add("a.i16", DType::I16, {5});
  add("a.i8", DType::I8, {11});
  add("a.u8", DType::U8, {2, 2});
  add("a.bool", DType::BOOL, {13});
  add("a.scalar", DType::F32, {});
  add("a.q4_K", DType::Q4_K, {2, 256});
  add("a.q8_0", DType::Q8_0, {3, 64});
  const std::string path = dir + "/ours.safetensors";
  ASSERT_TRUE(write_safetensors(store, path).ok());
  std::ofstream(dir + "/manifest.json") << manifest.dump();
  std::string out;
  ASSERT_EQ(test::run_python("py/safetensors_interop.py", "check " + path + " " + dir, &out), 0) << out;
  EXPECT_NE(out.find("checked 13 tensors"), std::string::npos) << out;
}

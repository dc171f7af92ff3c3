// Reference kernels against llama.cpp's own numbers in ../shared/fixtures (see its README):
//  - dequantization: kquants/reference/dequant/random-llama-<t>.blk.0.attn_k.weight.f32 is ggml's
//    to_float of that tensor, and every tensor of */reference/dequant/*.dequant.safetensors is
//    gguf-py's dequantization (bit-identical to ggml's) of the same-named tensor of the source GGUF.
//    Ours must equal them bit for bit (0 ULP).
//  - quantization: llama-quantize --pure wrote every matrix of random-llama-<t>.gguf with ggml's
//    quantize_row_<t>_ref from random-llama-f32.gguf, and stories260K-f16.gguf is RNE float16 of
//    stories260K-f32.gguf. Quantizing the F32 tensors with quantize_row_ref must give the same bytes.
// To cover another fixture file: add its type to kAttnKTypes / kQuantizedFiles; the safetensors
// sweep picks up every *.dequant.safetensors by itself.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "safeshrink/formats.h"
#include "safeshrink/kernels.h"
#include "safeshrink/store.h"
#include "test_support.h"

using namespace ss;
namespace fs = std::filesystem;

namespace {

const char* const kAttnKTypes[] = {"q2_k", "q3_k_m", "q4_0", "q4_1", "q4_k",
                                   "q5_0", "q5_1",   "q5_k", "q6_k", "q8_0"};

// Number of floats that differ in their bits, and the largest difference in ULPs among them.
struct BitDiff {
  int64_t mismatched = 0;
  int64_t max_ulp = 0;
};

BitDiff compare_bits(const float* ours, const float* ref, int64_t n) {
  BitDiff d;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, ours + i, 4);
    std::memcpy(&b, ref + i, 4);
    if (a == b) continue;
    ++d.mismatched;
    // ULP distance on the sign-magnitude line (both signs mapped to one ordered integer line).
    const int64_t ia = (a & 0x80000000u) ? -static_cast<int64_t>(a & 0x7FFFFFFFu) : static_cast<int64_t>(a);
    const int64_t ib = (b & 0x80000000u) ? -static_cast<int64_t>(b & 0x7FFFFFFFu) : static_cast<int64_t>(b);
    d.max_ulp = std::max(d.max_ulp, ia > ib ? ia - ib : ib - ia);
  }
  return d;
}

Result<TensorStore> open_gguf(const std::string& path) {
  auto s = read_gguf(path);
  if (!s.ok()) ADD_FAILURE() << path << ": " << s.status().to_string();
  return s;
}

}  // namespace

TEST(DequantFixtures, AttnKEqualsGgmlToFloat) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::fixtures_dir() + "/kquants";
  for (const char* t : kAttnKTypes) {
    SCOPED_TRACE(t);
    auto store = open_gguf(dir + "/random-llama-" + t + ".gguf");
    ASSERT_TRUE(store.ok());
    const Tensor* w = store->find("blk.0.attn_k.weight");
    ASSERT_NE(w, nullptr);
    ASSERT_EQ(w->shape, (std::vector<int64_t>{128, 256}));
    auto ours = kernels::dequantize(*w);
    ASSERT_TRUE(ours.ok()) << ours.status().to_string();
    const auto ref_bytes =
        ss::test::read_bytes(dir + "/reference/dequant/random-llama-" + t + ".blk.0.attn_k.weight.f32");
    ASSERT_EQ(ref_bytes.size(), 128u * 256u * 4u);
    std::vector<float> ref(128 * 256);
    std::memcpy(ref.data(), ref_bytes.data(), ref_bytes.size());
    const BitDiff d = compare_bits(ours->data(), ref.data(), 128 * 256);
    EXPECT_EQ(d.mismatched, 0) << dtype_name(w->dtype) << ": " << d.mismatched << " of 32768 floats differ, max "
                               << d.max_ulp << " ULP";
  }
}

TEST(DequantFixtures, EveryDequantSafetensorsTensorIsBitExact) {
  SS_REQUIRE_SHARED();
  std::map<std::string, std::pair<int, int>> per_type;  // GGUF type -> (bit-exact, total)
  int files = 0;
  for (const char* set : {"kquants", "stories260K"}) {
    const fs::path set_dir = fs::path(ss::test::fixtures_dir()) / set;
    std::vector<fs::path> refs;
    for (const auto& e : fs::directory_iterator(set_dir / "reference" / "dequant"))
      if (e.path().string().ends_with(".dequant.safetensors")) refs.push_back(e.path());
    std::sort(refs.begin(), refs.end());
    ASSERT_FALSE(refs.empty()) << set_dir;
    for (const fs::path& ref_path : refs) {
      SCOPED_TRACE(ref_path.filename().string());
      ++files;
      auto ref = read_safetensors(ref_path.string());
      ASSERT_TRUE(ref.ok()) << ref.status().to_string();
      const auto source = ref->meta.get_string("source_gguf");
      const auto types_json = ref->meta.get_string("types");
      ASSERT_TRUE(source && types_json) << "__metadata__ lacks source_gguf / types";
      const auto types = nlohmann::json::parse(*types_json);
      auto gguf = open_gguf((set_dir / *source).string());
      ASSERT_TRUE(gguf.ok());
      ASSERT_EQ(types.size(), ref->tensors.size());
      for (const Tensor& r : ref->tensors) {
        SCOPED_TRACE(r.name);
        ASSERT_EQ(r.dtype, DType::F32);
        const Tensor* g = gguf->find(r.name);
        ASSERT_NE(g, nullptr) << "tensor missing from " << *source;
        ASSERT_TRUE(types.contains(r.name));
        const std::string type_name = types[r.name].get<std::string>();
        EXPECT_EQ(dtype_from_name(type_name), g->dtype) << "the GGUF says " << dtype_name(g->dtype);
        ASSERT_EQ(g->shape, r.shape);
        auto ours = kernels::dequantize(*g);
        ASSERT_TRUE(ours.ok()) << ours.status().to_string();
        const BitDiff d = compare_bits(ours->data(), r.data_as<float>(), r.numel());
        EXPECT_EQ(d.mismatched, 0) << d.mismatched << " of " << r.numel() << " floats differ, max " << d.max_ulp
                                   << " ULP";
        auto& count = per_type[dtype_name(g->dtype)];
        count.second += 1;
        if (d.mismatched == 0) count.first += 1;
      }
    }
  }
  std::string summary;
  for (const auto& [type, count] : per_type)
    summary += type + " " + std::to_string(count.first) + "/" + std::to_string(count.second) + "  ";
  std::printf("bit-exact tensors per type over %d files: %s\n", files, summary.c_str());
  RecordProperty("bit_exact_per_type", summary);
  // f32 f16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K: every type the fixtures hold.
  EXPECT_EQ(per_type.size(), 12u) << summary;
}

// Quantizes every tensor of FROM that TO stores as `type` and compares the bytes. Returns
// (tensors compared, tensors identical); mismatching blocks are reported as failures.
std::pair<int, int> quantize_and_compare(const TensorStore& from, const TensorStore& to, DType type) {
  int compared = 0, identical = 0;
  for (const Tensor& q : to.tensors) {
    if (q.dtype != type) continue;
    SCOPED_TRACE(q.name);
    const Tensor* f = from.find(q.name);
    if (f == nullptr || f->dtype != DType::F32 || f->shape != q.shape) {
      ADD_FAILURE() << "no F32 tensor of the same shape in the source";
      continue;
    }
    ++compared;
    std::vector<uint8_t> ours(q.nbytes);
    const int64_t cols = q.cols();
    const uint64_t row_bytes = q.row_bytes();
    for (int64_t r = 0; r < q.rows(); ++r)
      kernels::quantize_row_ref(type, f->data_as<float>() + r * cols, ours.data() + r * row_bytes, cols);
    const uint64_t bs = static_cast<uint64_t>(dtype_info(type).type_size);
    int64_t bad_blocks = 0, first_bad = -1;
    for (uint64_t b = 0; b < q.nbytes; b += bs)
      if (std::memcmp(ours.data() + b, q.data() + b, bs) != 0) {
        if (first_bad < 0) first_bad = static_cast<int64_t>(b / bs);
        ++bad_blocks;
      }
    EXPECT_EQ(bad_blocks, 0) << dtype_name(type) << ": " << bad_blocks << " of " << q.nbytes / bs
                             << " blocks differ, first " << first_bad;
    if (bad_blocks == 0) ++identical;
  }
  return {compared, identical};
}

TEST(QuantizeFixtures, SimpleTypesReproduceLlamaQuantizeBytes) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::fixtures_dir() + "/kquants";
  auto f32 = open_gguf(dir + "/random-llama-f32.gguf");
  ASSERT_TRUE(f32.ok());
  const std::pair<const char*, DType> files[] = {{"q8_0", DType::Q8_0},
                                                 {"q4_0", DType::Q4_0},
                                                 {"q4_1", DType::Q4_1},
                                                 {"q5_0", DType::Q5_0},
                                                 {"q5_1", DType::Q5_1}};
  for (const auto& [suffix, type] : files) {
    SCOPED_TRACE(suffix);
    auto q = open_gguf(dir + "/random-llama-" + suffix + ".gguf");
    ASSERT_TRUE(q.ok());
    const auto [compared, identical] = quantize_and_compare(*f32, *q, type);
    std::printf("%s: %d/%d tensors byte-identical\n", suffix, identical, compared);
    EXPECT_EQ(compared, 30);  // --pure: all 30 matrices got the type, the 9 norms stayed F32
    EXPECT_EQ(identical, compared);
  }
}

TEST(QuantizeFixtures, F16MatchesStoriesF16File) {
  SS_REQUIRE_SHARED();
  const std::string dir = ss::test::fixtures_dir() + "/stories260K";
  auto f32 = open_gguf(dir + "/stories260K-f32.gguf");
  auto f16 = open_gguf(dir + "/stories260K-f16.gguf");
  ASSERT_TRUE(f32.ok() && f16.ok());
  const auto [compared, identical] = quantize_and_compare(*f32, *f16, DType::F16);
  std::printf("f16: %d/%d tensors byte-identical\n", identical, compared);
  EXPECT_EQ(compared, 37);  // the README: all 37 matrices
  EXPECT_EQ(identical, compared);
}

// Core: dtype table, half conversions (vs exhaustive round trips and known values), tensors,
// metadata, thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "safeshrink/dtype.h"
#include "safeshrink/half.h"
#include "safeshrink/metadata.h"
#include "safeshrink/rng.h"
#include "safeshrink/store.h"
#include "safeshrink/tensor.h"
#include "safeshrink/thread_pool.h"

using namespace ss;

TEST(DType, TableMatchesGgufSpec) {
  // Values from the GGUF spec (ggml.h ggml_type and type traits), independent of our table.
  struct Row { DType t; int ggml; int64_t block, bytes; };
  const Row rows[] = {{DType::F32, 0, 1, 4},       {DType::F16, 1, 1, 2},       {DType::Q4_0, 2, 32, 18},
                      {DType::Q4_1, 3, 32, 20},    {DType::Q5_0, 6, 32, 22},    {DType::Q5_1, 7, 32, 24},
                      {DType::Q8_0, 8, 32, 34},    {DType::Q8_1, 9, 32, 36},    {DType::Q2_K, 10, 256, 84},
                      {DType::Q3_K, 11, 256, 110}, {DType::Q4_K, 12, 256, 144}, {DType::Q5_K, 13, 256, 176},
                      {DType::Q6_K, 14, 256, 210}, {DType::Q8_K, 15, 256, 292}, {DType::I8, 24, 1, 1},
                      {DType::I16, 25, 1, 2},      {DType::I32, 26, 1, 4},      {DType::I64, 27, 1, 8},
                      {DType::F64, 28, 1, 8},      {DType::BF16, 30, 1, 2}};
  for (const auto& r : rows) {
    const DTypeInfo& d = dtype_info(r.t);
    EXPECT_EQ(d.ggml_type, r.ggml) << d.name;
    EXPECT_EQ(d.block_size, r.block) << d.name;
    EXPECT_EQ(d.type_size, r.bytes) << d.name;
    EXPECT_EQ(dtype_from_ggml(r.ggml), r.t) << d.name;
  }
  EXPECT_FALSE(dtype_from_ggml(4).has_value());  // removed Q4_2
  EXPECT_EQ(dtype_from_name("Q4_K"), DType::Q4_K);
  EXPECT_EQ(dtype_from_safetensors("BF16"), DType::BF16);
  EXPECT_FALSE(dtype_row_bytes(DType::Q4_K, 172).ok());
  EXPECT_EQ(*dtype_row_bytes(DType::Q6_K, 512), 420u);
  EXPECT_DOUBLE_EQ(dtype_bits_per_weight(DType::Q4_0), 4.5);
}

TEST(Half, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(Half, RoundsToNearestEvenAtMidpoints) {
  // Known IEEE values: 1 + 2^-11 is halfway between 1 and 1+2^-10 -> even (1.0).
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // rounds to inf
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // halfway to zero -> even (0)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_EQ(bf16_to_fp32(0x4049), 3.140625f);
}

TEST(Tensor, ZerosSliceAndByteChecks) {
  auto t = Tensor::zeros("w", DType::Q8_0, {4, 64});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->nbytes, 4u * 2 * 34);
  EXPECT_EQ(t->row_bytes(), 68u);
  auto s = t->slice_rows(1, 3);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->offset, 68u);
  EXPECT_EQ(s->nbytes, 136u);
  EXPECT_FALSE(t->slice_rows(2, 5).ok());
  EXPECT_FALSE(Tensor::zeros("bad", DType::Q4_K, {2, 100}).ok());
  EXPECT_FALSE(tensor_nbytes(DType::F32, {1ll << 40, 1ll << 40}).ok());
}

TEST(Metadata, TypedValuesAndOrder) {
  Metadata m;
  m.set("b", MetaValue::of_u32(7));
  m.set("a", MetaValue::of_string("x"));
  m.set("b", MetaValue::of_f32(0.5f));
  ASSERT_EQ(m.entries().size(), 2u);
  EXPECT_EQ(m.entries()[0].first, "b");
  EXPECT_DOUBLE_EQ(*m.get_double("b"), 0.5);
  std::vector<int32_t> v = {1, -2, 3};
  auto arr = MetaValue::of_array(MetaType::I32, v);
  EXPECT_EQ(*arr.element_int(1), -2);
  EXPECT_FALSE(arr.element_int(3).has_value());
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(1001);
  pool.parallel_for(1001, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  }, 8);
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(Rng, DeterministicAndRoughlyNormal) {
  Rng a(42), b(42);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(a.next_u64(), b.next_u64());
    const double x = a.normal();
    b.normal();
    sum += x;
    sq += x * x;
  }
  // Mean and variance of N(0,1) from 2e5 draws: standard errors 0.0022 and 0.0032; 5 sigma.
  EXPECT_NEAR(sum / n, 0.0, 0.011);
  EXPECT_NEAR(sq / n, 1.0, 0.016);
}

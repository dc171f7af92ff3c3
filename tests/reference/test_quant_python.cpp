// INTn round-to-nearest (quant_tensor_int_rtn) against tests/py/int_rtn_reference.py, a numpy
// restatement of the grid written from the formulas in compress.h (round half to even, f16 scales,
// float32 arithmetic). Exact: every output float must be bit-identical, for 8/4/3/2 bits, per
// channel and per group (with a partial last group), sym and asym, F32 and F16 storage.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "safeshrink/compress.h"
#include "safeshrink/kernels.h"
#include "test_support.h"

using namespace ss;

TEST(QuantIntPython, RtnGridMatchesNumpyExactly) {
  SS_REQUIRE_PYTHON("numpy");
  const int64_t rows = 24, cols = 200;  // 200 = 3 groups of 64 + a partial group of 8
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = normal(rng);
  for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(5 * cols + c)] = 0.0f;        // an all-zero row
  for (int64_t c = 0; c < cols; ++c) w[static_cast<size_t>(6 * cols + c)] = 0.01f + std::abs(w[c]);  // all positive
  w[3] = 0.5f;  // an outlier
  // row 7: exact ties for int4 sym (s = 0.4375 / 7 = 2^-4 exactly, w/s = k + 0.5): half to even
  // and half away from zero disagree on every element
  for (int64_t c = 0; c < cols; ++c)
    w[static_cast<size_t>(7 * cols + c)] = c % 64 == 0 ? 0.4375f : (static_cast<float>(c % 14) - 7.0f + 0.5f) * 0.0625f;
  const std::string dir = ss::test::temp_dir("quant_int_py");
  const std::string in_path = dir + "/w.f32";
  ss::test::write_bytes(in_path, std::vector<uint8_t>(reinterpret_cast<uint8_t*>(w.data()),
                                                      reinterpret_cast<uint8_t*>(w.data() + w.size())));
  auto t = Tensor::from_bytes("blk.0.attn_q.weight", DType::F32, {rows, cols}, w.data(), w.size() * 4);
  ASSERT_TRUE(t.ok());
  std::vector<IntRtnParams> cases;
  std::string case_args;
  for (int bits : {8, 4, 3, 2})
    for (int64_t group : {int64_t{-1}, int64_t{64}})
      for (bool sym : {true, false})
        for (DType storage : {DType::F32, DType::F16}) {
          IntRtnParams p;
          p.bits = bits;
          p.group_size = group;
          p.sym = sym;
          p.storage = storage;
          cases.push_back(p);
          case_args += " " + std::to_string(bits) + "," + std::to_string(group) + "," + (sym ? "1" : "0") + "," +
                       (storage == DType::F16 ? "f16" : "f32");
        }
  const std::string out_path = dir + "/ref.f32";
  std::string log;
  ASSERT_EQ(ss::test::run_python("py/int_rtn_reference.py", in_path + " " + std::to_string(rows) + " " +
                                     std::to_string(cols) + " " + out_path + case_args, &log), 0) << log;
  const std::vector<uint8_t> ref = ss::test::read_bytes(out_path);
  ASSERT_EQ(ref.size(), cases.size() * w.size() * 4);
  for (size_t c = 0; c < cases.size(); ++c) {
    const IntRtnParams& p = cases[c];
    SCOPED_TRACE(quant_int_rtn_name(p) + (p.storage == DType::F16 ? " f16" : " f32"));
    auto q = quant_tensor_int_rtn(*t, p);
    ASSERT_TRUE(q.ok()) << q.status().to_string();
    auto ours = kernels::dequantize(*q);
    ASSERT_TRUE(ours.ok());
    int64_t mismatched = 0;
    for (size_t i = 0; i < w.size(); ++i)
      mismatched += std::memcmp(&(*ours)[i], ref.data() + 4 * (c * w.size() + i), 4) != 0;
    EXPECT_EQ(mismatched, 0);
  }
  EXPECT_EQ(cases.size(), 32u);
}

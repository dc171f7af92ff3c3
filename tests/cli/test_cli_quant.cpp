// `safeshrink quantize`, `diff` and `list quantizers` end to end on stories260K:
//  - quantize --method q4_k_m writes llama.cpp's choices (types and bytes of
//    stories260K-q4_k_m.gguf, made by llama-quantize), general.file_type 15 and the plan JSON;
//  - diff of the F32 model against llama.cpp's own q4_k_m file agrees with the relative error
//    computed here from the two files' dequantized tensors;
//  - an HF-layout folder (fp16) compared with the GGUF original maps names and un-permutes q/k:
//    every tensor is compared and the error is f16 rounding only (< 2^-11 relative);
//  - int4-g32 to safetensors: diff reports the plan's bits/weight (4 + 16/32), not F16's 16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "safeshrink/formats.h"
#include "safeshrink/kernels.h"
#include "test_support.h"

using namespace ss;
using json = nlohmann::json;

namespace {

std::string ss_cmd(const std::string& args) { return test::cli_path() + " " + args; }
std::string stories(const std::string& v) { return test::fixtures_dir() + "/stories260K/stories260K-" + v + ".gguf"; }

json json_tail(const std::string& out) {
  const size_t start = out.find('{');
  EXPECT_NE(start, std::string::npos) << out;
  return json::parse(out.substr(start == std::string::npos ? 0 : start));
}

}  // namespace

TEST(CliQuant, ListsQuantizersAndPruners) {
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("list quantizers"), &out), 0) << out;
  for (const char* name : {"fp16", "bf16", "int8", "int4", "int3", "int2", "q8_0", "q2_k", "q4_k_m", "q6_k"})
    EXPECT_NE(out.find(name), std::string::npos) << name;
  ASSERT_EQ(test::run_command(ss_cmd("list pruners"), &out), 0) << out;
}

TEST(CliQuant, Q4KMReproducesLlamaQuantizeAndRecordsThePlan) {
  SS_REQUIRE_SHARED();
  const std::string dir = test::temp_dir("cli_quant");
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("quantize --model " + stories("f32") + " --method q4_k_m --out " + dir +
                                     "/q4km.gguf"), &out), 0) << out;
  EXPECT_NE(out.find("bits/weight"), std::string::npos) << out;
  EXPECT_NE(out.find("fallback"), std::string::npos) << out;  // the plan table shows the fall-backs
  auto ours = read_gguf(dir + "/q4km.gguf");
  auto ref = read_gguf(stories("q4_k_m"));
  ASSERT_TRUE(ours.ok() && ref.ok());
  EXPECT_EQ(ours->meta.get_int("general.file_type").value_or(-1), ref->meta.get_int("general.file_type").value_or(-2));
  const json plan = json::parse(ours->meta.get_string("safeshrink.plan").value_or("{}"));
  EXPECT_EQ(plan.value("method", ""), "q4_k_m");
  EXPECT_EQ(plan["entries"].size(), 48u);
  for (const Tensor& t : ref->tensors) {
    const Tensor* o = ours->find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->dtype, t.dtype) << t.name;
    EXPECT_TRUE(o->nbytes == t.nbytes && std::memcmp(o->data(), t.data(), t.nbytes) == 0) << t.name;
  }
  // the plan's bits/weight: sum over matrices of block bits / elements, from the file's own sizes
  double bits = 0, n = 0;
  for (const Tensor& t : ref->tensors)
    if (t.shape.size() == 2) {
      bits += 8.0 * static_cast<double>(t.nbytes);
      n += static_cast<double>(t.numel());
    }
  EXPECT_NEAR(plan.value("bits_per_weight", 0.0), bits / n, 1e-9);
}

TEST(CliQuant, DiffAgreesWithAnIndependentComputation) {
  SS_REQUIRE_SHARED();
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("diff --json --top 3 " + stories("f32") + " " + stories("q4_k_m")), &out), 0)
      << out;
  const json d = json_tail(out);
  auto a = read_gguf(stories("f32"));
  auto b = read_gguf(stories("q4_k_m"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(d["tensors"].size(), a->tensors.size());
  double num_all = 0, den_all = 0, worst = -1;
  std::string worst_name;
  for (const json& row : d["tensors"]) {
    const std::string name = row["tensor"];
    auto x = kernels::dequantize(*a->find(name));
    auto y = kernels::dequantize(*b->find(name));
    ASSERT_TRUE(x.ok() && y.ok());
    double num = 0, den = 0;
    for (size_t i = 0; i < x->size(); ++i) {
      num += ((*x)[i] - double((*y)[i])) * ((*x)[i] - double((*y)[i]));
      den += double((*x)[i]) * (*x)[i];
    }
    EXPECT_NEAR(row["rel_error"].get<double>(), std::sqrt(num / den), 1e-9 + 1e-9 * std::sqrt(num / den)) << name;
    num_all += num;
    den_all += den;
    if (std::sqrt(num / den) > worst) {
      worst = std::sqrt(num / den);
      worst_name = name;
    }
  }
  EXPECT_NEAR(d["totals"]["rel_error"].get<double>(), std::sqrt(num_all / den_all), 1e-9);
  ASSERT_EQ(d["top"].size(), 3u);
  EXPECT_EQ(d["top"][0].get<std::string>(), worst_name);
}

TEST(CliQuant, HfFolderAgainstGgufMapsNamesAndRopeRows) {
  SS_REQUIRE_SHARED();
  const std::string dir = test::temp_dir("cli_quant_hf");
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("quantize -q --model " + stories("f32") + " --method fp16 --out " + dir +
                                     "/hf"), &out), 0) << out;
  ASSERT_EQ(test::run_command(ss_cmd("diff --json " + stories("f32") + " " + dir + "/hf"), &out), 0) << out;
  const json d = json_tail(out);
  EXPECT_EQ(d["only_in_a"].size(), 0u) << d["only_in_a"].dump();
  EXPECT_EQ(d["only_in_b"].size(), 0u) << d["only_in_b"].dump();
  EXPECT_EQ(d["tensors"].size(), 48u);
  for (const json& row : d["tensors"])  // f16 round to nearest: relative error <= 2^-11 per element
    EXPECT_LT(row["rel_error"].get<double>(), std::ldexp(1.0, -11)) << row.dump();
}

TEST(CliQuant, IntFakeQuantToSafetensorsReportsHonestBits) {
  SS_REQUIRE_SHARED();
  const std::string dir = test::temp_dir("cli_quant_int");
  std::string out;
  ASSERT_EQ(test::run_command(ss_cmd("quantize -q --model " + stories("f32") +
                                     " --method int4 --group-size 32 --keep '^output[.]' --out " + dir + "/int4.safetensors"),
                              &out), 0) << out;
  ASSERT_EQ(test::run_command(ss_cmd("diff --json " + stories("f32") + " " + dir + "/int4.safetensors"), &out), 0)
      << out;
  const json d = json_tail(out);
  auto f32 = read_gguf(stories("f32"));
  ASSERT_TRUE(f32.ok());
  int matrices = 0;
  for (const json& row : d["tensors"]) {
    const std::string name = row["tensor"];
    if (name == "output.weight") {
      EXPECT_EQ(row["b_type"], "f32");
      EXPECT_EQ(row["rel_error"].get<double>(), 0.0);
    } else if (row["a_type"] == "f32" && row["b_type"] == "f16") {
      // 172-wide ffn_down: 6 groups of 32 (5 full + 1 of 12), others: cols / 32 groups
      const Tensor* t = f32->find(name);
      ASSERT_NE(t, nullptr) << name;
      const double cols = static_cast<double>(t->cols());
      EXPECT_NEAR(row["bits_per_weight_b"].get<double>(), 4.0 + 16.0 * std::ceil(cols / 32) / cols, 1e-12) << name;
      ++matrices;
    }
  }
  EXPECT_EQ(matrices, 36);  // token_embd + 7 matrices x 5 layers
  // usage errors exit 2
  EXPECT_EQ(test::run_command(ss_cmd("quantize --model " + stories("f32") + " --method int5 --out " + dir + "/x.gguf"),
                              &out), 2) << out;
}

// tensor_deltas (attribution.h) against numpy: ||aligned - base||_F / ||base||_F in float64 over the
// tensors two small safetensors files share with the same shape (tests/py/tensor_delta_reference.py
// writes them: F32 and F16 tensors, a tensor only in the base, one with a different shape, an
// all-zero unchanged tensor). Tolerance: 1e-9 relative (both sides accumulate the same float32/f16
// values in double; only the summation order differs). Also the built-in model's base and aligned
// checkpoints: a GGUF file against an HF folder of the same model gives the deltas of the two HF
// folders (layouts are matched before comparing).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "safeshrink/attribution.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "test_support.h"

using namespace ss;

TEST(TensorDeltasNumpy, RelativeFrobeniusDeltasMatchNumpy) {
  SS_REQUIRE_PYTHON("numpy");
  const std::string dir = test::temp_dir("tensor-deltas");
  std::string out;
  ASSERT_EQ(test::run_python("py/tensor_delta_reference.py", dir, &out), 0) << out;
  auto base = read_safetensors(dir + "/base.safetensors");
  auto aligned = read_safetensors(dir + "/aligned.safetensors");
  ASSERT_TRUE(base.ok()) << base.status().to_string();
  ASSERT_TRUE(aligned.ok()) << aligned.status().to_string();
  std::ifstream f(dir + "/expected.json");
  const auto expected = nlohmann::json::parse(f).get<std::map<std::string, double>>();
  ASSERT_EQ(expected.size(), 4u);

  auto deltas = tensor_deltas(*base, *aligned);
  ASSERT_TRUE(deltas.ok()) << deltas.status().to_string();
  ASSERT_EQ(deltas->size(), expected.size());
  for (const TensorDelta& d : *deltas) {
    ASSERT_TRUE(expected.count(d.tensor)) << d.tensor << " should have been skipped";
    const double want = expected.at(d.tensor);
    EXPECT_NEAR(d.rel_delta, want, 1e-9 * std::max(1.0, want)) << d.tensor;
    std::printf("[ %s ] rel_delta %.9g numpy %.9g (layer %lld, kind %s)\n", d.tensor.c_str(), d.rel_delta, want,
                static_cast<long long>(d.layer), d.kind.c_str());
  }
  EXPECT_GT(expected.at("blk.1.ffn_down.weight"), 0.1);  // the data really differ
}

TEST(TensorDeltasNumpy, NothingInCommonIsAnError) {
  TensorStore a, b;
  float v = 1.0f;
  ASSERT_TRUE(a.add(*Tensor::from_bytes("x", DType::F32, {1}, &v, 4)).ok());
  ASSERT_TRUE(b.add(*Tensor::from_bytes("y", DType::F32, {1}, &v, 4)).ok());
  EXPECT_FALSE(tensor_deltas(a, b).ok());
}

TEST(TensorDeltasNumpy, BuiltInModelLayoutsAgree) {
  const std::string base_dir = SAFESHRINK_SOURCE_DIR "/data/models/tiny-chat-base";
  const std::string chat_dir = SAFESHRINK_SOURCE_DIR "/data/models/tiny-chat";
  if (!std::filesystem::exists(base_dir) || !std::filesystem::exists(chat_dir))
    GTEST_SKIP() << "data/models/tiny-chat(-base) absent";
  auto base = open_model(base_dir);
  auto chat_hf = open_model(chat_dir);
  ASSERT_TRUE(base.ok() && chat_hf.ok());
  // The same weights in GGUF layout (names and RoPE row order differ), written by our exporter.
  const std::string gguf = ss::test::temp_dir("deltas") + "/tiny-chat.gguf";
  ASSERT_TRUE(save_llama_model(*chat_hf, gguf).ok());
  auto chat_gguf = open_model(gguf);
  ASSERT_TRUE(chat_gguf.ok()) << chat_gguf.status().to_string();
  auto hf = tensor_deltas(*base, *chat_hf);
  auto mixed = tensor_deltas(*base, *chat_gguf);
  ASSERT_TRUE(hf.ok()) << hf.status().to_string();
  ASSERT_TRUE(mixed.ok()) << mixed.status().to_string();
  ASSERT_EQ(hf->size(), mixed->size());
  for (size_t i = 0; i < hf->size(); ++i) {
    EXPECT_EQ((*hf)[i].tensor, (*mixed)[i].tensor);
    EXPECT_NEAR((*hf)[i].rel_delta, (*mixed)[i].rel_delta, 1e-12) << (*hf)[i].tensor;
  }
}

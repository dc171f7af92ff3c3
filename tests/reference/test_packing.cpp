// GPTQ (v1/v2) and AWQ GEMM packing: (1) packed tensors equal, byte for byte, a numpy
// re-statement of AutoGPTQ/GPTQModel's and AutoAWQ's packing loops (tests/py/packing_reference.py);
// (2) pack -> unpack gives back the same codes, zeros, scales and g_idx; (3) malformed inputs are
// refused (v1 zero of 0, wrong qzeros shape, AWQ with act-order); (4) stories260K converted to HF
// layout, quantized (GPTQ with calibration captured through the engine, and AWQ-style RTN), written
// as a packed folder and read back gives the same logits as the dense fake-quant model (exact
// arithmetic on the same F32 weights: tolerance 1e-5 absolute).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "safeshrink/calibration.h"
#include "safeshrink/compress_hessian.h"
#include "safeshrink/formats.h"
#include "safeshrink/half.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "safeshrink/quant_gptq_awq.h"
#include "safeshrink/rng.h"
#include "test_support.h"

namespace {

ss::GroupQuantizedLinear random_linear(int64_t out, int64_t in, int bits, int64_t group, bool act_order, uint64_t seed) {
  ss::Rng rng(seed);
  ss::GroupQuantizedLinear q;
  q.rows = out;
  q.cols = in;
  q.bits = bits;
  q.group_size = group;
  const int maxq = (1 << bits) - 1;
  const int64_t ng = q.n_groups();
  q.codes.resize(out * in);
  for (auto& c : q.codes) c = static_cast<int32_t>(rng.below(maxq + 1));
  q.zeros.resize(ng * out);
  for (auto& z : q.zeros) z = 1 + static_cast<int32_t>(rng.below(maxq));  // v1 cannot store 0
  q.scales.resize(ng * out);
  for (auto& s : q.scales) s = ss::fp16_to_fp32(ss::fp32_to_fp16(static_cast<float>(0.001 + 0.05 * rng.uniform())));
  q.g_idx.resize(in);
  for (int64_t i = 0; i < in; ++i) q.g_idx[i] = static_cast<int32_t>(act_order ? rng.below(ng) : i / group);
  return q;
}

std::vector<uint8_t> bytes_of(const void* p, size_t n) {
  return std::vector<uint8_t>(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
}

struct PackCase {
  int bits;
  ss::PackedQuantFormat format;
  bool act_order;
};

TEST(Packing, RoundTripAndNumpyRestatement) {
  const std::vector<PackCase> cases = {{2, ss::PackedQuantFormat::GPTQ_V1, false}, {3, ss::PackedQuantFormat::GPTQ_V2, true},
                                       {3, ss::PackedQuantFormat::GPTQ_V1, false}, {4, ss::PackedQuantFormat::GPTQ_V1, true},
                                       {4, ss::PackedQuantFormat::GPTQ_V2, false}, {8, ss::PackedQuantFormat::GPTQ_V2, false},
                                       {4, ss::PackedQuantFormat::AWQ_GEMM, false}};
  const bool have_numpy = ss::test::python_has({"numpy"});
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const PackCase& c = cases[ci];
    SCOPED_TRACE(std::string(ss::packed_quant_format_name(c.format)) + " bits " + std::to_string(c.bits));
    const int64_t out = 96, in = 128, group = 32;
    const ss::GroupQuantizedLinear q = random_linear(out, in, c.bits, group, c.act_order, 100 + ci);
    auto packed = ss::pack_quantized_linear(q, "model.layers.0.mlp.up_proj", c.format);
    ASSERT_TRUE(packed.ok()) << packed.status().to_string();
    ss::TensorStore store;
    for (const auto& t : *packed) ASSERT_TRUE(store.add(t).ok());
    auto back = ss::unpack_quantized_linear(store, "model.layers.0.mlp.up_proj", c.format, c.bits, group, "mem");
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(back->codes, q.codes);
    EXPECT_EQ(back->zeros, q.zeros);
    EXPECT_EQ(back->scales, q.scales);
    EXPECT_EQ(back->g_idx, q.g_idx);
    EXPECT_EQ(back->dequantize(), q.dequantize());

    if (!have_numpy) continue;
    const std::string dir = ss::test::temp_dir("packing");
    ss::test::write_bytes(dir + "/codes.i32", bytes_of(q.codes.data(), q.codes.size() * 4));
    ss::test::write_bytes(dir + "/zeros.i32", bytes_of(q.zeros.data(), q.zeros.size() * 4));
    ss::test::write_bytes(dir + "/scales.f32", bytes_of(q.scales.data(), q.scales.size() * 4));
    std::string log;
    const std::string args = dir + " " + std::to_string(out) + " " + std::to_string(in) + " " +
                             std::to_string(q.n_groups()) + " " + std::to_string(c.bits) + " " +
                             ss::packed_quant_format_name(c.format);
    ASSERT_EQ(ss::test::run_python("py/packing_reference.py", args, &log), 0) << log;
    const ss::Tensor* qw = store.find("model.layers.0.mlp.up_proj.qweight");
    const ss::Tensor* qz = store.find("model.layers.0.mlp.up_proj.qzeros");
    const ss::Tensor* sc = store.find("model.layers.0.mlp.up_proj.scales");
    ASSERT_TRUE(qw && qz && sc);
    EXPECT_EQ(bytes_of(qw->data(), qw->nbytes), ss::test::read_bytes(dir + "/np_qweight.i32")) << log;
    EXPECT_EQ(bytes_of(qz->data(), qz->nbytes), ss::test::read_bytes(dir + "/np_qzeros.i32")) << log;
    EXPECT_EQ(bytes_of(sc->data(), sc->nbytes), ss::test::read_bytes(dir + "/np_scales.f16"));
  }
}

TEST(Packing, RefusesWhatTheFormatCannotHold) {
  ss::GroupQuantizedLinear q = random_linear(64, 64, 4, 32, false, 5);
  q.zeros[3] = 0;
  EXPECT_FALSE(ss::pack_quantized_linear(q, "p", ss::PackedQuantFormat::GPTQ_V1).ok());
  EXPECT_TRUE(ss::pack_quantized_linear(q, "p", ss::PackedQuantFormat::GPTQ_V2).ok());
  const ss::GroupQuantizedLinear act = random_linear(64, 64, 4, 32, true, 6);
  EXPECT_FALSE(ss::pack_quantized_linear(act, "p", ss::PackedQuantFormat::AWQ_GEMM).ok());
  const ss::GroupQuantizedLinear odd = random_linear(172, 64, 4, 32, false, 7);  // stories260K gate_proj
  EXPECT_FALSE(ss::pack_quantized_linear(odd, "p", ss::PackedQuantFormat::GPTQ_V2).ok());
  // A qzeros tensor of the wrong shape is an error naming it, not a crash.
  auto packed = ss::pack_quantized_linear(random_linear(64, 64, 4, 32, false, 8), "p", ss::PackedQuantFormat::GPTQ_V2);
  ASSERT_TRUE(packed.ok());
  ss::TensorStore store;
  for (auto t : *packed) {
    if (t.name == "p.qzeros") t.shape = {1, 8};
    ASSERT_TRUE(store.add(t).ok());
  }
  auto bad = ss::unpack_quantized_linear(store, "p", ss::PackedQuantFormat::GPTQ_V2, 4, 32, "bad.safetensors");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("qzeros"), std::string::npos) << bad.status().to_string();
  // Out-of-range g_idx.
  ss::TensorStore store2;
  for (auto t : *packed) {
    if (t.name == "p.g_idx") {
      std::vector<int32_t> g(64, 0);
      g[10] = 7;
      t = *ss::Tensor::from_bytes("p.g_idx", ss::DType::I32, {64}, g.data(), 256);
    }
    ASSERT_TRUE(store2.add(t).ok());
  }
  EXPECT_FALSE(ss::unpack_quantized_linear(store2, "p", ss::PackedQuantFormat::GPTQ_V2, 4, 32, "bad").ok());
}

struct FolderCase {
  ss::PackedQuantFormat format;
  int bits;
  bool sym, desc_act;
  bool use_gptq;  // else RTN (AWQ-style asymmetric grid)
};

TEST(Packing, Stories260KPackedFolderMatchesFakeQuantLogits) {
  SS_REQUIRE_SHARED();
  auto gguf = ss::read_gguf(ss::test::fixtures_dir() + "/stories260K/stories260K-f32.gguf");
  ASSERT_TRUE(gguf.ok()) << gguf.status().to_string();
  auto hf = ss::llama_to_hf_layout(*gguf);
  ASSERT_TRUE(hf.ok()) << hf.status().to_string();
  auto original = ss::LlamaModel::load(std::make_shared<const ss::TensorStore>(*hf));
  ASSERT_TRUE(original.ok()) << original.status().to_string();

  // Calibration through the engine's observer: 4 windows of 64 random tokens.
  ss::Rng rng(3);
  std::vector<std::vector<int32_t>> windows(4, std::vector<int32_t>(64));
  for (auto& w : windows)
    for (auto& t : w) t = static_cast<int32_t>(1 + rng.below(511));
  ss::CalibrationSpec spec;
  spec.hessian = true;
  auto calib = ss::capture_calibration_tokens(*original, windows, spec, "random-tokens");
  ASSERT_TRUE(calib.ok()) << calib.status().to_string();
  ASSERT_EQ(calib->linears.size(), 5u * 7u);
  const ss::LinearInputStats* qstats = calib->find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(qstats, nullptr);
  EXPECT_EQ(qstats->rows, 4 * 64);
  EXPECT_EQ(qstats->k, 64);

  const std::vector<FolderCase> cases = {{ss::PackedQuantFormat::GPTQ_V1, 4, true, false, true},
                                         {ss::PackedQuantFormat::GPTQ_V2, 8, false, true, true},
                                         {ss::PackedQuantFormat::AWQ_GEMM, 4, false, false, false}};
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 429, 18, 271, 8};
  for (const FolderCase& c : cases) {
    SCOPED_TRACE(ss::packed_quant_format_name(c.format));
    ss::TensorStore dense = *hf, rest = *hf;
    rest.tensors.clear();
    std::vector<std::pair<std::string, ss::GroupQuantizedLinear>> packed;
    int n_dense_fallback = 0;
    for (const ss::Tensor& t : hf->tensors) {
      const ss::LinearInputStats* st = calib->find(t.name);
      if (!st || t.name == "lm_head.weight" || t.name == "model.embed_tokens.weight") {
        ASSERT_TRUE(rest.add(t).ok());
        continue;
      }
      const float* w = t.data_as<float>();
      ss::Result<ss::GroupQuantizedLinear> q = ss::Status(ss::StatusCode::INTERNAL, "unset");
      if (c.use_gptq) {
        ss::GptqParams p;
        p.bits = c.bits;
        p.group_size = 32;
        p.sym = c.sym;
        p.desc_act = c.desc_act;
        q = ss::gptq_quantize_linear(w, t.rows(), t.cols(), *ss::hessian_from_xtx(st->xtx, st->k, st->rows), p);
      } else {
        q = ss::rtn_quantize_linear(w, t.rows(), t.cols(), c.bits, 32, c.sym);
      }
      ASSERT_TRUE(q.ok()) << q.status().to_string();
      const std::vector<float> fake = q->dequantize();
      auto ft = ss::Tensor::from_bytes(t.name, ss::DType::F32, t.shape, fake.data(), fake.size() * 4);
      ASSERT_TRUE(ft.ok());
      for (auto& d : dense.tensors)
        if (d.name == t.name) d = *ft;
      if (ss::pack_quantized_linear(*q, "x", c.format).ok()) {
        packed.emplace_back(t.name, std::move(*q));
      } else {
        ASSERT_TRUE(rest.add(*ft).ok());  // widths the format cannot pack stay dense (fake-quant)
        ++n_dense_fallback;
      }
    }
    EXPECT_GE(packed.size(), 20u);  // q, k, v, o of 5 layers at least
    ss::PackedFolderOptions opts;
    opts.format = c.format;
    opts.bits = c.bits;
    opts.group_size = 32;
    opts.sym = c.sym;
    opts.desc_act = c.desc_act;
    const std::string folder = ss::test::temp_dir("packed_folder");
    ASSERT_TRUE(ss::write_packed_quant_folder(rest, packed, folder, opts).ok());
    auto read = ss::read_packed_quant_folder(folder);
    ASSERT_TRUE(read.ok()) << read.status().to_string();
    EXPECT_EQ(read->meta.get_string("quant.checkpoint_format").value_or(""), ss::packed_quant_format_name(c.format));
    auto opened = ss::open_model(folder);  // the registry sniffs a packed folder and dequantizes it too
    ASSERT_TRUE(opened.ok()) << opened.status().to_string();
    EXPECT_NE(opened->find("model.layers.0.self_attn.q_proj.weight"), nullptr);
    EXPECT_EQ(opened->find("model.layers.0.self_attn.q_proj.qweight"), nullptr);
    if (c.format == ss::PackedQuantFormat::GPTQ_V1) {
      // A hostile config: unknown checkpoint format, then bits that disagree with the tensors.
      const std::string bad = ss::test::temp_dir("packed_bad");
      std::filesystem::copy(folder, bad, std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
      auto cfg = nlohmann::json::parse(std::ifstream(bad + "/config.json"));
      cfg["quantization_config"]["checkpoint_format"] = "marlin";
      std::ofstream(bad + "/config.json", std::ios::trunc) << cfg.dump();
      EXPECT_EQ(ss::read_packed_quant_folder(bad).status().code(), ss::StatusCode::UNSUPPORTED);
      cfg["quantization_config"]["checkpoint_format"] = "gptq";
      cfg["quantization_config"]["bits"] = 3;
      std::ofstream(bad + "/config.json", std::ios::trunc) << cfg.dump();
      auto r3 = ss::read_packed_quant_folder(bad);
      EXPECT_FALSE(r3.ok());
      cfg["quantization_config"]["bits"] = 4;
      cfg["quantization_config"]["group_size"] = 16;
      std::ofstream(bad + "/config.json", std::ios::trunc) << cfg.dump();
      EXPECT_FALSE(ss::read_packed_quant_folder(bad).ok());  // scales have 2 groups, 16 implies 4
    }
    auto m_packed = ss::LlamaModel::load(std::make_shared<const ss::TensorStore>(std::move(*read)));
    ASSERT_TRUE(m_packed.ok()) << m_packed.status().to_string();
    auto m_dense = ss::LlamaModel::load(std::make_shared<const ss::TensorStore>(dense));
    ASSERT_TRUE(m_dense.ok());
    const int64_t nv = m_dense->config().vocab_size, n = static_cast<int64_t>(prompt.size());
    std::vector<float> a(n * nv), b(n * nv), o(n * nv);
    auto ca = m_packed->new_cache(n), cb = m_dense->new_cache(n), co = original->new_cache(n);
    ASSERT_TRUE(m_packed->forward(prompt.data(), n, ca, a.data(), true).ok());
    ASSERT_TRUE(m_dense->forward(prompt.data(), n, cb, b.data(), true).ok());
    ASSERT_TRUE(original->forward(prompt.data(), n, co, o.data(), true).ok());
    double max_diff = 0, max_vs_original = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(double(a[i]) - b[i]));
      max_vs_original = std::max(max_vs_original, std::fabs(double(a[i]) - o[i]));
    }
    std::printf("%s %d-bit: packed %zu linears, %d dense fallbacks; max |logit packed - fake-quant| %.3g, vs original %.3g\n",
                ss::packed_quant_format_name(c.format), c.bits, packed.size(), n_dense_fallback, max_diff, max_vs_original);
    EXPECT_LT(max_diff, 1e-5);
    EXPECT_GT(max_vs_original, 1e-4);  // the quantization did change the model (the test can fail)
  }
}

}  // namespace

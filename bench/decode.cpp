// bench/decode: end-to-end inference speed of the Llama engine on a generated random-weight
// Llama of about 100M parameters (d 768, ff 2048, 12 layers, 12 heads / 4 KV heads, vocab 8192:
// every width a multiple of 256), in F32, F16, Q8_0, Q4_0 and Q4_K. For each type it writes the
// model as GGUF (so llama.cpp's llama-bench can run the very same file), then measures:
//   prefill  tokens/s, one 128-token prompt;
//   decode   tokens/s at batch 1 (64 new tokens) and at batch 16 (16 sequences x 32 new tokens);
//   200-prompt greedy run: 200 prompts of 32 tokens, 32 new tokens each, batch 32 -> prompts/s;
//   peak RSS after the runs vs file size + KV cache + 64 MB.
// Q4_K blocks are random bytes with small scales (the K-quant quantizer arrives with the
// compression suite); speed does not depend on the values.
// Usage: bench_decode [OUT_DIR] [types...]   (default OUT_DIR: a temp folder, removed at the end)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "safeshrink/formats.h"
#include "safeshrink/generate.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"
#include "safeshrink/model.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"

using namespace ss;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kD = 768, kFF = 2048, kLayers = 12, kHeads = 12, kKvHeads = 4, kVocab = 8192;

Tensor make_weight(const std::string& name, DType t, int64_t rows, int64_t cols, Rng& rng, float scale) {
  Tensor w = Tensor::zeros(name, t, {rows, cols}).value();
  uint8_t* dst = w.mutable_data();
  std::vector<float> row(cols);
  const uint64_t rb = w.row_bytes();
  for (int64_t r = 0; r < rows; ++r) {
    if (t == DType::Q4_K) {
      for (uint64_t i = 0; i < rb; ++i) dst[r * rb + i] = static_cast<uint8_t>(rng.next_u64());
      auto* blocks = reinterpret_cast<BlockQ4_K*>(dst + r * rb);
      for (int64_t b = 0; b < cols / QK_K; ++b) {
        blocks[b].d = fp32_to_fp16(0.0005f);
        blocks[b].dmin = fp32_to_fp16(0.0002f);
      }
      continue;
    }
    for (auto& v : row) v = static_cast<float>(rng.normal()) * scale;
    if (t == DType::F32) std::memcpy(dst + r * rb, row.data(), rb);
    else kernels::quantize_row_ref(t, row.data(), dst + r * rb, cols);
  }
  return w;
}

Tensor make_norm(const std::string& name) {
  Tensor n = Tensor::zeros(name, DType::F32, {kD}).value();
  float* p = n.mutable_data_as<float>();
  for (int64_t i = 0; i < kD; ++i) p[i] = 1.0f;
  return n;
}

TensorStore make_model(DType t) {
  TensorStore s;
  Rng rng(20261126);
  auto& m = s.meta;
  m.set("general.architecture", MetaValue::of_string("llama"));
  m.set("general.name", MetaValue::of_string(std::string("bench-decode-100m-") + dtype_name(t)));
  // llama_ftype of the file (llama.cpp labels files without it "(guessed)").
  const uint32_t ftype = t == DType::F32 ? 0 : t == DType::F16 ? 1 : t == DType::Q4_0 ? 2 : t == DType::Q8_0 ? 7 : 15;
  m.set("general.file_type", MetaValue::of_u32(ftype));
  m.set("llama.context_length", MetaValue::of_u32(2048));
  m.set("llama.embedding_length", MetaValue::of_u32(kD));
  m.set("llama.feed_forward_length", MetaValue::of_u32(kFF));
  m.set("llama.block_count", MetaValue::of_u32(kLayers));
  m.set("llama.attention.head_count", MetaValue::of_u32(kHeads));
  m.set("llama.attention.head_count_kv", MetaValue::of_u32(kKvHeads));
  m.set("llama.rope.dimension_count", MetaValue::of_u32(kD / kHeads));
  m.set("llama.rope.freq_base", MetaValue::of_f32(10000.0f));
  m.set("llama.attention.layer_norm_rms_epsilon", MetaValue::of_f32(1e-5f));
  m.set("llama.vocab_size", MetaValue::of_u32(kVocab));
  // A byte-fallback SPM vocabulary of placeholder pieces, enough for llama.cpp to load the file.
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int64_t i = 0; i < kVocab; ++i) {
    char buf[16];
    if (i == 0) tokens.push_back("<unk>"), types.push_back(2);
    else if (i == 1) tokens.push_back("<s>"), types.push_back(3);
    else if (i == 2) tokens.push_back("</s>"), types.push_back(3);
    else if (i < 3 + 256) std::snprintf(buf, sizeof buf, "<0x%02X>", static_cast<int>(i - 3)), tokens.push_back(buf), types.push_back(6);
    else std::snprintf(buf, sizeof buf, "\xE2\x96\x81t%lld", static_cast<long long>(i)), tokens.push_back(buf), types.push_back(1);
    scores.push_back(-static_cast<float>(i));
  }
  m.set("tokenizer.ggml.model", MetaValue::of_string("llama"));
  m.set("tokenizer.ggml.tokens", MetaValue::of_strings(tokens));
  m.set("tokenizer.ggml.scores", MetaValue::of_array(MetaType::F32, scores));
  m.set("tokenizer.ggml.token_type", MetaValue::of_array(MetaType::I32, types));
  m.set("tokenizer.ggml.bos_token_id", MetaValue::of_u32(1));
  m.set("tokenizer.ggml.eos_token_id", MetaValue::of_u32(2));
  m.set("tokenizer.ggml.unknown_token_id", MetaValue::of_u32(0));
  const int64_t hd = kD / kHeads;
  (void)s.add(make_weight("token_embd.weight", t, kVocab, kD, rng, 0.5f));
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    (void)s.add(make_norm(p + "attn_norm.weight"));
    (void)s.add(make_weight(p + "attn_q.weight", t, kHeads * hd, kD, rng, 0.04f));
    (void)s.add(make_weight(p + "attn_k.weight", t, kKvHeads * hd, kD, rng, 0.04f));
    (void)s.add(make_weight(p + "attn_v.weight", t, kKvHeads * hd, kD, rng, 0.04f));
    (void)s.add(make_weight(p + "attn_output.weight", t, kD, kHeads * hd, rng, 0.04f));
    (void)s.add(make_norm(p + "ffn_norm.weight"));
    (void)s.add(make_weight(p + "ffn_gate.weight", t, kFF, kD, rng, 0.04f));
    (void)s.add(make_weight(p + "ffn_up.weight", t, kFF, kD, rng, 0.04f));
    (void)s.add(make_weight(p + "ffn_down.weight", t, kD, kFF, rng, 0.04f));
  }
  (void)s.add(make_norm("output_norm.weight"));
  (void)s.add(make_weight("output.weight", t, kVocab, kD, rng, 0.04f));
  return s;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<int32_t> random_prompt(Rng& rng, int64_t n) {
  std::vector<int32_t> p{1};
  while (static_cast<int64_t>(p.size()) < n) p.push_back(static_cast<int32_t>(259 + rng.below(kVocab - 259)));
  return p;
}

}  // namespace

// Measures one GGUF in this process and prints one table row (peak RSS is this process's own).
int run_one(const std::string& path) {
  const double file_mib = static_cast<double>(fs::file_size(path)) / (1 << 20);
  auto store = read_gguf(path);
  if (!store.ok()) { std::fprintf(stderr, "%s\n", store.status().to_string().c_str()); return 2; }
  const int64_t params = store->total_elements();
  const DType t = store->find("blk.0.attn_q.weight")->dtype;
  auto shared = std::make_shared<const TensorStore>(std::move(store).value());
  auto model = LlamaModel::load(shared);
  if (!model.ok()) { std::fprintf(stderr, "%s\n", model.status().to_string().c_str()); return 2; }
  Rng rng(7);
  // prefill
  std::vector<int32_t> prompt = random_prompt(rng, 128);
  KvCache cache = model->new_cache(256);
  std::vector<float> logits(kVocab);
  (void)model->forward(prompt.data(), 16, cache, logits.data());  // warm-up
  cache = model->new_cache(256);
  auto t0 = Clock::now();
  (void)model->forward(prompt.data(), 128, cache, logits.data());
  const double prefill = 128 / seconds_since(t0);
  // decode, batch 1
  t0 = Clock::now();
  int32_t tok = 1;
  for (int i = 0; i < 64; ++i) (void)model->forward(&tok, 1, cache, logits.data());
  const double decode1 = 64 / seconds_since(t0);
  // decode, batch 16
  std::vector<KvCache> caches;
  std::vector<std::vector<float>> outs(16, std::vector<float>(kVocab));
  std::vector<LlamaModel::BatchItem> items;
  for (int j = 0; j < 16; ++j) caches.push_back(model->new_cache(64));
  std::vector<int32_t> toks(16, 5);
  t0 = Clock::now();
  for (int step = 0; step < 32; ++step) {
    items.clear();
    for (int j = 0; j < 16; ++j) items.push_back({&toks[j], 1, &caches[j], outs[j].data(), false});
    (void)model->forward_batch(items);
  }
  const double decode16 = 16 * 32 / seconds_since(t0);
  caches.clear();
  // 200-prompt greedy run
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 200; ++i) prompts.push_back(random_prompt(rng, 32));
  SamplingConfig cfg;
  cfg.max_new_tokens = 32;
  t0 = Clock::now();
  auto gens = generate(*model, prompts, cfg, 32);
  const double run_s = seconds_since(t0);
  if (!gens.ok()) std::fprintf(stderr, "%s\n", gens.status().to_string().c_str());
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss = ru.ru_maxrss / 1024.0;
  // Largest KV in use at once: the 128+64-position cache above is 256 positions; the batch of 32
  // sequences holds 64 positions each. Per position: layers x kv_dim x (K and V) x 4 bytes.
  const double per_pos = static_cast<double>(kLayers) * kKvHeads * (kD / kHeads) * 2 * 4;
  const double kv_mib = std::max(256.0, 32.0 * 64) * per_pos / (1 << 20);
  std::printf("| %s | %.1f | %.1fM | %.1f | %.1f | %.1f | %.2f | %.1f | %.0f | %.0f |\n", dtype_name(t), file_mib,
              params / 1e6, prefill, decode1, decode16, run_s, 200 / run_s, rss, file_mib + kv_mib + 64);
  std::fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--run") return run_one(argv[2]);
  const bool keep = argc > 1;
  const fs::path dir = keep ? fs::path(argv[1]) : fs::temp_directory_path() / "safeshrink-bench-decode";
  fs::create_directories(dir);
  std::vector<DType> types = {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K};
  if (argc > 2) {
    types.clear();
    for (int i = 2; i < argc; ++i) types.push_back(*dtype_from_name(argv[i]));
  }
  std::printf("threads: %d\n\n", default_pool().size());
  std::printf("| type | file MiB | params | prefill tok/s (128) | decode tok/s b=1 | decode tok/s b=16 | 200 prompts: s | prompts/s | peak RSS MiB | file+KV+64 MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  for (DType t : types) {
    const std::string path = (dir / (std::string("bench-100m-") + dtype_name(t) + ".gguf")).string();
    if (!fs::exists(path)) {
      TensorStore s = make_model(t);
      Status st = write_gguf(s, path);
      if (!st.ok()) { std::fprintf(stderr, "%s\n", st.to_string().c_str()); return 2; }
    }
    const std::string cmd = fs::read_symlink("/proc/self/exe").string() + " --run '" + path + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "run failed for %s\n", path.c_str());
    if (!keep) fs::remove(path);
  }
  return 0;
}

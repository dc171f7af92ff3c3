// bench/compress: every compression method on the built-in model tiny-chat (data/models/tiny-chat):
// storage cost (bits/weight as the plan counts it — codes + scales + zeros, the seed's 16/8/4/2 —
// and bytes per weight of the file actually written: GGUF block types are real, INTn / GPTQ / AWQ
// are written fake-quant as F16), perplexity on held-out chat text (the test split's benign
// dialogues, rendered with ChatML), mean KLD and top-1 agreement of the next-token distributions vs
// the original on the same text, and the time to compress (calibration included for the methods
// that need it). Prints one Markdown table; docs/compression.md quotes it.
// Usage: bench_compress [methods...]   (default: the list below)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "safeshrink/calibration.h"
#include "safeshrink/chat_template.h"
#include "safeshrink/compress.h"
#include "safeshrink/eval.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "safeshrink/thread_pool.h"

using namespace ss;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kRoot = SAFESHRINK_BENCH_SOURCE_DIR;

std::vector<std::string> chat_texts(const std::string& file, const std::string& label, size_t n) {
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (out.size() < n && std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("label", "") != label) continue;
    std::vector<ChatMessage> msgs;
    for (const auto& m : j["messages"]) msgs.push_back({m["role"], m["content"]});
    ChatRenderOptions o;
    o.add_generation_prompt = false;
    out.push_back(render_chat(ChatFamily::CHATML, msgs, o).value());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> methods = {"fp16",        "bf16",        "int8",         "int4-g128",   "int3-g64",
                                      "int2-g32",    "q8_0",        "q4_0",         "q5_k_m",      "q4_k_m",
                                      "gptq-4-g128", "awq-4-g128",  "magnitude-50", "wanda-50",    "sparsegpt-50",
                                      "2:4"};
  if (argc > 1) methods.assign(argv + 1, argv + argc);
  auto loaded = load_model_with_tokenizer(kRoot + "/data/models/tiny-chat");
  if (!loaded.ok()) {
    std::fprintf(stderr, "bench_compress: %s\n", loaded.status().to_string().c_str());
    return 2;
  }
  const Tokenizer& tok = *loaded->tokenizer;
  const LlamaModel& original = *loaded->model;
  // Held-out text: 200 benign test dialogues; calibration: 256 training dialogues (other file).
  std::vector<std::vector<int32_t>> passages;
  for (const auto& t : chat_texts(kRoot + "/data/corpus/test.jsonl", "benign", 200))
    passages.push_back(tok.encode(t, false, true).value());
  const std::string dir = (fs::temp_directory_path() / "safeshrink-bench-compress").string();
  fs::create_directories(dir);
  {
    std::ofstream calib(dir + "/calib.txt");
    for (const auto& t : chat_texts(kRoot + "/data/corpus/safety_train.jsonl", "benign", 128)) calib << t << "\n";
    for (const auto& t : chat_texts(kRoot + "/data/corpus/base_train.jsonl", "benign", 128)) calib << t << "\n";
  }
  std::shared_ptr<const Calibration> calib_cache[2];
  CompressContext ctx;
  ctx.pool = &default_pool();
  ctx.calibrate = [&](bool hessian) -> Result<std::shared_ptr<const Calibration>> {
    auto& slot = calib_cache[hessian ? 1 : 0];
    if (!slot) {
      CalibrationSpec spec;
      spec.source = dir + "/calib.txt";
      spec.n_samples = 64;
      spec.seq_len = 96;
      spec.hessian = hessian;
      SS_ASSIGN_OR_RETURN(Calibration c, capture_calibration(original, tok, spec));
      slot = std::make_shared<const Calibration>(std::move(c));
    }
    return slot;
  };
  auto ppl0 = perplexity(original, passages).value();
  std::printf("tiny-chat: %s; held-out text: %zu chat dialogues, %lld tokens; original perplexity %.3f\n\n",
              original.config().summary().c_str(), passages.size(), static_cast<long long>(ppl0.n_tokens), ppl0.ppl);
  std::printf("| method | bits/weight (plan) | file bytes/weight | perplexity | mean KLD vs original | top-1 agreement | seconds |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const auto& m : methods) {
    calib_cache[0].reset();  // calibration time belongs to each method that uses it
    calib_cache[1].reset();
    const auto t0 = Clock::now();
    auto out = compress_variant(*loaded->store, m, ctx);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!out.ok()) {
      std::printf("| %s | error: %s |\n", m.c_str(), out.status().to_string().c_str());
      continue;
    }
    const std::string path = dir + "/variant.gguf";
    Status st = save_llama_model(out->store, path);
    int64_t n_weights = 0;
    for (const auto& e : out->plan.entries) {
      const Tensor* t = out->store.find(e.tensor);
      if (t && t->shape.size() == 2) n_weights += t->numel();
    }
    uint64_t weight_bytes = 0;
    if (st.ok()) {
      auto written = open_model(path);
      if (written.ok())
        for (const auto& t : written->tensors)
          if (t.shape.size() == 2) weight_bytes += t.nbytes;
    }
    auto shared = std::make_shared<const TensorStore>(std::move(out->store));
    auto variant = LlamaModel::load(shared);
    if (!variant.ok()) {
      std::printf("| %s | error: %s |\n", m.c_str(), variant.status().to_string().c_str());
      continue;
    }
    auto ppl = perplexity(*variant, passages).value();
    double kld = 0, top1 = 0;
    int64_t n = 0;
    for (const auto& p : passages) {
      if (p.size() < 2) continue;
      auto d = teacher_forced_drift(original, *variant, {p[0]}, std::vector<int32_t>(p.begin() + 1, p.end())).value();
      kld += d.kld_mean * d.n_tokens;
      top1 += d.top1_agree * d.n_tokens;
      n += d.n_tokens;
    }
    std::printf("| %s | %.3f | %.3f | %.3f | %.5f | %.4f | %.2f |\n", m.c_str(), out->plan.bits_per_weight,
                n_weights ? static_cast<double>(weight_bytes) / n_weights : 0.0, ppl.ppl, kld / n, top1 / n, secs);
    std::fflush(stdout);
  }
  fs::remove_all(dir);
  return 0;
}

// bench/train: tokens/s of one training step of the built-in model's shape (dim 128, 6 layers,
// 4 heads, ffn 384, vocab 2048) — forward + backward of the cross entropy on a batch of 16 x 128
// tokens, then the same plus the AdamW update — with 1 and 2 threads; and, in the same run, the same
// forward + backward in PyTorch (tests/py/autograd_bench_torch.py, eager float32, Debian's
// python3-torch) so the table quotes a ratio. Usage: bench_train [REPEATS]   (default 5)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/train.h"

using namespace ss;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kBatch = 16, kSeq = 128;

LlamaConfig tiny_chat_shape() {
  LlamaConfig c;
  c.vocab_size = 2048;
  c.hidden_size = 128;
  c.intermediate_size = 384;
  c.n_layers = 6;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 32;
  c.max_position = 256;
  return c;
}

double run(int threads, int repeats, bool with_optimizer) {
  ThreadPool pool(threads);
  auto model = LlamaTrainModel::init_random(tiny_chat_shape(), 1).value();
  TrainBatch b;
  b.batch = kBatch;
  b.seq = kSeq;
  Rng rng(2);
  for (int64_t i = 0; i < kBatch * kSeq; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.next_u64() % 2048));
    b.targets.push_back(static_cast<int32_t>(rng.next_u64() % 2048));
  }
  AdamW opt;
  auto step = [&] {
    zero_grad(model.params());
    (void)model.forward_backward(b, LossSpec{}, &pool).value();
    if (with_optimizer) opt.step(model.params(), 1e-3);
  };
  step();  // warm-up: first-touch of buffers
  const auto t0 = Clock::now();
  for (int r = 0; r < repeats; ++r) step();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(kBatch * kSeq) * repeats / s;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 5;
  std::printf("training step of the built-in model's shape (dim 128, 6 layers, ffn 384, vocab 2048), "
              "batch %lld x %lld tokens\n\n", static_cast<long long>(kBatch), static_cast<long long>(kSeq));
  std::printf("%-34s %8s %12s\n", "step", "threads", "tokens/s");
  for (int threads : {1, 2}) {
    std::printf("%-34s %8d %12.0f\n", "safeshrink forward+backward", threads, run(threads, repeats, false));
    std::printf("%-34s %8d %12.0f\n", "safeshrink forward+backward+AdamW", threads, run(threads, repeats, true));
  }
  std::fflush(stdout);
  const std::string cmd = "/usr/bin/python3 " SAFESHRINK_BENCH_SOURCE_DIR "/tests/py/autograd_bench_torch.py 1 2";
  std::printf("\nPyTorch (same forward+backward, %s):\n", cmd.c_str());
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0) std::printf("(PyTorch reference unavailable: python3-torch missing?)\n");
  return 0;
}

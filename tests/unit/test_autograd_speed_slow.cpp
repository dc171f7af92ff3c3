// Training throughput of LlamaTrainModel (forward + backward, no optimizer step) for the size the
// autograd brief names: dim 128, 6 layers, 4 heads, ffn 384, vocab 2048, seq 128, batch 16, on 1 and
// 2 threads. Prints tokens/s; the PyTorch figure for the same step comes from
// tests/py/autograd_bench_torch.py. Slow (label `slow`): not part of `make test`.
// The only assertion is that the loss is finite and near log(vocab) (a random init).
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <cmath>

#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/train.h"

using namespace ss;

TEST(AutogradSpeed, LlamaForwardBackwardTokensPerSecond) {
  LlamaConfig c;
  c.vocab_size = 2048;
  c.hidden_size = 128;
  c.intermediate_size = 384;
  c.n_layers = 6;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 32;
  auto m = LlamaTrainModel::init_random(c, 1);
  ASSERT_TRUE(m.ok());
  TrainBatch b;
  b.batch = 16;
  b.seq = 128;
  Rng rng(2);
  for (int64_t i = 0; i < b.batch * b.seq; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng.below(2048)));
    b.targets.push_back(static_cast<int32_t>(rng.below(2048)));
  }
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    zero_grad(m->params());
    auto warm = m->forward_backward(b, {}, &pool);
    ASSERT_TRUE(warm.ok());
    EXPECT_NEAR(*warm, std::log(2048.0), 0.2);
    const int iters = 5;
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    for (int i = 0; i < iters; ++i) ASSERT_TRUE(m->forward_backward(b, {}, &pool).ok());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    // On a shared machine wall time depends on the neighbours; tokens per CPU-second does less.
    std::printf("[ llama 6x128 ff384 V2048, B16 x S128, %d thread(s) ] %.1f ms/step, %.0f tokens/s wall, "
                "%.0f tokens per CPU-second\n", threads, 1e3 * s / iters, iters * b.batch * b.seq / s,
                iters * b.batch * b.seq / cpu);
  }
}

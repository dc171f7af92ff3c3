// bench/vision: images/s of the vision classifiers (include/safeshrink/vision.h) on random 28x28
// images — training (forward + backward + AdamW through train_vision, batch 64) and inference
// (VisionModel::logits, the tape path) at FP32 and INT8, with 1 and 2 threads — for the default CNN
// (conv 16, 32 + fc 128) and an MLP (fc 128); the bytes of the FP32 and INT8 files; and, in the same
// run, PyTorch's eager float32 on the same shapes (tests/py/vision_bench_torch.py) for a ratio.
// INT8 = the int8 (per-channel RTN) variant's weights dequantized to F32: inference runs the same F32
// kernels, so its speed equals FP32 by construction (there is no int8 kernel); the row is there to
// show that, and the file sizes show what INT8 saves. Usage: bench_vision [SECONDS_PER_ROW] (default 2)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "safeshrink/formats.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"
#include "safeshrink/vision.h"

using namespace ss;
using Clock = std::chrono::steady_clock;

namespace {

ImageSet random_images(int64_t n) {
  ImageSet s;
  s.n = n;
  s.height = s.width = 28;
  s.source = "random";
  s.pixels.resize(static_cast<size_t>(n * 784));
  s.labels.resize(static_cast<size_t>(n));
  Rng rng(3);
  for (float& v : s.pixels) v = static_cast<float>(rng.uniform());
  for (int32_t& y : s.labels) y = static_cast<int32_t>(rng.below(10));
  return s;
}

double train_rate(const VisionModel& start, const ImageSet& images, int threads, double seconds) {
  ThreadPool pool(threads);
  VisionModel m = start;
  VisionTrainConfig tc;
  tc.batch = 64;
  tc.epochs = 1000;
  tc.max_steps = 3;  // warm-up
  (void)train_vision(m, images, tc, &pool).value();
  int64_t images_done = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  tc.max_steps = 20;
  while (elapsed < seconds) {
    auto r = train_vision(m, images, tc, &pool).value();
    images_done += r.images;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return static_cast<double>(images_done) / elapsed;
}

double infer_rate(const VisionModel& m, const ImageSet& images, int threads, double seconds) {
  ThreadPool pool(threads);
  (void)m.logits(images.pixels.data(), 256, &pool).value();  // warm-up
  int64_t images_done = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    (void)m.logits(images.pixels.data(), images.n, &pool).value();
    images_done += images.n;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return static_cast<double>(images_done) / elapsed;
}

uint64_t file_bytes(const TensorStore& s, const std::string& path) {
  if (!write_safetensors(s, path).ok()) return 0;
  std::error_code ec;
  const uint64_t n = std::filesystem::file_size(path, ec);
  std::filesystem::remove(path, ec);
  return ec ? 0 : n;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const ImageSet images = random_images(2048);
  VisionConfig cnn;
  VisionConfig mlp;
  mlp.arch = "mlp";
  mlp.conv_channels.clear();
  mlp.hidden = {128};
  std::printf("vision classifiers on random 28x28 images; training batch 64 (forward + backward + AdamW), "
              "inference in chunks of 128 images per tape\n\n");
  std::printf("%-6s %-34s %8s %12s\n", "model", "work", "threads", "images/s");
  const std::string tmp = (std::filesystem::temp_directory_path() / "safeshrink_bench_vision.safetensors").string();
  for (const VisionConfig& c : {cnn, mlp}) {
    const VisionModel m = VisionModel::init_random(c, 1).value();
    const VisionVariant int8 = vision_variant(m, "int8", nullptr).value();
    for (int threads : {1, 2}) {
      std::printf("%-6s %-34s %8d %12.0f\n", c.arch.c_str(), "train step (batch 64)", threads,
                  train_rate(m, images, threads, seconds));
      std::printf("%-6s %-34s %8d %12.0f\n", c.arch.c_str(), "inference FP32", threads,
                  infer_rate(m, images, threads, seconds));
      std::printf("%-6s %-34s %8d %12.0f\n", c.arch.c_str(), "inference INT8 (dequantized F32)", threads,
                  infer_rate(int8.model, images, threads, seconds));
      std::fflush(stdout);
    }
    const TensorStore fp32 = m.to_store(DType::F32).value();
    const CompressOutput q = compress_variant(fp32, "int8", CompressContext{}).value();
    int64_t weights = 0, biases = 0;
    for (const Param& p : m.params()) (p.shape.size() >= 2 ? weights : biases) += p.numel();
    std::printf("%-6s files: FP32 %llu bytes; INT8 as written (f16 fake-quant values) %llu bytes; INT8 packed "
                "(8-bit codes + f16 row scales, %.3f bits/weight over %lld weights, f32 biases) ~%.0f bytes\n",
                c.arch.c_str(), static_cast<unsigned long long>(file_bytes(fp32, tmp)),
                static_cast<unsigned long long>(file_bytes(q.store, tmp)), int8.bits_per_weight,
                static_cast<long long>(weights),
                int8.bits_per_weight * static_cast<double>(weights) / 8 + 4.0 * static_cast<double>(biases));
  }
  std::fflush(stdout);
  const std::string cmd = "/usr/bin/python3 " SAFESHRINK_BENCH_SOURCE_DIR "/tests/py/vision_bench_torch.py " +
                          std::to_string(seconds);
  std::printf("\nPyTorch (same shapes, eager float32, %s):\n", cmd.c_str());
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0) std::printf("(PyTorch reference unavailable: python3-torch missing?)\n");
  return 0;
}

// bench_kernels: GFLOP/s of ss::kernels::matmul per weight type, batch size and thread count, next
// to llama.cpp's `test-backend-ops perf -o MUL_MAT` numbers for the same shape (m = 4096, k = 14336,
// 2 threads), with the ratio. One markdown table on stdout. Not a correctness check (that is
// tests/unit/test_kernels_simd.cpp). To bench one more type: add it to kTypes (and its llama.cpp
// number to kLlamaCpp when there is one).
//   bench_kernels [--m 4096] [--k 14336] [--n 1,512] [--threads 1,2] [--types q4_0,q8_0]
//                 [--levels avx2,scalar] [--min-seconds 1.0] [--clock wall|thread] [--stat median|min]
// --clock thread times with the calling thread's CPU time: with --threads 1 it measures the kernel
// without the time other processes take the core away; --stat min reports the fastest run instead of
// the median (both for tuning on a busy machine; the table header says which was used).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <ctime>
#include <vector>

#include "kernels/cpu/dispatch.h"
#include "safeshrink/cpu_features.h"
#include "safeshrink/dtype.h"
#include "safeshrink/half.h"
#include "safeshrink/kernels.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"

using namespace ss;

namespace {

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                        DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q6_K};

// llama.cpp test-backend-ops perf MUL_MAT, m = 4096, k = 14336, 2 threads, GFLOP/s (from the task
// brief; measured on an AVX-512 machine of the same class).
struct LlamaCppBar {
  DType type;
  double n1, n512;
};
const LlamaCppBar kLlamaCpp[] = {{DType::F32, 12.5, 98.4},  {DType::F16, 39.2, 204.5}, {DType::Q8_0, 71.9, 200.8},
                                 {DType::Q4_0, 102.0, 182.0}, {DType::Q4_K, 128.7, 128.7}, {DType::Q6_K, 92.2, 122.8}};

double llama_cpp_bar(DType t, int64_t n, int threads) {
  if (threads != 2 || (n != 1 && n != 512)) return 0;
  for (const auto& b : kLlamaCpp)
    if (b.type == t) return n == 1 ? b.n1 : b.n512;
  return 0;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Weights of type t: quantized from normal floats where a reference quantizer exists, otherwise
// random K-quant blocks with small finite scales (the speed does not depend on the values).
std::vector<uint8_t> make_weights(DType t, int64_t m, int64_t k, ThreadPool& pool) {
  const uint64_t row_bytes = *dtype_row_bytes(t, k);
  std::vector<uint8_t> w(row_bytes * static_cast<uint64_t>(m));
  pool.parallel_for(m, [&](int64_t b, int64_t e, int) {
    Rng rng(0xbe9c4 + static_cast<uint64_t>(b));
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t i = b; i < e; ++i) {
      uint8_t* dst = w.data() + row_bytes * static_cast<uint64_t>(i);
      if (kernels::has_quantize_ref(t)) {
        for (auto& v : row) v = static_cast<float>(rng.normal());
        kernels::quantize_row_ref(t, row.data(), dst, k);
      } else {
        for (uint64_t j = 0; j < row_bytes; ++j) dst[j] = static_cast<uint8_t>(rng.next_u64());
        const int64_t nb = k / QK_K;
        const uint16_t small = fp32_to_fp16(0.01f);
        for (int64_t j = 0; j < nb; ++j) {
          uint8_t* blk = dst + j * dtype_info(t).type_size;
          if (t == DType::Q4_K) {
            std::memcpy(blk, &small, 2);
            std::memcpy(blk + 2, &small, 2);
          } else if (t == DType::Q6_K) {
            std::memcpy(blk + offsetof(BlockQ6_K, d), &small, 2);
          }
        }
      }
    }
  });
  return w;
}

bool g_thread_clock = false;
bool g_stat_min = false;

double now_seconds() {
  if (g_thread_clock) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a.empty() ? "?" : a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t m = 4096, k = 14336;
  std::vector<int64_t> batches = {1, 512};
  std::vector<int> thread_counts = {1, 2};
  std::vector<DType> types(std::begin(kTypes), std::end(kTypes));
  std::vector<SimdLevel> levels = {simd_level()};
  double min_seconds = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--m") m = std::atoll(value.c_str());
    else if (flag == "--k") k = std::atoll(value.c_str());
    else if (flag == "--min-seconds") min_seconds = std::atof(value.c_str());
    else if (flag == "--clock") g_thread_clock = value == "thread";
    else if (flag == "--stat") g_stat_min = value == "min";
    else if (flag == "--n") { batches.clear(); for (auto& s : split(value)) batches.push_back(std::atoll(s.c_str())); }
    else if (flag == "--threads") { thread_counts.clear(); for (auto& s : split(value)) thread_counts.push_back(std::atoi(s.c_str())); }
    else if (flag == "--types") {
      types.clear();
      for (auto& s : split(value)) {
        auto t = dtype_from_name(s);
        if (!t) { std::fprintf(stderr, "unknown type %s\n", s.c_str()); return 2; }
        types.push_back(*t);
      }
    } else if (flag == "--levels") {
      levels.clear();
      for (auto& s : split(value)) {
        const SimdLevel l = s == "scalar" ? SimdLevel::SCALAR : s == "avx512" ? SimdLevel::AVX512 : SimdLevel::AVX2;
        if (!kernels::cpu::level_available(l)) { std::fprintf(stderr, "level %s not on this CPU\n", s.c_str()); return 2; }
        levels.push_back(l);
      }
    } else { std::fprintf(stderr, "unknown flag %s\n", flag.c_str()); return 2; }
  }

  std::printf("bench_kernels: matmul Y(n x m) = X(n x k) * W^T, m = %lld, k = %lld; cpu: %s; load average at start: %s\n\n",
              static_cast<long long>(m), static_cast<long long>(k), cpu_features().describe().c_str(),
              load_average().c_str());
  std::printf("| type | n | threads | level | implementation | ms (%s) | GFLOP/s | weights GB/s | llama.cpp GFLOP/s | ratio |\n", g_stat_min ? "min" : "median");
  std::printf("|---|---:|---:|---|---|---:|---:|---:|---:|---:|\n");

  int64_t max_n = *std::max_element(batches.begin(), batches.end());
  std::vector<float> x(static_cast<size_t>(max_n * k));
  Rng rng(7);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  std::vector<float> y(static_cast<size_t>(max_n * m));

  for (DType t : types) {
    ThreadPool setup_pool(hardware_threads());
    const std::vector<uint8_t> w = make_weights(t, m, k, setup_pool);
    for (int64_t n : batches) {
      for (int threads : thread_counts) {
        ThreadPool pool(threads);
        for (SimdLevel level : levels) {
          auto run = [&] { kernels::cpu::matmul_at(level, t, w.data(), m, k, x.data(), n, y.data(), pool); };
          run();  // warm-up: page faults, caches, OpenBLAS buffers
          std::vector<double> times;
          const double start = now_seconds();
          while (times.size() < 3 || (now_seconds() - start < min_seconds && times.size() < 50)) {
            const double t0 = now_seconds();
            run();
            times.push_back(now_seconds() - t0);
          }
          std::sort(times.begin(), times.end());
          const double median = g_stat_min ? times.front() : times[times.size() / 2];
          const double gflops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / median / 1e9;
          const double gbps = static_cast<double>(w.size()) / median / 1e9;
          const double bar = llama_cpp_bar(t, n, threads);
          char bar_text[32] = "", ratio_text[32] = "";
          if (bar > 0) {
            std::snprintf(bar_text, sizeof bar_text, "%.1f", bar);
            std::snprintf(ratio_text, sizeof ratio_text, "%.2f", gflops / bar);
          }
          std::printf("| %s | %lld | %d | %s | %s | %.2f | %.1f | %.1f | %s | %s |\n", dtype_name(t),
                      static_cast<long long>(n), threads, simd_level_name(level),
                      kernels::cpu::matmul_impl_name_at(level, t, n), median * 1e3, gflops, gbps, bar_text, ratio_text);
          std::fflush(stdout);
        }
      }
    }
  }
  std::printf("\nload average at end: %s\n", load_average().c_str());
  return 0;
}

// bench_manifest: GB/s of `safeshrink manifest` hashing (build_manifest: SHA-256 through OpenSSL,
// files in parallel on the thread pool) over a generated model-like folder, against coreutils'
// sha256sum over the same files in the same run (one process, files one after another, and
// `xargs -P <threads>` to give it the same parallelism). Each is run REPEATS times; the best time is
// reported. The folder (default 2 GiB: 8 files of 256 MiB) is written under /tmp and removed.
// Usage: bench_manifest [GiB] [files]. Not a test: it checks only that both agree on every digest.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "safeshrink/integrity.h"
#include "safeshrink/thread_pool.h"

namespace fs = std::filesystem;

namespace {

constexpr int kRepeats = 2;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

void write_random_file(const std::string& path, uint64_t bytes, uint64_t seed) {
  std::vector<uint64_t> block(1 << 17);  // 1 MiB
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  FILE* f = std::fopen(path.c_str(), "wb");
  for (uint64_t done = 0; done < bytes; done += 8 * block.size()) {
    for (auto& v : block) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      v = x;
    }
    std::fwrite(block.data(), 8, block.size(), f);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int n_files = argc > 2 ? std::atoi(argv[2]) : 8;
  const uint64_t per_file = static_cast<uint64_t>(gib * (1ull << 30) / n_files) / (8u << 20) * (8u << 20);
  const std::string dir = "/tmp/safeshrink-bench-manifest-" + std::to_string(getpid());
  fs::create_directories(dir);
  for (int k = 0; k < n_files; ++k) write_random_file(dir + "/model-" + std::to_string(k) + ".safetensors", per_file, k + 1);
  const double total_gb = static_cast<double>(per_file) * n_files / 1e9;
  const int threads = ss::default_pool().size();

  double best_ours = 1e30, best_seq = 1e30, best_par = 1e30;
  ss::Manifest m;
  std::string seq_out;
  for (int r = 0; r < kRepeats; ++r) {
    double t0 = now();
    auto res = ss::build_manifest(dir);
    best_ours = std::min(best_ours, now() - t0);
    if (!res.ok()) {
      std::fprintf(stderr, "%s\n", res.status().to_string().c_str());
      return 2;
    }
    m = *res;
    t0 = now();
    seq_out = run("cd '" + dir + "' && sha256sum *");
    best_seq = std::min(best_seq, now() - t0);
    t0 = now();
    run("cd '" + dir + "' && ls | xargs -P " + std::to_string(threads) + " -n 1 sha256sum");
    best_par = std::min(best_par, now() - t0);
  }
  // Both must agree on every file.
  int agree = 0;
  for (const auto& f : m.files)
    if (seq_out.find(f.sha256 + "  " + f.path) != std::string::npos) ++agree;
  fs::remove_all(dir);

  std::printf("bench_manifest: %.2f GB in %d files, %d threads, best of %d (page cache warm)\n", total_gb, n_files, threads, kRepeats);
  std::printf("%-36s %10s %10s\n", "implementation", "seconds", "GB/s");
  std::printf("%-36s %10.3f %10.3f\n", "safeshrink build_manifest", best_ours, total_gb / best_ours);
  std::printf("%-36s %10.3f %10.3f\n", "sha256sum (one process)", best_seq, total_gb / best_seq);
  std::printf("%-36s %10.3f %10.3f\n", ("sha256sum (xargs -P " + std::to_string(threads) + ")").c_str(), best_par, total_gb / best_par);
  std::printf("ratio vs sha256sum one process: %.2fx; vs xargs -P: %.2fx; digests agree on %d/%zu files\n",
              best_seq / best_ours, best_par / best_ours, agree, m.files.size());
  return agree == static_cast<int>(m.files.size()) ? 0 : 1;
}

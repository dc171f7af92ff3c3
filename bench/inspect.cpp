// bench/inspect: peak resident memory of `safeshrink inspect` on a 1 GB GGUF. Writes a synthetic
// Llama-shaped GGUF (Q4_K matrices, F32 norms; content irrelevant to inspect) of about 1 GiB to a
// temp folder, runs the CLI as a child process and reads its peak RSS from wait4(). The goal
// (foundation issue): under 50 MB, i.e. the file is mmapped and no tensor bytes are copied.
// Usage: bench_inspect [SAFESHRINK_BINARY] [SIZE_MIB]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "safeshrink/formats.h"

using namespace ss;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::string cli = argc > 1 ? argv[1] : (fs::path(argv[0]).parent_path().parent_path() / "safeshrink").string();
  const int64_t target_mib = argc > 2 ? std::atoll(argv[2]) : 1024;
  const fs::path dir = fs::temp_directory_path() / ("safeshrink-bench-inspect-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "big.gguf").string();

  // Llama-ish shapes: d=4096, ff=14336; each layer ~ (4*4096*4096 + 3*4096*14336) Q4_K weights.
  TensorStore s;
  s.meta.set("general.architecture", MetaValue::of_string("llama"));
  s.meta.set("general.name", MetaValue::of_string("bench-inspect synthetic"));
  const int64_t d = 4096, ff = 14336;
  int64_t layer = 0;
  uint64_t total = 0;
  auto add = [&](const std::string& name, DType t, std::vector<int64_t> shape) {
    auto tensor = Tensor::zeros(name, t, std::move(shape));
    if (!tensor.ok()) { std::fprintf(stderr, "%s\n", tensor.status().to_string().c_str()); std::exit(2); }
    total += tensor->nbytes;
    (void)s.add(std::move(tensor).value());
  };
  while (total < static_cast<uint64_t>(target_mib) << 20) {
    const std::string p = "blk." + std::to_string(layer) + ".";
    add(p + "attn_norm.weight", DType::F32, {d});
    add(p + "attn_q.weight", DType::Q4_K, {d, d});
    add(p + "attn_k.weight", DType::Q4_K, {d, d});
    add(p + "attn_v.weight", DType::Q4_K, {d, d});
    add(p + "attn_output.weight", DType::Q4_K, {d, d});
    add(p + "ffn_norm.weight", DType::F32, {d});
    add(p + "ffn_gate.weight", DType::Q4_K, {ff, d});
    add(p + "ffn_up.weight", DType::Q4_K, {ff, d});
    add(p + "ffn_down.weight", DType::Q4_K, {d, ff});
    ++layer;
  }
  s.meta.set("llama.block_count", MetaValue::of_u32(static_cast<uint32_t>(layer)));
  auto t0 = std::chrono::steady_clock::now();
  Status st = write_gguf(s, path);
  if (!st.ok()) { std::fprintf(stderr, "%s\n", st.to_string().c_str()); return 2; }
  const double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.tensors.clear();  // release the heap tensors before measuring the child

  t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    execl(cli.c_str(), cli.c_str(), "inspect", path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  const double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double file_mib = static_cast<double>(fs::file_size(path)) / (1 << 20);
  fs::remove_all(dir);
  const double rss_mib = ru.ru_maxrss / 1024.0;
  std::printf("| file | size | inspect wall | peak RSS | goal | verdict |\n|---|---|---|---|---|---|\n");
  std::printf("| synthetic Q4_K llama, %lld layers | %.0f MiB | %.3f s | %.1f MiB | < 50 MB | %s |\n",
              static_cast<long long>(layer), file_mib, run_s, rss_mib, rss_mib * 1.048576 < 50 ? "ok" : "OVER");
  std::printf("(write took %.2f s; exit status %d)\n", write_s, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

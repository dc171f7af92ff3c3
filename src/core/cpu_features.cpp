// cpuid/xgetbv probing. x86-64 only; other CPUs report no features and run the scalar twins.
#include "safeshrink/cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define SS_X86 1
#endif

namespace ss {
namespace {

CpuFeatures probe() {
  CpuFeatures f;
#ifdef SS_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  f.fma = (c >> 12) & 1;
  f.f16c = (c >> 29) & 1;
  const bool avx = (c >> 28) & 1;
  uint64_t xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  const bool os_avx = avx && (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;
  if (!os_avx) { f.fma = f.f16c = false; return f; }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b >> 5) & 1;
    if (os_avx512) {
      f.avx512f = (b >> 16) & 1;
      f.avx512bw = (b >> 30) & 1;
      f.avx512vl = (b >> 31) & 1;
      f.avx512vnni = (c >> 11) & 1;
    }
    __cpuid_count(7, 1, a, b, c, d);
    f.avx_vnni = (a >> 4) & 1;
    if (os_avx512) f.avx512bf16 = (a >> 5) & 1;
  }
#endif
  return f;
}

}  // namespace

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2"); add(fma, "fma"); add(f16c, "f16c");
  add(avx512f, "avx512f"); add(avx512bw, "avx512bw"); add(avx512vl, "avx512vl");
  add(avx512vnni, "avx512vnni"); add(avx512bf16, "avx512bf16"); add(avx_vnni, "avx_vnni");
  return s.empty() ? "none" : s;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = probe();
  return f;
}

SimdLevel simd_level() {
  static const SimdLevel level = [] {
    const CpuFeatures& f = cpu_features();
    SimdLevel best = f.has_avx512_level() ? SimdLevel::AVX512 : f.has_avx2_level() ? SimdLevel::AVX2 : SimdLevel::SCALAR;
    if (const char* cap = std::getenv("SAFESHRINK_CPU")) {
      SimdLevel want = best;
      if (std::strcmp(cap, "scalar") == 0) want = SimdLevel::SCALAR;
      else if (std::strcmp(cap, "avx2") == 0) want = SimdLevel::AVX2;
      else if (std::strcmp(cap, "avx512") == 0) want = SimdLevel::AVX512;
      if (static_cast<int>(want) < static_cast<int>(best)) best = want;
    }
    return best;
  }();
  return level;
}

const char* simd_level_name(SimdLevel l) {
  switch (l) {
    case SimdLevel::SCALAR: return "scalar";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::AVX512: return "avx512";
  }
  return "?";
}

}  // namespace ss

// What the CPU we run on can do, read once with cpuid/xgetbv. Kernels choose their twin from this
// at run time; nothing is compiled for the build machine's CPU. SAFESHRINK_CPU=scalar|avx2|avx512
// in the environment caps the level (for tests and benches of a slower twin).
#pragma once

#include <string>

namespace ss {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avx_vnni = false;
  bool has_avx2_level() const { return avx2 && fma && f16c; }
  bool has_avx512_level() const { return has_avx2_level() && avx512f && avx512bw && avx512vl; }
  std::string describe() const;  // "avx2 fma f16c avx512f ..."
};

enum class SimdLevel { SCALAR = 0, AVX2 = 1, AVX512 = 2 };

const CpuFeatures& cpu_features();
// The best level this CPU supports, capped by SAFESHRINK_CPU.
SimdLevel simd_level();
const char* simd_level_name(SimdLevel l);

}  // namespace ss

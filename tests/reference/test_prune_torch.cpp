// Pruners vs PyTorch: global and per-tensor magnitude masks vs torch.nn.utils.prune (L1Unstructured),
// N:M vs torch.topk per group, Wanda and SparseGPT vs re-statements of the papers in
// tests/py/prune_reference.py (float64). Masks must be identical; SparseGPT weights agree within
// 1e-5 of the largest |w| (both sides compute in float64; only the operation order differs).
// The magnitude data are tie-free by construction (|w| is a permutation of k/N), because torch.topk
// does not promise which of two equal values it returns.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <numeric>

#include "safeshrink/prune.h"
#include "safeshrink/rng.h"
#include "test_support.h"

namespace {

struct Mat {
  std::string name;
  int64_t rows, cols;
  std::vector<float> w;
};

// Tie-free weights: |w| over all matrices is a permutation of 1/N, 2/N, ..., N/N, random signs.
std::vector<Mat> tie_free(const std::vector<std::pair<int64_t, int64_t>>& shapes, uint64_t seed) {
  int64_t total = 0;
  for (auto [r, c] : shapes) total += r * c;
  std::vector<int64_t> perm(static_cast<size_t>(total));
  std::iota(perm.begin(), perm.end(), int64_t{1});
  ss::Rng rng(seed);
  for (int64_t i = total - 1; i > 0; --i) std::swap(perm[i], perm[rng.next_u64() % static_cast<uint64_t>(i + 1)]);
  std::vector<Mat> out;
  int64_t at = 0;
  for (size_t t = 0; t < shapes.size(); ++t) {
    Mat m{"t" + std::to_string(t), shapes[t].first, shapes[t].second, {}};
    for (int64_t i = 0; i < m.rows * m.cols; ++i) {
      const float mag = static_cast<float>(perm[at++]) / static_cast<float>(total);
      m.w.push_back((rng.next_u64() & 1) ? mag : -mag);
    }
    out.push_back(std::move(m));
  }
  return out;
}

void write_raw(const std::string& path, const void* p, size_t n) {
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
}

std::string write_spec(const std::string& dir, nlohmann::json spec, const std::vector<Mat>& ms) {
  for (const Mat& m : ms) {
    write_raw(dir + "/" + m.name + ".f32", m.w.data(), m.w.size() * sizeof(float));
    nlohmann::json t = {{"name", m.name}, {"rows", m.rows}, {"cols", m.cols}, {"file", m.name + ".f32"}};
    if (spec.contains("extra")) {
      for (auto& [k, v] : spec["extra"][m.name].items()) t[k] = v;
    }
    spec["tensors"].push_back(t);
  }
  spec.erase("extra");
  std::ofstream(dir + "/spec.json") << spec.dump();
  return dir;
}

std::vector<uint8_t> torch_mask(const std::string& dir, const std::string& name) {
  return ss::test::read_bytes(dir + "/" + name + ".mask");
}

int64_t mismatches(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += (a[i] != 0) != (b[i] != 0);
  return n;
}

// Each case writes its data in a first pass (writing = true) and checks in a second one, so that
// one Python process (one torch import, ~10 s on a loaded machine) serves every case.
std::vector<std::string> g_case_dirs;
std::map<std::string, std::string> g_case_by_key;
std::string case_dir(const std::string& key) {
  auto it = g_case_by_key.find(key);
  if (it != g_case_by_key.end()) return it->second;
  const std::string d = ss::test::temp_dir("prune_" + key);
  g_case_by_key[key] = d;
  g_case_dirs.push_back(d);
  return d;
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{48, 64}, {64, 48}, {32, 96}, {16, 40}};

void CaseGlobalMagnitudeMatchesTorchGlobalUnstructured(bool writing) {
  for (double amount : {0.3, 0.5, 0.77}) {
    const std::string dir = case_dir("global" + std::to_string(amount));
    auto ms = tie_free(kShapes, 11);
    if (writing) {
      write_spec(dir, {{"mode", "global"}, {"amount", amount}}, ms);
      continue;
    }
    std::vector<const float*> ptrs;
    std::vector<int64_t> sizes;
    int64_t total = 0;
    for (auto& m : ms) {
      ptrs.push_back(m.w.data());
      sizes.push_back(m.rows * m.cols);
      total += m.rows * m.cols;
    }
    const auto masks = ss::prune_global_magnitude_masks(ptrs, sizes, ss::prune_count_torch(amount, total));
    int64_t kept = 0;
    for (size_t t = 0; t < ms.size(); ++t) {
      EXPECT_EQ(mismatches(masks[t], torch_mask(dir, ms[t].name)), 0) << "amount " << amount << " tensor " << t;
      for (uint8_t k : masks[t]) kept += k;
    }
    EXPECT_EQ(total - kept, static_cast<int64_t>(std::nearbyint(amount * total)));
  }
}

void CasePerTensorMagnitudeMatchesTorchL1Unstructured(bool writing) {
  const std::string dir = case_dir("mag");
  auto ms = tie_free(kShapes, 12);
  if (writing) {
    write_spec(dir, {{"mode", "magnitude"}, {"amount", 0.5}}, ms);
    return;
  }
  for (auto& m : ms) {
    const int64_t n = m.rows * m.cols;
    auto mask = ss::prune_magnitude_mask(m.w.data(), n, ss::prune_count_torch(0.5, n));
    EXPECT_EQ(mismatches(mask, torch_mask(dir, m.name)), 0) << m.name;
  }
}

void CaseNmMatchesTorchTopkPerGroup(bool writing) {
  for (auto [n, m] : std::vector<std::pair<int, int>>{{2, 4}, {1, 4}, {4, 8}}) {
    const std::string dir = case_dir("nm" + std::to_string(n) + "_" + std::to_string(m));
    auto ms = tie_free({{24, 64}, {16, 32}}, 13);
    if (writing) {
      write_spec(dir, {{"mode", "nm"}, {"n", n}, {"m", m}}, ms);
      continue;
    }
    for (auto& mat : ms) {
      auto mask = ss::prune_nm_mask(mat.w.data(), mat.rows, mat.cols, n, m);
      ASSERT_TRUE(mask.ok()) << mask.status().to_string();
      EXPECT_EQ(mismatches(*mask, torch_mask(dir, mat.name)), 0) << n << ":" << m;
    }
  }
}

void CaseWandaMatchesPaperRestatement(bool writing) {
  for (int variant = 0; variant < 2; ++variant) {
    const std::string dir = case_dir("wanda" + std::to_string(variant));
    auto ms = tie_free({{40, 64}, {24, 96}}, 14 + variant);
    ss::Rng rng(99);
    nlohmann::json extra;
    std::vector<std::vector<double>> sums;
    for (auto& m : ms) {
      std::vector<double> s(static_cast<size_t>(m.cols));
      for (double& v : s) v = 0.05 + 20.0 * static_cast<double>(rng.next_u64() >> 11) / 9007199254740992.0;
      write_raw(dir + "/" + m.name + ".sumsq", s.data(), s.size() * sizeof(double));
      extra[m.name] = {{"sum_sq", m.name + ".sumsq"}};
      sums.push_back(s);
    }
    const int n = variant ? 2 : 0, mm = variant ? 4 : 0;
    if (writing) {
      write_spec(dir, {{"mode", "wanda"}, {"sparsity", 0.6}, {"n", n}, {"m", mm}, {"extra", extra}}, ms);
      continue;
    }
    for (size_t t = 0; t < ms.size(); ++t) {
      auto mask = ss::prune_wanda_mask(ms[t].w.data(), ms[t].rows, ms[t].cols, sums[t].data(), 0.6, n, mm);
      ASSERT_TRUE(mask.ok()) << mask.status().to_string();
      EXPECT_EQ(mismatches(*mask, torch_mask(dir, ms[t].name)), 0) << "variant " << variant << " tensor " << t;
    }
  }
}

void CaseSparseGptMatchesPaperRestatement(bool writing) {
  const int64_t rows = 48, cols = 192, samples = 512;
  for (int variant = 0; variant < 2; ++variant) {
    const std::string dir = case_dir("sparsegpt" + std::to_string(variant));
    ss::Rng rng(21 + variant);
    auto gauss = [&]() {  // Box-Muller on the project's portable generator
      const double u1 = (static_cast<double>(rng.next_u64() >> 11) + 1.0) / 9007199254740993.0;
      const double u2 = static_cast<double>(rng.next_u64() >> 11) / 9007199254740992.0;
      return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    };
    Mat m{"w", rows, cols, {}};
    for (int64_t i = 0; i < rows * cols; ++i) m.w.push_back(static_cast<float>(gauss()));
    // Correlated inputs: x = z A + a per-column scale, so X^T X is far from diagonal.
    std::vector<double> x(static_cast<size_t>(samples * cols));
    for (int64_t s = 0; s < samples; ++s) {
      std::vector<double> z(8);
      for (double& v : z) v = gauss();
      for (int64_t j = 0; j < cols; ++j)
        x[s * cols + j] = z[j % 8] * (1.0 + 0.5 * (j % 5)) + 0.3 * gauss();
    }
    std::vector<double> xtx(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t s = 0; s < samples; ++s)
      for (int64_t a = 0; a < cols; ++a)
        for (int64_t b = 0; b < cols; ++b) xtx[a * cols + b] += x[s * cols + a] * x[s * cols + b];
    write_raw(dir + "/w.xtx", xtx.data(), xtx.size() * sizeof(double));
    ss::SparseGptOptions o;
    o.sparsity = 0.5;
    o.block_size = 64;
    if (variant) { o.n = 2; o.m = 4; }
    if (writing) {
      write_spec(dir, {{"mode", "sparsegpt"}, {"sparsity", o.sparsity}, {"n", o.n}, {"m", o.m}, {"block_size", o.block_size},
                       {"damp", o.damp}, {"extra", {{"w", {{"xtx", "w.xtx"}}}}}}, {m});
      continue;
    }
    std::vector<float> ours = m.w;
    ASSERT_TRUE(ss::prune_sparsegpt_matrix(ours.data(), rows, cols, xtx.data(), o).ok());
    std::vector<uint8_t> mask(ours.size());
    for (size_t i = 0; i < ours.size(); ++i) mask[i] = ours[i] != 0.0f;
    EXPECT_EQ(mismatches(mask, torch_mask(dir, "w")), 0) << "variant " << variant;
    const auto ref_bytes = ss::test::read_bytes(dir + "/w.out");
    ASSERT_EQ(ref_bytes.size(), ours.size() * sizeof(double));
    const double* ref = reinterpret_cast<const double*>(ref_bytes.data());
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(ours[i] - ref[i]));
      max_abs = std::max(max_abs, std::fabs(ref[i]));
    }
    EXPECT_LE(max_diff, 1e-5 * max_abs) << "variant " << variant << ": max |ours - torch| = " << max_diff;
    std::printf("sparsegpt %s: max |ours - torch| = %.3g (max |w| %.3g)\n", variant ? "2:4" : "50%", max_diff, max_abs);
  }
}

void all_cases(bool writing) {
  CaseGlobalMagnitudeMatchesTorchGlobalUnstructured(writing);
  CasePerTensorMagnitudeMatchesTorchL1Unstructured(writing);
  CaseNmMatchesTorchTopkPerGroup(writing);
  CaseWandaMatchesPaperRestatement(writing);
  CaseSparseGptMatchesPaperRestatement(writing);
}

class PruneTorch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    has_torch_ = ss::test::python_has({"torch"});
    if (!has_torch_) return;
    all_cases(true);
    std::string args;
    for (const auto& d : g_case_dirs) args += (args.empty() ? "" : " ") + d;
    rc_ = ss::test::run_python("py/prune_reference.py", args, &out_);
  }
  void SetUp() override {
    if (!has_torch_) GTEST_SKIP() << "/usr/bin/python3 lacks torch (scripts/setup installs it)";
    ASSERT_EQ(rc_, 0) << out_;
  }
  static bool has_torch_;
  static int rc_;
  static std::string out_;
};
bool PruneTorch::has_torch_ = false;
int PruneTorch::rc_ = -1;
std::string PruneTorch::out_;


// One test: ctest runs every test in its own process, and each process would import torch again.
TEST_F(PruneTorch, EveryMaskRuleMatchesTorch) {
  {
    SCOPED_TRACE("GlobalMagnitudeMatchesTorchGlobalUnstructured");
    CaseGlobalMagnitudeMatchesTorchGlobalUnstructured(false);
  }
  {
    SCOPED_TRACE("PerTensorMagnitudeMatchesTorchL1Unstructured");
    CasePerTensorMagnitudeMatchesTorchL1Unstructured(false);
  }
  {
    SCOPED_TRACE("NmMatchesTorchTopkPerGroup");
    CaseNmMatchesTorchTopkPerGroup(false);
  }
  {
    SCOPED_TRACE("WandaMatchesPaperRestatement");
    CaseWandaMatchesPaperRestatement(false);
  }
  {
    SCOPED_TRACE("SparseGptMatchesPaperRestatement");
    CaseSparseGptMatchesPaperRestatement(false);
  }
}

}  // namespace

// Head ablation as the circuits code does it (circuits_with_head_ablated: columns [h*hd, (h+1)*hd)
// of attn_output zeroed) against PyTorch zeroing the head's attention output before o_proj
// (tests/py/head_ablation_reference.py, a head_mask in tests/py/llama_reference.py's float64
// forward, one Python process for all cases), on random tiny models: GQA 8/2 heads and MQA 6/1 heads, in HF layout and converted to
// GGUF layout. Tolerance: 1e-4 relative to the largest |logit| (float32 engine vs float64
// reference, as test_llama_pytorch); the ablated logits must also differ from the unablated
// reference by more than 100x that tolerance, so the comparison can tell the two apart.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <ostream>
#include <nlohmann/json.hpp>

#include "eval/attribution/safety_circuits_stores.h"
#include "safeshrink/formats.h"
#include "safeshrink/llama_layout.h"
#include "safeshrink/model.h"
#include "test_support.h"

using namespace ss;

namespace {

std::vector<double> read_f64(const std::string& path) {
  auto b = test::read_bytes(path);
  std::vector<double> v(b.size() / 8);
  std::memcpy(v.data(), b.data(), v.size() * 8);
  return v;
}

// torch importable (checked once: importing torch is slow).
bool have_torch() {
  static const bool yes = test::python_has({"torch"});
  return yes;
}
#define REQUIRE_TORCH() \
  do {                  \
    if (!have_torch()) GTEST_SKIP() << "/usr/bin/python3 lacks torch (scripts/setup installs it)"; \
  } while (0)

// The reference files of all cases, written by one Python process (importing torch is the slow part).
const std::string& reference_dir() {
  static const std::string dir = [] {
    const std::string d = test::temp_dir("headabl");
    std::string out;
    const int rc = test::run_python("py/head_ablation_reference.py", d, &out);
    return rc == 0 ? d : std::string();
  }();
  return dir;
}

struct AblationCase {
  std::string name;
  int64_t layer, head;
  bool gguf_layout;
};

void PrintTo(const AblationCase& c, std::ostream* os) {
  *os << c.name << " L" << c.layer << " H" << c.head << (c.gguf_layout ? " gguf" : " hf");
}

class HeadAblationTorch : public ::testing::TestWithParam<AblationCase> {};

}  // namespace

TEST_P(HeadAblationTorch, ZeroedOutputColumnsEqualHeadMask) {
  REQUIRE_TORCH();
  const AblationCase c = GetParam();
  ASSERT_FALSE(reference_dir().empty()) << "tests/py/head_ablation_reference.py failed";
  const std::string dir = reference_dir() + "/" + c.name;
  const std::string tag = "L" + std::to_string(c.layer) + "H" + std::to_string(c.head);
  auto opened = open_model(dir);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  TensorStore store = std::move(opened).value();
  if (c.gguf_layout) {
    auto g = llama_to_gguf_layout(store);
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    store = std::move(g).value();
    ASSERT_NE(store.find("blk.0.attn_output.weight"), nullptr);
  }
  auto ablated = circuits_with_head_ablated(store, c.layer, c.head);
  ASSERT_TRUE(ablated.ok()) << ablated.status().to_string();
  auto model = LlamaModel::load(std::make_shared<const TensorStore>(std::move(ablated).value()));
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const int64_t V = model->config().vocab_size;

  std::ifstream pf(dir + "/prompts.json");
  const auto prompts = nlohmann::json::parse(pf).get<std::vector<std::vector<int32_t>>>();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& ids = prompts[i];
    const std::vector<double> masked = read_f64(dir + "/logits_" + tag + "_" + std::to_string(i) + ".f64");
    const std::vector<double> plain = read_f64(dir + "/logits_" + std::to_string(i) + ".f64");
    KvCache cache = model->new_cache(static_cast<int64_t>(ids.size()));
    std::vector<float> got(ids.size() * V);
    ASSERT_TRUE(model->forward(ids.data(), static_cast<int64_t>(ids.size()), cache, got.data(), true).ok());
    ASSERT_EQ(got.size(), masked.size());
    double maxref = 0, maxerr = 0, maxeffect = 0;
    for (size_t j = 0; j < got.size(); ++j) {
      maxref = std::max(maxref, std::fabs(masked[j]));
      maxerr = std::max(maxerr, std::fabs(masked[j] - got[j]));
      maxeffect = std::max(maxeffect, std::fabs(masked[j] - plain[j]));
    }
    const double tol = 1e-4 * maxref;
    EXPECT_LT(maxerr, tol) << c.name << " prompt " << i;
    EXPECT_GT(maxeffect, 100 * tol) << c.name << " prompt " << i << ": ablating the head barely changes the logits";
    std::printf("[ %s%s L%lld H%lld prompt %zu ] max |dlogit| vs head mask %.3g (tol %.3g), ablation effect %.3g\n",
                c.name.c_str(), c.gguf_layout ? " gguf" : "", static_cast<long long>(c.layer),
                static_cast<long long>(c.head), i, maxerr, tol, maxeffect);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, HeadAblationTorch,
                         ::testing::Values(AblationCase{"gqa", 1, 5, false}, AblationCase{"gqa", 0, 0, true},
                                           AblationCase{"tied", 2, 3, false}, AblationCase{"tied", 1, 5, true}),
                         [](const auto& info) {
                           return info.param.name + "_L" + std::to_string(info.param.layer) + "H" +
                                  std::to_string(info.param.head) + (info.param.gguf_layout ? "_gguf" : "_hf");
                         });

TEST(HeadAblationTorch, OutOfRangeHeadIsAnError) {
  REQUIRE_TORCH();
  ASSERT_FALSE(reference_dir().empty());
  auto opened = open_model(reference_dir() + "/gqa");
  ASSERT_TRUE(opened.ok());
  EXPECT_FALSE(circuits_with_head_ablated(*opened, 0, 8).ok());   // 8 query heads: 0..7
  EXPECT_FALSE(circuits_with_head_ablated(*opened, 2, 0).ok());   // 2 layers
  EXPECT_FALSE(circuits_with_head_ablated(*opened, -1, 0).ok());
}

// The real Fashion-MNIST (Debian package dataset-fashion-mnist, gzipped IDX) through our gunzip and
// IDX loader, checked against facts of the dataset (60000 train / 10000 test images of 28x28, 6000
// and 1000 images of each of the 10 classes) and against Python's own reading of the same .gz
// files (gzip + struct + numpy in tests/py/gzip_reference.py): every label count, the sum and a
// position-weighted sum of all pixel bytes (so a wrong, missing or misplaced byte anywhere shows),
// and every pixel of a few named images, exactly.
// Not here: synthetic IDX and DEFLATE edge cases (tests/unit/test_gzip_idx.cpp).
// To check one more image: add its index to the list passed to the script.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "safeshrink/vision.h"
#include "test_support.h"

namespace {

bool dataset_present() {
  const std::string dir = ss::fashion_mnist_dir();
  return std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz") &&
         std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz");
}

#define REQUIRE_FASHION_MNIST()                                                                       \
  do {                                                                                                \
    if (!dataset_present())                                                                           \
      GTEST_SKIP() << "Fashion-MNIST is absent from " << ss::fashion_mnist_dir()                      \
                   << ": install the Debian package dataset-fashion-mnist (scripts/setup)";           \
  } while (0)

void check_split(const std::string& split, const std::string& prefix, int64_t n_expected, int64_t per_class,
                 const std::string& indices) {
  REQUIRE_FASHION_MNIST();
  SS_REQUIRE_PYTHON("gzip", "struct", "numpy");
  const auto t0 = std::chrono::steady_clock::now();
  auto set = ss::load_fashion_mnist(split);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  std::printf("load_fashion_mnist(\"%s\"): %lld images in %.3f s (gunzip + IDX + byte/255)\n", split.c_str(),
              static_cast<long long>(set->n), seconds);
  ::testing::Test::RecordProperty("load_seconds_" + split, std::to_string(seconds));

  // Facts of the dataset.
  ASSERT_EQ(set->n, n_expected);
  EXPECT_EQ(set->channels, 1);
  EXPECT_EQ(set->height, 28);
  EXPECT_EQ(set->width, 28);
  ASSERT_EQ(set->pixels.size(), size_t(n_expected * 784));
  ASSERT_EQ(set->labels.size(), size_t(n_expected));
  std::vector<int64_t> counts(10, 0);
  for (int32_t l : set->labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++counts[size_t(l)];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[size_t(c)], per_class) << "class " << c;

  // Python's reading of the same files.
  const std::string dir = ss::fashion_mnist_dir();
  std::string out;
  const int rc = ss::test::run_python("py/gzip_reference.py",
                                      "idx " + dir + "/" + prefix + "-images-idx3-ubyte.gz " + dir + "/" + prefix +
                                          "-labels-idx1-ubyte.gz " + indices,
                                      &out);
  ASSERT_EQ(rc, 0) << out;
  const auto ref = nlohmann::json::parse(out.substr(out.find('{')));
  ASSERT_EQ(ref["n"].get<int64_t>(), set->n);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(ref["label_counts"][size_t(c)].get<int64_t>(), counts[size_t(c)]);
  // Pixels are byte / 255 as float: byte = round(pixel * 255) exactly recovers it.
  uint64_t sum = 0, weighted = 0;
  for (size_t k = 0; k < set->pixels.size(); ++k) {
    const uint64_t b = uint64_t(std::lround(set->pixels[k] * 255.0f));
    sum += b;
    weighted += (k + 1) * b;
  }
  EXPECT_EQ(sum, ref["pixel_sum"].get<uint64_t>());
  EXPECT_EQ(weighted, ref["weighted_sum"].get<uint64_t>());
  for (const auto& [key, img] : ref["images"].items()) {
    const int64_t i = std::stoll(key);
    EXPECT_EQ(set->labels[size_t(i)], img["label"].get<int32_t>()) << "image " << i;
    const float* px = set->image(i);
    int mismatches = 0;
    for (size_t k = 0; k < 784; ++k)
      if (px[k] != float(img["pixels"][k].get<int>()) / 255.0f) ++mismatches;  // exact: same division
    EXPECT_EQ(mismatches, 0) << "image " << i;
  }
}

TEST(FashionMnistReal, TestSplitMatchesPythonAndTheDatasetFacts) {
  check_split("test", "t10k", 10000, 1000, "0,1,4242,9999");
}

TEST(FashionMnistReal, TrainSplitMatchesPythonAndTheDatasetFacts) {
  check_split("train", "train", 60000, 6000, "0,1,31337,59999");
}

TEST(FashionMnistReal, LimitKeepsTheFirstImages) {
  REQUIRE_FASHION_MNIST();
  auto all = ss::load_fashion_mnist("test");
  auto some = ss::load_fashion_mnist("test", 123);
  ASSERT_TRUE(all.ok() && some.ok());
  ASSERT_EQ(some->n, 123);
  const ss::ImageSet head = all->slice(0, 123);
  EXPECT_EQ(some->labels, head.labels);
  EXPECT_TRUE(some->pixels == head.pixels);
}

// Decode speed of the largest file alone (26 MB gzip -> 47 MB).
TEST(FashionMnistReal, GunzipOfTrainImagesIsFast) {
  REQUIRE_FASHION_MNIST();
  const std::string path = ss::fashion_mnist_dir() + "/train-images-idx3-ubyte.gz";
  const auto bytes = ss::test::read_bytes(path);
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  // Wall time and this thread's CPU time (the machine may be shared: CPU time is the decoder's own).
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  double best_wall = 1e9, best_cpu = 1e9;
  size_t out_size = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_now();
    auto out = ss::gunzip(view, path);
    best_cpu = std::min(best_cpu, cpu_now() - c0);
    best_wall = std::min(best_wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    out_size = out->size();
  }
  EXPECT_EQ(out_size, 16u + 60000u * 784u);
  std::printf("gunzip %s: %zu -> %zu bytes, best of 3: %.3f s CPU (%.0f MB/s of output), %.3f s wall\n", path.c_str(),
              bytes.size(), out_size, best_cpu, double(out_size) / best_cpu / 1e6, best_wall);
  ::testing::Test::RecordProperty("gunzip_cpu_seconds", std::to_string(best_cpu));
  // "Well under a second"; a bit-by-bit tree walk takes several seconds here.
  EXPECT_LT(best_cpu, 1.0);
}

}  // namespace

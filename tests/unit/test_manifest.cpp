// Manifests: SHA-256 against its spec test vectors and against coreutils' sha256sum on the same
// files (whole files and shard byte ranges), then verify on a folder with one byte changed, a file
// added and a file removed (each reported, with its kind), symlinks refused, the JSON round trip,
// a manifest naming a path outside the folder refused, and the CLI's exit codes (0 / 3).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "safeshrink/integrity.h"
#include "safeshrink/thread_pool.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ss;

namespace {

std::string sha256sum_of(const std::string& cmd_input) {
  std::string out;
  if (test::run_command(cmd_input + " | sha256sum", &out) != 0) return "";
  return out.substr(0, 64);
}

void write_file(const std::string& path, size_t n, uint32_t seed) {
  std::vector<uint8_t> b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& v : b) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    v = static_cast<uint8_t>(x);
  }
  test::write_bytes(path, b);
}

std::string make_model_folder() {
  const std::string dir = test::temp_dir("manifest");
  fs::create_directories(dir + "/sub");
  fs::create_directories(dir + "/.git");
  write_file(dir + "/model.safetensors", 3 * 1024 * 1024 + 17, 1);
  write_file(dir + "/config.json", 300, 2);
  write_file(dir + "/sub/tokenizer.json", 5000, 3);
  write_file(dir + "/empty.txt", 0, 4);
  write_file(dir + "/.git/HEAD", 10, 5);
  return dir;
}

}  // namespace

TEST(Manifest, Sha256SpecVectors) {
  // FIPS 180-2 examples.
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Manifest, DigestsEqualSha256sum) {
  const std::string dir = make_model_folder();
  ManifestOptions opts;
  opts.shard_bytes = 1 << 20;  // the 3 MiB file gets four shards
  ThreadPool pool(2);
  opts.pool = &pool;
  auto m = build_manifest(dir, opts);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->files.size(), 4u);  // .git ignored
  EXPECT_EQ(m->files[0].path, "config.json");
  EXPECT_EQ(m->files[3].path, "sub/tokenizer.json");
  for (const auto& f : m->files) {
    EXPECT_EQ(f.sha256, sha256sum_of("cat '" + dir + "/" + f.path + "'")) << f.path;
    EXPECT_EQ(f.size, fs::file_size(dir + "/" + f.path)) << f.path;
  }
  const FileDigest* big = nullptr;
  for (const auto& f : m->files)
    if (f.path == "model.safetensors") big = &f;
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(big->shards.size(), 4u);
  for (const auto& s : big->shards) {
    // tail -c +K is 1-based.
    const std::string cmd = "tail -c +" + std::to_string(s.begin + 1) + " '" + dir + "/model.safetensors' | head -c " +
                            std::to_string(s.end - s.begin);
    EXPECT_EQ(s.sha256, sha256sum_of(cmd)) << s.begin;
  }
  EXPECT_EQ(big->shards.back().end, big->size);
  // Small files have no shards.
  EXPECT_TRUE(m->files[0].shards.empty());
}

TEST(Manifest, JsonRoundTripIsInTotoStatement) {
  const std::string dir = make_model_folder();
  auto m = build_manifest(dir);
  ASSERT_TRUE(m.ok());
  const std::string text = manifest_to_json(*m);
  EXPECT_NE(text.find("\"_type\": \"https://in-toto.io/Statement/v1\""), std::string::npos);
  EXPECT_NE(text.find("\"predicateType\": \"https://model_signing/signature/v1.0\""), std::string::npos);
  auto back = manifest_from_json(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(compare_manifests(*m, *back).ok());
  EXPECT_EQ(back->ignore, m->ignore);
  // A manifest that names a file outside the folder is refused.
  std::string evil = text;
  const size_t at = evil.find("sub/tokenizer.json");
  evil.replace(at, 18, "../tokenizer.json");
  const size_t at2 = evil.find("sub/tokenizer.json");
  evil.replace(at2, 18, "../tokenizer.json");
  EXPECT_FALSE(manifest_from_json(evil).ok());
  EXPECT_FALSE(manifest_from_json("{\"_type\": 3}").ok());
}

TEST(Manifest, VerifyReportsChangedExtraMissing) {
  const std::string dir = make_model_folder();
  auto m = build_manifest(dir);
  ASSERT_TRUE(m.ok());
  auto same = verify_manifest(dir, *m);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->ok());
  EXPECT_EQ(same->files_checked, 4u);

  // One byte changed.
  auto bytes = test::read_bytes(dir + "/config.json");
  bytes[100] ^= 1;
  test::write_bytes(dir + "/config.json", bytes);
  auto c1 = verify_manifest(dir, *m);
  ASSERT_TRUE(c1.ok());
  ASSERT_EQ(c1->mismatches.size(), 1u);
  EXPECT_EQ(c1->mismatches[0].kind, "changed");
  EXPECT_EQ(c1->mismatches[0].path, "config.json");
  EXPECT_EQ(c1->mismatches[0].actual, sha256sum_of("cat '" + dir + "/config.json'"));
  bytes[100] ^= 1;
  test::write_bytes(dir + "/config.json", bytes);

  // A file added, one removed.
  write_file(dir + "/sub/extra.bin", 10, 9);
  fs::remove(dir + "/empty.txt");
  auto c2 = verify_manifest(dir, *m);
  ASSERT_TRUE(c2.ok());
  ASSERT_EQ(c2->mismatches.size(), 2u);
  EXPECT_EQ(c2->mismatches[0].path, "empty.txt");
  EXPECT_EQ(c2->mismatches[0].kind, "missing");
  EXPECT_EQ(c2->mismatches[1].path, "sub/extra.bin");
  EXPECT_EQ(c2->mismatches[1].kind, "extra");
}

TEST(Manifest, SymlinksRefused) {
  const std::string dir = make_model_folder();
  fs::create_symlink("/etc/passwd", dir + "/sub/link");
  auto m = build_manifest(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("symlink"), std::string::npos);
  const std::string d2 = test::temp_dir("manifest-link");
  fs::create_directory_symlink(dir, d2 + "/model");
  EXPECT_FALSE(build_manifest(d2 + "/model").ok());
}

TEST(Manifest, PinOneFile) {
  const std::string dir = make_model_folder();
  const std::string want = sha256sum_of("cat '" + dir + "/config.json'");
  auto ok = verify_pin(dir + "/config.json", "sha256:" + want);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->ok());
  std::string wrong = want;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  auto bad = verify_pin(dir + "/config.json", "sha256:" + wrong);
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->ok());
  EXPECT_FALSE(verify_pin(dir + "/config.json", "md5:abc").ok());
  EXPECT_FALSE(verify_pin(dir, "sha256:" + want).ok());  // a folder is not one file
}

TEST(Manifest, CliExitCodes) {
  if (!fs::exists(test::cli_path())) GTEST_SKIP() << "safeshrink CLI not built";
  const std::string dir = make_model_folder();
  const std::string out = test::temp_dir("manifest-cli") + "/m.json";
  const std::string cli = "'" + test::cli_path() + "' ";
  ASSERT_EQ(test::run_command(cli + "manifest '" + dir + "' -o '" + out + "'"), 0);
  std::string text;
  EXPECT_EQ(test::run_command(cli + "verify '" + dir + "' --manifest '" + out + "'", &text), 0) << text;
  write_file(dir + "/config.json", 300, 77);
  EXPECT_EQ(test::run_command(cli + "verify '" + dir + "' --manifest '" + out + "'", &text), 3) << text;
  EXPECT_NE(text.find("changed"), std::string::npos) << text;
  const std::string pin = sha256sum_of("cat '" + dir + "/config.json'");
  EXPECT_EQ(test::run_command(cli + "verify '" + dir + "/config.json' --pin sha256:" + pin), 0);
  EXPECT_EQ(test::run_command(cli + "verify '" + dir + "/empty.txt' --pin sha256:" + pin), 3);
}

// Shared test helpers (see test_support.h).
#include "test_support.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>

namespace fs = std::filesystem;

namespace ss::test {

std::string shared_dir() {
  if (const char* env = std::getenv("SAFESHRINK_SHARED")) {
    if (fs::is_directory(env)) return env;
    return "";
  }
  fs::path p = fs::path(SAFESHRINK_SOURCE_DIR) / ".." / "shared";
  if (fs::is_directory(p / "fixtures")) return fs::weakly_canonical(p).string();
  return "";
}

std::string fixtures_dir() {
  const std::string s = shared_dir();
  return s.empty() ? s : s + "/fixtures";
}

namespace {
std::vector<std::string>& temp_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}
void remove_temp_dirs() {
  for (const auto& d : temp_dirs()) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
}
}  // namespace

std::string temp_dir(const std::string& tag) {
  static std::once_flag once;
  // Construct the folder list before registering the clean-up, so it is destroyed after it runs.
  std::call_once(once, [] {
    temp_dirs();
    std::atexit(remove_temp_dirs);
  });
  std::string templ = (fs::temp_directory_path() / ("safeshrink-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return "";
  temp_dirs().emplace_back(buf.data());
  return temp_dirs().back();
}

int run_command(const std::string& cmd, std::string* out) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int st = pclose(p);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool python_has(const std::vector<std::string>& modules) {
  std::string imports;
  for (const auto& m : modules) imports += "import " + m + ";";
  return run_command("/usr/bin/python3 -c '" + imports + "'") == 0;
}

int run_python(const std::string& script, const std::string& args, std::string* out) {
  return run_command("/usr/bin/python3 " + std::string(SAFESHRINK_SOURCE_DIR) + "/tests/" + script + " " + args, out);
}

std::string cli_path() { return SAFESHRINK_CLI_PATH; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

double nmse(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? num : num / den;
}

}  // namespace ss::test

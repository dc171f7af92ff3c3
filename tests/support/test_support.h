// Shared test helpers: where ../shared lives, temporary folders, running Python references and
// the CLI. Tests that need ../shared call SS_REQUIRE_SHARED() and skip with a clear message when
// it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ss::test {

// ../shared next to the source tree, or $SAFESHRINK_SHARED. Empty when absent.
std::string shared_dir();
std::string fixtures_dir();  // shared_dir() + "/fixtures"
// A fresh empty folder under the system temp dir, removed at process exit.
std::string temp_dir(const std::string& tag);
// Runs `cmd` through /bin/sh; returns exit status, captures stdout+stderr into *out.
int run_command(const std::string& cmd, std::string* out = nullptr);
// True when /usr/bin/python3 can import every module named.
bool python_has(const std::vector<std::string>& modules);
// Runs /usr/bin/python3 on tests/<script> with args; returns exit status, output in *out.
int run_python(const std::string& script, const std::string& args, std::string* out = nullptr);
std::string cli_path();  // the built safeshrink binary
std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
// sum (a-b)^2 / sum b^2: normalised mean squared error (no square root).
double nmse(const float* a, const float* b, int64_t n);

}  // namespace ss::test

#define SS_REQUIRE_SHARED()                                                                   \
  do {                                                                                        \
    if (::ss::test::shared_dir().empty())                                                     \
      GTEST_SKIP() << "../shared is absent (set SAFESHRINK_SHARED): fixture test skipped";    \
  } while (0)

#define SS_REQUIRE_PYTHON(...)                                                                \
  do {                                                                                        \
    if (!::ss::test::python_has({__VA_ARGS__}))                                               \
      GTEST_SKIP() << "/usr/bin/python3 lacks a module (scripts/setup installs them)";        \
  } while (0)

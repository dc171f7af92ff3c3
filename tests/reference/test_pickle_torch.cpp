// The pickle scanner on files written at test time by /usr/bin/python3 (tests/py/pickle_make.py):
// torch.save of tensors, parameters and state dicts (zip and legacy formats), of a whole nn.Module,
// plain pickles of protocols 0-5, and malicious pickles (__reduce__ to os.system and builtins.eval
// at several protocols, INST, memo tricks, a poisoned data.pkl inside a torch zip and that zip
// nested in another). Reference: Python's own opcode walker (pickletools.genops) gives the opcode
// count and the GLOBAL/INST imports of each stream, which our walk must equal; the classification
// is the test's (what each file was made to contain). No file is ever loaded, in C++ or Python.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "safeshrink/buffer.h"
#include "safeshrink/integrity.h"
#include "test_support.h"

using namespace ss;
using json = nlohmann::json;

namespace {

struct Made {
  std::string dir;
  json ref;
};

const Made& made() {
  static Made m = [] {
    Made x;
    x.dir = test::temp_dir("pickles");
    std::string out;
    if (test::run_python("py/pickle_make.py", "'" + x.dir + "'", &out) == 0) {
      const size_t brace = out.find('{');
      if (brace != std::string::npos) x.ref = json::parse(out.substr(brace), nullptr, false);
    }
    return x;
  }();
  return m;
}

}  // namespace

static void classified_as_made() {
  const Made& m = made();
  ASSERT_TRUE(m.ref.is_object()) << "pickle_make.py failed";
  ASSERT_GE(m.ref.size(), 20u);
  for (auto it = m.ref.begin(); it != m.ref.end(); ++it) {
    const std::string name = it.key();
    const std::string kind = it.value()["kind"];
    auto r = scan_path(m.dir + "/" + name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().to_string();
    const Severity s = r->max_severity();
    std::string all;
    for (const auto& f : r->findings) all += std::string(severity_name(f.severity)) + " " + f.rule + " " + f.message + "\n";
    if (kind == "benign") EXPECT_EQ(s, Severity::INFO) << name << "\n" << all;
    if (kind == "module") EXPECT_EQ(s, Severity::MEDIUM) << name << "\n" << all;  // torch.nn classes: not weights-only
    if (kind == "critical") EXPECT_EQ(s, Severity::CRITICAL) << name << "\n" << all;
    if (kind == "deflated") EXPECT_EQ(s, Severity::HIGH) << name << "\n" << all;   // unscanned member is reported
  }
}

static void opcodes_and_imports_equal_pickletools() {
  const Made& m = made();
  ASSERT_TRUE(m.ref.is_object());
  int compared = 0;
  for (auto it = m.ref.begin(); it != m.ref.end(); ++it) {
    const std::string name = it.key();
    if (name.find("zip") != std::string::npos || name == "deflated.pt") continue;
    auto map = MappedFile::open(m.dir + "/" + name);
    ASSERT_TRUE(map.ok());
    const uint8_t* data = (*map)->data();
    size_t n = (*map)->size();
    std::vector<uint8_t> member;
    if (n >= 4 && data[0] == 'P' && data[1] == 'K') {
      auto dir = read_zip_directory(data, n, name);
      ASSERT_TRUE(dir.ok()) << dir.status().to_string();
      for (const auto& e : *dir)
        if (e.name.size() >= 8 && e.name.substr(e.name.size() - 8) == "data.pkl") member.assign(data + e.data_offset, data + e.data_offset + e.size);
      ASSERT_FALSE(member.empty()) << name;
      data = member.data();
      n = member.size();
    }
    PickleScan ps = scan_pickle_bytes(data, n, name);
    EXPECT_EQ(ps.opcodes, it.value()["opcodes"].get<uint64_t>()) << name;
    std::multiset<std::string> ours, theirs;
    for (const auto& imp : ps.imports)
      if (imp.opcode != "STACK_GLOBAL") ours.insert(imp.module + "." + imp.name);
    for (const auto& imp : it.value()["imports"]) {
      std::string mod = imp[0];
      if (mod == "__builtin__") mod = "builtins";
      theirs.insert(mod + "." + imp[1].get<std::string>());
    }
    EXPECT_EQ(ours, theirs) << name;
    ++compared;
  }
  EXPECT_GE(compared, 15);
}

static void stack_global_resolved_in_protocol_4_and_5() {
  const Made& m = made();
  for (const char* name : {"proto4.pkl", "proto5.pkl"}) {
    auto map = MappedFile::open(m.dir + "/" + name);
    ASSERT_TRUE(map.ok());
    PickleScan ps = scan_pickle_bytes((*map)->data(), (*map)->size(), name);
    std::set<std::string> got;
    for (const auto& imp : ps.imports) got.insert(imp.module + "." + imp.name + "/" + imp.opcode);
    // The dict pickled holds an OrderedDict, which protocol 4+ names with STACK_GLOBAL (pickletools sees no GLOBAL).
    EXPECT_TRUE(got.count("collections.OrderedDict/STACK_GLOBAL")) << name;
    EXPECT_EQ(ps.protocol, name[5] - '0');
  }
  // The memo-trick file resolves to os.system.
  auto map = MappedFile::open(m.dir + "/evil_memo.pkl");
  ASSERT_TRUE(map.ok());
  PickleScan ps = scan_pickle_bytes((*map)->data(), (*map)->size(), "evil_memo.pkl");
  ASSERT_EQ(ps.imports.size(), 1u);
  EXPECT_EQ(ps.imports[0].module + "." + ps.imports[0].name, "os.system");
}

static void cli_exit_code_and_sarif() {
  const Made& m = made();
  const std::string cli = "'" + test::cli_path() + "' ";
  std::string out;
  EXPECT_EQ(test::run_command(cli + "scan '" + m.dir + "/torch_state_dict.pt'", &out), 0) << out;
  EXPECT_EQ(test::run_command(cli + "scan '" + m.dir + "/evil_zip.pt' --format sarif", &out), 3) << out;
  json sarif = json::parse(out.substr(out.find('{')), nullptr, false);
  ASSERT_TRUE(sarif.is_object());
  EXPECT_EQ(sarif["version"], "2.1.0");
  EXPECT_FALSE(sarif["runs"][0]["results"].empty());
  EXPECT_EQ(test::run_command(cli + "scan '" + m.dir + "' --format json", &out), 3);
}

// One test (one process) for all checks: the files are made once, and importing torch in Python
// costs seconds.
TEST(PickleTorch, ScannerAgainstPythonMadeFiles) {
  SS_REQUIRE_PYTHON("torch");
  {
    SCOPED_TRACE("classified as made");
    classified_as_made();
  }
  {
    SCOPED_TRACE("opcodes and imports equal pickletools");
    opcodes_and_imports_equal_pickletools();
  }
  {
    SCOPED_TRACE("STACK_GLOBAL resolved");
    stack_global_resolved_in_protocol_4_and_5();
  }
  {
    SCOPED_TRACE("CLI");
    cli_exit_code_and_sarif();
  }
}

// Static scanners on inputs written byte by byte in the test: pickle opcode streams (benign
// containers, os.system via GLOBAL / INST / memo + STACK_GLOBAL, extension codes, truncation and
// random bytes, which must give findings and never crash), the zip reader (CRC-32 check value of
// the zip spec, a stored pickle inside an archive), safetensors headers with overlaps, gaps and
// duplicate names, GGUF headers with a bad count and a duplicate tensor, and chat templates: the
// fixture templates of real models give no critical finding, CVE-2024-34359 payloads all do.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "safeshrink/buffer.h"
#include "safeshrink/integrity.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ss;

namespace {

Severity max_sev(const std::vector<Finding>& f) {
  Severity m = Severity::INFO;
  for (const auto& x : f) m = std::max(m, x.severity);
  return m;
}

bool has_rule(const std::vector<Finding>& f, const std::string& rule) {
  for (const auto& x : f)
    if (x.rule == rule) return true;
  return false;
}

PickleScan scan(const std::string& s) { return scan_pickle_bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "t.pkl"); }

void put_le(std::string* s, uint64_t v, int k) {
  for (int i = 0; i < k; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A one-member zip with a STORED entry, written from the PKWARE APPNOTE layout.
std::string stored_zip(const std::string& name, const std::string& data) {
  std::string z;
  const uint32_t crc = crc32_of(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  put_le(&z, 0x04034b50, 4); put_le(&z, 20, 2); put_le(&z, 0, 2); put_le(&z, 0, 2); put_le(&z, 0, 4);
  put_le(&z, crc, 4); put_le(&z, data.size(), 4); put_le(&z, data.size(), 4); put_le(&z, name.size(), 2); put_le(&z, 0, 2);
  z += name;
  z += data;
  const size_t cd = z.size();
  put_le(&z, 0x02014b50, 4); put_le(&z, 20, 2); put_le(&z, 20, 2); put_le(&z, 0, 2); put_le(&z, 0, 2); put_le(&z, 0, 4);
  put_le(&z, crc, 4); put_le(&z, data.size(), 4); put_le(&z, data.size(), 4); put_le(&z, name.size(), 2); put_le(&z, 0, 2);
  put_le(&z, 0, 2); put_le(&z, 0, 2); put_le(&z, 0, 2); put_le(&z, 0, 4); put_le(&z, 0, 4);
  z += name;
  const size_t cd_size = z.size() - cd;
  put_le(&z, 0x06054b50, 4); put_le(&z, 0, 2); put_le(&z, 0, 2); put_le(&z, 1, 2); put_le(&z, 1, 2);
  put_le(&z, cd_size, 4); put_le(&z, cd, 4); put_le(&z, 0, 2);
  return z;
}

std::string safetensors_file(const std::string& header, size_t data_bytes) {
  std::string s;
  put_le(&s, header.size(), 8);
  s += header;
  s.append(data_bytes, '\0');
  return s;
}

}  // namespace

TEST(ScanPickle, BenignContainersGiveNoFindingAboveInfo) {
  // Protocol 2: {'a': [1, 'x'], 'b': OrderedDict()} by hand.
  // (Hex escapes are split from the next character: "\x00" "a", since C++ escapes are greedy.)
  const std::string p = std::string("\x80\x02}q\x00(X\x01\x00\x00\x00" "aq\x01]q\x02(K\x01X\x01\x00\x00\x00" "xq\x03" "e", 29) +
                        std::string("X\x01\x00\x00\x00" "b", 6) + "ccollections\nOrderedDict\nq\x04)Rq\x05u.";
  auto r = scan(p);
  EXPECT_EQ(max_sev(r.findings), Severity::INFO);
  ASSERT_EQ(r.imports.size(), 1u);
  EXPECT_EQ(r.imports[0].module, "collections");
  EXPECT_EQ(r.imports[0].name, "OrderedDict");
  EXPECT_EQ(r.protocol, 2);
}

TEST(ScanPickle, CodeExecutionIsCritical) {
  auto g = scan("cos\nsystem\n(S'echo hi'\ntR.");
  EXPECT_EQ(max_sev(g.findings), Severity::CRITICAL);
  auto inst = scan("(S'echo hi'\nios\nsystem\n.");
  EXPECT_EQ(max_sev(inst.findings), Severity::CRITICAL);
  ASSERT_EQ(inst.imports.size(), 1u);
  EXPECT_EQ(inst.imports[0].opcode, "INST");
  auto builtin2 = scan("c__builtin__\neval\n(S'1'\ntR.");
  EXPECT_EQ(max_sev(builtin2.findings), Severity::CRITICAL);
  EXPECT_EQ(builtin2.imports[0].module, "builtins");  // Python 2 name normalized
  // Memo trick: strings through MEMOIZE / POP / BINGET reach STACK_GLOBAL.
  const std::string memo = std::string("\x80\x04\x8c\x02os\x94", 7) + "0" + "\x8c\x06system\x94" + "0" +
                           std::string("h\x00h\x01\x93", 5) + "\x8c\x02id\x85R.";
  auto m = scan(memo);
  EXPECT_EQ(max_sev(m.findings), Severity::CRITICAL);
  ASSERT_EQ(m.imports.size(), 1u);
  EXPECT_EQ(m.imports[0].module, "os");
  EXPECT_EQ(m.imports[0].name, "system");
  EXPECT_EQ(m.imports[0].opcode, "STACK_GLOBAL");
  // STACK_GLOBAL on values that are not constants cannot be resolved: critical.
  auto unresolved = scan(std::string("\x80\x04K\x01K\x02\x93.", 7));
  EXPECT_TRUE(has_rule(unresolved.findings, "pickle.import.unresolved"));
  // EXT1 imports through copyreg's registry.
  auto ext = scan(std::string("\x80\x02\x82\x01)R.", 6));
  EXPECT_EQ(max_sev(ext.findings), Severity::CRITICAL);
  // Dunder attribute chains in protocol 4 names.
  EXPECT_EQ(classify_pickle_import("torch._utils", "_rebuild_tensor_v2.__globals__"), Severity::CRITICAL);
  EXPECT_EQ(classify_pickle_import("torch._utils", "_rebuild_tensor_v2"), Severity::INFO);
  EXPECT_EQ(classify_pickle_import("operator", "attrgetter"), Severity::CRITICAL);
  EXPECT_EQ(classify_pickle_import("subprocess", "Popen"), Severity::CRITICAL);
  EXPECT_EQ(classify_pickle_import("mypackage", "Thing"), Severity::HIGH);
}

TEST(ScanPickle, MalformedStreamsAreFindings) {
  // Truncated at every prefix of a valid stream: never a crash, a finding when incomplete.
  const std::string full = "cos\nsystem\n(S'echo hi'\ntR.";
  for (size_t k = 0; k < full.size(); ++k) {
    auto r = scan(full.substr(0, k));
    EXPECT_TRUE(has_rule(r.findings, "pickle.malformed")) << k;
  }
  EXPECT_TRUE(has_rule(scan(std::string("\x80\x02X\xff\xff\xff\x7f", 7)).findings, "pickle.malformed"));  // length past end
  EXPECT_TRUE(has_rule(scan("0.").findings, "pickle.malformed"));                                           // pop on empty
  EXPECT_TRUE(has_rule(scan("\xff").findings, "pickle.malformed"));                                         // unknown opcode
  EXPECT_TRUE(has_rule(scan(std::string("h\x05.", 3)).findings, "pickle.malformed"));                      // GET unset memo
  std::mt19937 rng(1234);
  for (int t = 0; t < 3000; ++t) {
    std::string s(rng() % 200, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    if (t % 2) s = full.substr(0, rng() % full.size()) + s;
    (void)scan(s);
  }
}

TEST(ScanZip, Crc32CheckValueAndStoredPickle) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32_of(reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);  // the CRC-32 check value
  const std::string evil = "cos\nsystem\n(S'echo hi'\ntR.";
  const std::string zip = stored_zip("archive/data.pkl", evil);
  auto dir = read_zip_directory(reinterpret_cast<const uint8_t*>(zip.data()), zip.size(), "m.pt");
  ASSERT_TRUE(dir.ok()) << dir.status().to_string();
  ASSERT_EQ(dir->size(), 1u);
  EXPECT_EQ((*dir)[0].name, "archive/data.pkl");
  EXPECT_EQ((*dir)[0].size, evil.size());
  auto f = scan_pytorch_zip_bytes(reinterpret_cast<const uint8_t*>(zip.data()), zip.size(), "m.pt");
  EXPECT_EQ(max_sev(f), Severity::CRITICAL);
  // Nested: the archive stored inside another.
  const std::string outer = stored_zip("inner/model.pt", zip);
  EXPECT_EQ(max_sev(scan_pytorch_zip_bytes(reinterpret_cast<const uint8_t*>(outer.data()), outer.size(), "o.zip")), Severity::CRITICAL);
  // Every truncation of the archive: a finding, no crash.
  for (size_t k = 0; k < zip.size(); ++k) {
    auto t = scan_pytorch_zip_bytes(reinterpret_cast<const uint8_t*>(zip.data()), k, "m.pt");
    EXPECT_FALSE(t.empty()) << k;
  }
}

TEST(ScanSafetensors, ListsEveryProblem) {
  const std::string good = safetensors_file(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}})", 12);
  auto ok = scan_safetensors_bytes(reinterpret_cast<const uint8_t*>(good.data()), good.size(), "g");
  EXPECT_TRUE(ok.empty()) << ok[0].message;
  // Overlap, a wrong byte count, a gap and trailing bytes, all in one file.
  const std::string bad = safetensors_file(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
      R"("c":{"dtype":"F32","shape":[3],"data_offsets":[16,24]}})", 30);
  auto f = scan_safetensors_bytes(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), "b");
  EXPECT_TRUE(has_rule(f, "safetensors.overlap"));
  EXPECT_TRUE(has_rule(f, "safetensors.size"));
  EXPECT_TRUE(has_rule(f, "safetensors.gap"));
  EXPECT_TRUE(has_rule(f, "safetensors.trailing_bytes"));
  const std::string dup = safetensors_file(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_TRUE(has_rule(scan_safetensors_bytes(reinterpret_cast<const uint8_t*>(dup.data()), dup.size(), "d"), "safetensors.duplicate_name"));
  const std::string past = safetensors_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  EXPECT_TRUE(has_rule(scan_safetensors_bytes(reinterpret_cast<const uint8_t*>(past.data()), past.size(), "p"), "safetensors.offsets"));
  std::string huge;
  put_le(&huge, 1ull << 40, 8);
  EXPECT_FALSE(scan_safetensors_bytes(reinterpret_cast<const uint8_t*>(huge.data()), huge.size(), "h").empty());
}

TEST(ScanGguf, CountsDuplicatesAndFixtures) {
  std::string g = "GGUF";
  put_le(&g, 3, 4);
  put_le(&g, 1ull << 40, 8);  // tensor count that cannot fit
  put_le(&g, 0, 8);
  EXPECT_TRUE(has_rule(scan_gguf_bytes(reinterpret_cast<const uint8_t*>(g.data()), g.size(), "g"), "gguf.tensor_count"));
  // Two tensors with the same name.
  std::string d = "GGUF";
  put_le(&d, 3, 4); put_le(&d, 2, 8); put_le(&d, 0, 8);
  for (int k = 0; k < 2; ++k) {
    put_le(&d, 1, 8); d += "w"; put_le(&d, 1, 4); put_le(&d, 8, 8); put_le(&d, 0, 4); put_le(&d, 32 * k, 8);
  }
  d.append((32 - d.size() % 32) % 32, '\0');
  d.append(64, '\0');
  auto f = scan_gguf_bytes(reinterpret_cast<const uint8_t*>(d.data()), d.size(), "d");
  EXPECT_TRUE(has_rule(f, "gguf.duplicate_tensor"));
  SS_REQUIRE_SHARED();
  for (const char* name : {"stories260K/stories260K-q4_k_m.gguf", "kquants/random-llama-q3_k_m.gguf"}) {
    auto map = MappedFile::open(test::fixtures_dir() + "/" + name);
    ASSERT_TRUE(map.ok());
    auto fx = scan_gguf_bytes((*map)->data(), (*map)->size(), name);
    EXPECT_LT(max_sev(fx), Severity::MEDIUM) << name << ": " << (fx.empty() ? "" : fx[0].message);
  }
}

TEST(ScanTemplate, FixtureTemplatesCleanExploitsCritical) {
  SS_REQUIRE_SHARED();
  int n = 0;
  for (const auto& e : fs::directory_iterator(test::fixtures_dir() + "/chat-templates")) {
    if (e.path().extension() != ".jinja") continue;
    auto b = test::read_bytes(e.path().string());
    auto f = scan_chat_template(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), e.path().filename().string());
    EXPECT_LT(max_sev(f), Severity::HIGH) << e.path() << ": " << (f.empty() ? "" : f[0].message);
    ++n;
  }
  EXPECT_GE(n, 10);
  const char* exploits[] = {
      // CVE-2024-34359 proof of concept shape.
      "{% for x in ().__class__.__base__.__subclasses__() %}{% if \"warning\" in x.__name__ %}"
      "{{x()._module.__builtins__['__import__']('os').popen(\"touch /tmp/x\")}}{%endif%}{% endfor %}",
      "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
      "{{ lipsum.__globals__['os'].popen('id').read() }}",
      "{{ cycler|attr('\\x5f\\x5finit\\x5f\\x5f') }}",
      "{{ namespace.__init__.__globals__.os.system('id') }}",
  };
  for (const char* t : exploits) EXPECT_EQ(max_sev(scan_chat_template(t, "x")), Severity::CRITICAL) << t;
  // Text outside Jinja blocks is output, not code.
  EXPECT_EQ(max_sev(scan_chat_template("You are an os expert. __init__ {{ messages[0]['content'] }}", "x")), Severity::INFO);
}

TEST(ScanReport, SarifAndJsonShapes) {
  ScanReport r;
  r.files = {"a.pkl"};
  r.findings.push_back({Severity::CRITICAL, "pickle.import.code_execution", "a.pkl", 3, "GLOBAL imports os.system"});
  r.findings.push_back({Severity::INFO, "pickle.import.allowed", "a.pkl", 9, "ok"});
  const std::string sarif = scan_report_sarif(r);
  EXPECT_NE(sarif.find("\"version\": \"2.1.0\""), std::string::npos);
  EXPECT_NE(sarif.find("\"ruleId\": \"pickle.import.code_execution\""), std::string::npos);
  EXPECT_NE(sarif.find("\"level\": \"error\""), std::string::npos);
  EXPECT_NE(scan_report_json(r).find("\"critical\": true"), std::string::npos);
  EXPECT_TRUE(r.has_critical());
}

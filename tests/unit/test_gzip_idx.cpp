// Tests of our gzip/DEFLATE decoder (src/formats/gzip.cpp) and IDX loader (src/model/vision/idx.cpp).
// References we did not write: Python's zlib and gzip (tests/py/gzip_reference.py makes streams at
// levels 0/1/6/9, FIXED/HUFFMAN_ONLY/RLE strategies, FNAME/FEXTRA/FCOMMENT/FHCRC headers and
// multi-member files; our output must equal the original bytes exactly), the CRC-32 check value of
// the standard ("123456789" -> 0xcbf43926) for this file's own bitwise CRC, and streams written
// bit by bit here from RFC 1951's tables, valid and invalid. Every corruption must give a clean
// CORRUPT (never a crash, never wrong bytes reported as ok).
// Not here: the real Fashion-MNIST files (tests/reference/test_fashion_mnist.cpp).
// To add a case: a new stream from BitWriter (or a new entry in gzip_reference.py) and its expected
// result.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "safeshrink/status.h"
#include "safeshrink/vision.h"
#include "test_support.h"

namespace {

using ss::StatusCode;

// ---------------------------------------------------------------- independent helpers

// Bitwise CRC-32 (reflected 0xEDB88320), one bit at a time: the textbook form, unlike the
// library's sliced tables.
uint32_t crc32_bitwise(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// DEFLATE bit packing (RFC 1951 3.1.1): values LSB first; Huffman codes MSB of the code first.
struct BitWriter {
  std::string bytes;
  int used = 0;  // bits used in the last byte
  void bits(uint32_t value, int n) {
    for (int k = 0; k < n; ++k) bit(k < 32 ? (value >> k) & 1 : 0);
  }
  void code(uint32_t code, int len) {
    for (int k = len - 1; k >= 0; --k) bit((code >> k) & 1);
  }
  void bit(uint32_t b) {
    if (used == 0) bytes.push_back('\0');
    bytes.back() = char(uint8_t(bytes.back()) | (b << used));
    used = (used + 1) & 7;
  }
  void align() { used = 0; }
};

// Fixed Huffman codes (RFC 1951 3.2.6).
void fixed_litlen(BitWriter& w, int sym) {
  if (sym < 144) {
    w.code(0x30 + sym, 8);
  } else if (sym < 256) {
    w.code(0x190 + (sym - 144), 9);
  } else if (sym < 280) {
    w.code(sym - 256, 7);
  } else {
    w.code(0xC0 + (sym - 280), 8);
  }
}
void fixed_dist(BitWriter& w, int sym) { w.code(sym, 5); }

// Canonical codes from lengths (RFC 1951 3.2.2), for writing dynamic blocks.
std::vector<uint32_t> canonical_codes(const std::vector<int>& lengths) {
  int bl_count[16] = {};
  for (int l : lengths)
    if (l) ++bl_count[l];
  uint32_t next[16] = {};
  uint32_t code = 0;
  for (int b = 1; b < 16; ++b) {
    code = (code + bl_count[b - 1]) << 1;
    next[b] = code;
  }
  std::vector<uint32_t> codes(lengths.size());
  for (size_t s = 0; s < lengths.size(); ++s)
    if (lengths[s]) codes[s] = next[lengths[s]]++;
  return codes;
}

// Header of a final dynamic block whose code-length code gives symbols 0..15 four bits each (a
// complete code), followed by the literal/length and distance code lengths, written literally.
void dynamic_header(BitWriter& w, const std::vector<int>& litlen, const std::vector<int>& dist) {
  w.bits(1, 1);
  w.bits(2, 2);
  w.bits(uint32_t(litlen.size() - 257), 5);
  w.bits(uint32_t(dist.size() - 1), 5);
  w.bits(19 - 4, 4);
  const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  for (int sym : order) w.bits(sym < 16 ? 4 : 0, 3);
  for (int l : litlen) w.code(uint32_t(l), 4);  // canonical: symbol s has code s
  for (int l : dist) w.code(uint32_t(l), 4);
}

std::string gzip_header(uint8_t flags = 0) {
  return std::string("\x1f\x8b\x08", 3) + char(flags) + std::string("\0\0\0\0\0\xff", 6);
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int k = 0; k < 4; ++k) s[size_t(k)] = char((v >> (8 * k)) & 0xFF);
  return s;
}

// A gzip member of stored blocks, CRC from crc32_bitwise.
std::string gzip_stored(const std::string& data) {
  BitWriter w;
  size_t at = 0;
  do {
    const size_t len = std::min<size_t>(65535, data.size() - at);
    const bool last = at + len == data.size();
    w.bits(last ? 1 : 0, 1);
    w.bits(0, 2);
    w.align();
    w.bytes += char(len & 0xFF);
    w.bytes += char(len >> 8);
    w.bytes += char(~len & 0xFF);
    w.bytes += char((~len >> 8) & 0xFF);
    w.bytes += data.substr(at, len);
    at += len;
  } while (at < data.size());
  return gzip_header() + w.bytes + le32(crc32_bitwise(data)) + le32(uint32_t(data.size()));
}

std::string str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

ss::Result<std::string> inflate(const std::string& s, uint64_t max_output = 1 << 20) {
  return ss::inflate_raw(s, "test.deflate", max_output);
}

// A corrupt result whose message names the file and the offset.
void expect_corrupt(const ss::Status& st, const std::string& file, const std::string& word) {
  EXPECT_EQ(st.code(), StatusCode::CORRUPT) << st.to_string();
  EXPECT_NE(st.message().find(file + ": offset "), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("expected"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(word), std::string::npos) << st.message();
}

// ---------------------------------------------------------------- against Python's zlib and gzip

struct PythonCases {
  nlohmann::json manifest;
  std::string error;
};

const PythonCases& python_cases() {
  static const PythonCases cases = [] {
    PythonCases c;
    const std::string dir = ss::test::temp_dir("gzip_cases");
    std::string out;
    const int rc = ss::test::run_python("py/gzip_reference.py", "cases " + dir, &out);
    if (rc != 0) {
      c.error = out;
      return c;
    }
    c.manifest = nlohmann::json::parse(out.substr(out.find('[')), nullptr, false);
    if (c.manifest.is_discarded()) c.error = "unparseable manifest: " + out.substr(0, 200);
    return c;
  }();
  return cases;
}

TEST(GzipPython, EqualsOriginalBytesForEveryLevelStrategyAndHeader) {
  SS_REQUIRE_PYTHON("zlib", "gzip");
  const auto& cases = python_cases();
  ASSERT_TRUE(cases.error.empty()) << cases.error;
  ASSERT_GE(cases.manifest.size(), 70u);
  int raw = 0, gz = 0;
  for (const auto& c : cases.manifest) {
    const std::string input = str(ss::test::read_bytes(c["input"]));
    const std::string expect = str(ss::test::read_bytes(c["expect"]));
    const std::string what = c["what"];
    if (c["kind"] == "raw") {
      uint64_t consumed = 0;
      auto r = ss::inflate_raw(input, what, 1 << 24, &consumed);
      ASSERT_TRUE(r.ok()) << what << ": " << r.status().to_string();
      EXPECT_TRUE(*r == expect) << what << ": output differs (" << r->size() << " vs " << expect.size() << " bytes)";
      EXPECT_EQ(consumed, c["consumed"].get<uint64_t>()) << what;
      ++raw;
    } else {
      auto r = ss::gunzip(input, what, 1 << 24);
      ASSERT_TRUE(r.ok()) << what << ": " << r.status().to_string();
      EXPECT_TRUE(*r == expect) << what << ": output differs (" << r->size() << " vs " << expect.size() << " bytes)";
      ++gz;
    }
  }
  EXPECT_EQ(raw, 8 * 7);  // 8 data sets x (4 levels + 3 strategies)
  EXPECT_EQ(gz, 8 * 6);   // 8 data sets x (gz9, gz1, fname, allflags, multi, padded)
}

TEST(GzipPython, ReadFileMaybeGzipReadsBothForms) {
  SS_REQUIRE_PYTHON("zlib", "gzip");
  const auto& cases = python_cases();
  ASSERT_TRUE(cases.error.empty()) << cases.error;
  for (const auto& c : cases.manifest) {
    if (c["what"] != "text allflags") continue;
    const std::string expect = str(ss::test::read_bytes(c["expect"]));
    auto gz = ss::read_file_maybe_gzip(c["input"]);
    ASSERT_TRUE(gz.ok()) << gz.status().to_string();
    EXPECT_TRUE(*gz == expect);
    auto plain = ss::read_file_maybe_gzip(c["expect"]);
    ASSERT_TRUE(plain.ok()) << plain.status().to_string();
    EXPECT_TRUE(*plain == expect);
    auto capped = ss::read_file_maybe_gzip(c["expect"], expect.size() - 1);
    EXPECT_EQ(capped.status().code(), StatusCode::CORRUPT);
    return;
  }
  FAIL() << "no 'text allflags' case in the manifest";
}

// Truncation at every offset and byte flips at every offset of a dynamic-Huffman member.
TEST(GzipPython, TruncationAndFlipsNeverCrashNorPassWrongBytes) {
  SS_REQUIRE_PYTHON("zlib", "gzip");
  const auto& cases = python_cases();
  ASSERT_TRUE(cases.error.empty()) << cases.error;
  std::string gz, expect;
  for (const auto& c : cases.manifest)
    if (c["what"] == "small gz9") {
      gz = str(ss::test::read_bytes(c["input"]));
      expect = str(ss::test::read_bytes(c["expect"]));
    }
  ASSERT_GT(gz.size(), 1000u);
  for (size_t cut = 0; cut < gz.size(); ++cut) {
    auto r = ss::gunzip(std::string_view(gz).substr(0, cut), "cut.gz");
    ASSERT_FALSE(r.ok()) << "truncated at " << cut << " of " << gz.size() << " passed";
    ASSERT_EQ(r.status().code(), StatusCode::CORRUPT) << r.status().to_string();
  }
  int errors = 0, same = 0;
  for (size_t at = 0; at < gz.size(); ++at) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x10), uint8_t(0x80), uint8_t(0xFF)}) {
      std::string bad = gz;
      bad[at] = char(uint8_t(bad[at]) ^ mask);
      auto r = ss::gunzip(bad, "flip.gz");
      if (r.ok()) {
        // FTEXT (flag bit 0), MTIME/XFL/OS (bytes 4..9) and unused bits of the last DEFLATE byte
        // do not matter.
        ASSERT_TRUE(*r == expect) << "flip " << int(mask) << " at " << at << " gave other bytes with status OK";
        ++same;
      } else {
        ASSERT_EQ(r.status().code(), StatusCode::CORRUPT) << r.status().to_string();
        ++errors;
      }
      if (at < 3 || at >= gz.size() - 8) {
        ASSERT_FALSE(r.ok()) << "flip in magic/method/trailer at " << at;
      }
    }
  }
  EXPECT_GT(errors, int(gz.size() * 4 * 9 / 10));  // a flip almost always breaks the stream or the CRC
  EXPECT_GE(same, 6 * 4);                          // MTIME, XFL, OS bytes
}

// ---------------------------------------------------------------- hand-written streams

TEST(Crc32, OwnBitwiseHelperMatchesTheCheckValue) {
  // The check value of CRC-32/ISO-HDLC; makes gzip_stored below an independent reference.
  EXPECT_EQ(crc32_bitwise("123456789"), 0xCBF43926u);
}

TEST(GzipHandmade, StoredMembersWithOurOwnCrcDecode) {
  std::string data;
  for (int i = 0; i < 200000; ++i) data += char((i * 7919) >> 3);
  auto r = ss::gunzip(gzip_stored(data), "stored.gz");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(*r == data);
  // Two members, the second empty.
  auto two = ss::gunzip(gzip_stored("hello ") + gzip_stored(""), "two.gz");
  ASSERT_TRUE(two.ok()) << two.status().to_string();
  EXPECT_EQ(*two, "hello ");
}

TEST(GzipHandmade, BadCrcIsizeFlagsHeaderCrcAndTrailingDataAreCorrupt) {
  const std::string data = "The quick brown fox jumps over the lazy dog";
  const std::string good = gzip_stored(data);
  ASSERT_TRUE(ss::gunzip(good, "g.gz").ok());
  std::string bad_crc = good;
  bad_crc[good.size() - 8] ^= 1;
  expect_corrupt(ss::gunzip(bad_crc, "g.gz").status(), "g.gz", "CRC-32");
  std::string bad_isize = good;
  bad_isize[good.size() - 4] ^= 1;
  expect_corrupt(ss::gunzip(bad_isize, "g.gz").status(), "g.gz", "ISIZE");
  std::string reserved = good;
  reserved[3] = char(0x20);
  expect_corrupt(ss::gunzip(reserved, "g.gz").status(), "g.gz", "reserved");
  std::string method = good;
  method[2] = 7;
  expect_corrupt(ss::gunzip(method, "g.gz").status(), "g.gz", "compression method");
  expect_corrupt(ss::gunzip(good + "x", "g.gz").status(), "g.gz", "gzip");
  expect_corrupt(ss::gunzip(good + std::string(3, '\0') + "x", "g.gz").status(), "g.gz", "zero padding");
  expect_corrupt(ss::gunzip("", "g.gz").status(), "g.gz", "gzip header");
  // FHCRC: the low 16 bits of the header's CRC-32 (0 here is wrong for this header).
  std::string with_hcrc = gzip_header(0x02) + std::string(2, '\0') + good.substr(10);
  expect_corrupt(ss::gunzip(with_hcrc, "g.gz").status(), "g.gz", "header CRC");
  const uint32_t hcrc = crc32_bitwise(gzip_header(0x02)) & 0xFFFF;
  with_hcrc[10] = char(hcrc & 0xFF);
  with_hcrc[11] = char(hcrc >> 8);
  auto ok = ss::gunzip(with_hcrc, "g.gz");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, data);
  // FNAME without its terminating zero.
  expect_corrupt(ss::gunzip(gzip_header(0x08) + "name", "g.gz").status(), "g.gz", "FNAME");
}

TEST(GzipHandmade, OutputCapIsEnforcedExactly) {
  std::string data(5000, 'z');
  const std::string gz = gzip_stored(data);
  EXPECT_TRUE(ss::gunzip(gz, "cap.gz", 5000).ok());
  auto r = ss::gunzip(gz, "cap.gz", 4999);
  expect_corrupt(r.status(), "cap.gz", "(cap)");
  // The same through a Huffman block: 'a' then 258-byte runs, decoded past a 1000-byte cap.
  BitWriter w;
  w.bits(1, 1);
  w.bits(1, 2);
  fixed_litlen(w, 'a');
  for (int k = 0; k < 10; ++k) {
    fixed_litlen(w, 285);  // length 258
    fixed_dist(w, 0);      // distance 1
  }
  fixed_litlen(w, 256);
  auto full = inflate(w.bytes, 2581);
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  EXPECT_EQ(*full, std::string(2581, 'a'));
  expect_corrupt(inflate(w.bytes, 1000).status(), "test.deflate", "(cap)");
}

TEST(DeflateHandmade, FixedBlockWithOverlappingMatch) {
  BitWriter w;
  w.bits(1, 1);
  w.bits(1, 2);
  fixed_litlen(w, 'a');
  fixed_litlen(w, 'b');
  fixed_litlen(w, 259);  // length 5
  fixed_dist(w, 1);      // distance 2
  fixed_litlen(w, 265);  // length 11 + 1 extra bit
  w.bits(1, 1);          // -> 12
  fixed_dist(w, 4);      // distance 5 + 1 extra bit
  w.bits(0, 1);          // -> 5
  fixed_litlen(w, 256);
  auto r = inflate(w.bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // "ab" + 5 from distance 2 = "abababa"; then 12 from distance 5 ("ababa" repeated).
  EXPECT_EQ(*r, "abababa" + std::string("ababaababaab"));
}

TEST(DeflateHandmade, DynamicBlockWithSingleDistanceCodeIsAccepted) {
  std::vector<int> litlen(258, 0), dist(1, 0);
  litlen['a'] = 2;
  litlen['b'] = 2;
  litlen[256] = 2;
  litlen[257] = 2;  // length 3
  dist[0] = 1;      // the one incomplete code RFC 1951 allows
  BitWriter w;
  dynamic_header(w, litlen, dist);
  const auto codes = canonical_codes(litlen);
  for (int sym : {int('a'), int('b'), 257}) w.code(codes[size_t(sym)], 2);
  w.code(0, 1);  // distance symbol 0 = distance 1
  w.code(codes[256], 2);
  auto r = inflate(w.bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, "abbbb");
}

TEST(DeflateHandmade, DynamicBlockWithoutDistanceCodesDecodesLiteralsOnly) {
  std::vector<int> litlen(257, 0), dist(1, 0);
  litlen['x'] = 1;
  litlen[256] = 1;
  BitWriter w;
  dynamic_header(w, litlen, dist);
  const auto codes = canonical_codes(litlen);
  w.code(codes['x'], 1);
  w.code(codes['x'], 1);
  w.code(codes[256], 1);
  auto r = inflate(w.bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, "xx");
  // A length symbol needs a distance, and this tree has no codes.
  std::vector<int> with_len(258, 0);
  with_len['x'] = 1;
  with_len[256] = 2;
  with_len[257] = 2;
  BitWriter w2;
  dynamic_header(w2, with_len, dist);
  const auto c2 = canonical_codes(with_len);
  w2.code(c2['x'], 1);
  w2.code(c2[257], 2);
  w2.bits(0, 8);
  expect_corrupt(inflate(w2.bytes).status(), "test.deflate", "distance symbol");
}

// Each invalid header or symbol: a dynamic block with the given lengths must be CORRUPT with `word`.
void expect_dynamic_corrupt(const std::vector<int>& litlen, const std::vector<int>& dist, const std::string& word) {
  BitWriter w;
  dynamic_header(w, litlen, dist);
  w.bits(0, 32);
  expect_corrupt(inflate(w.bytes).status(), "test.deflate", word);
}

TEST(DeflateHandmade, InvalidHuffmanTablesAreCorrupt) {
  std::vector<int> over(257, 0), incomplete(258, 0), no_eob(257, 0), ok(257, 0);
  over['a'] = 1;
  over['b'] = 1;
  over[256] = 1;
  expect_dynamic_corrupt(over, {1}, "over-subscribed");
  incomplete['a'] = 2;
  incomplete[256] = 2;
  incomplete[257] = 2;
  expect_dynamic_corrupt(incomplete, {1}, "incomplete");
  no_eob['a'] = 1;
  no_eob['b'] = 1;
  expect_dynamic_corrupt(no_eob, {1}, "end-of-block");
  ok['a'] = 1;
  ok[256] = 1;
  expect_dynamic_corrupt(ok, {2, 2}, "incomplete");        // two distance codes of 2 bits: not the allowed case
  expect_dynamic_corrupt(ok, {1, 1, 1}, "over-subscribed");
  expect_dynamic_corrupt(ok, {2}, "incomplete");           // one code, but of length 2
}

TEST(DeflateHandmade, InvalidHeadersAndSymbolsAreCorrupt) {
  {  // reserved block type 3
    BitWriter w;
    w.bits(1, 1);
    w.bits(3, 2);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "block type");
  }
  {  // stored block with NLEN != ~LEN
    BitWriter w;
    w.bits(1, 1);
    w.bits(0, 2);
    w.align();
    w.bytes += std::string("\x03\x00\xfc\xfe", 4) + "abc";
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "NLEN");
  }
  {  // distance beyond the output
    BitWriter w;
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_litlen(w, 'a');
    fixed_litlen(w, 257);
    fixed_dist(w, 1);  // distance 2, one byte written
    fixed_litlen(w, 256);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "match distance");
  }
  for (int sym : {286, 287}) {  // fixed code's reserved length symbols
    BitWriter w;
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_litlen(w, sym);
    w.bits(0, 16);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "length symbol");
  }
  for (int sym : {30, 31}) {  // fixed code's reserved distance symbols
    BitWriter w;
    w.bits(1, 1);
    w.bits(1, 2);
    fixed_litlen(w, 'a');
    fixed_litlen(w, 257);
    fixed_dist(w, sym);
    w.bits(0, 16);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "distance symbol");
  }
  {  // HLIT = 30 (287 codes)
    BitWriter w;
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(30, 5);
    w.bits(0, 5);
    w.bits(0, 4);
    w.bits(0, 32);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "HLIT");
  }
  {  // HDIST = 30 (31 codes)
    BitWriter w;
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(30, 5);
    w.bits(0, 4);
    w.bits(0, 32);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "HDIST");
  }
  {  // code length code over-subscribed: three codes of one bit
    BitWriter w;
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(0, 5);
    w.bits(0, 4);  // 4 code-length lengths: symbols 16, 17, 18, 0
    for (int k = 0; k < 3; ++k) w.bits(1, 3);
    w.bits(0, 3);
    w.bits(0, 32);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "code length code");
  }
  {  // repeat-previous (16) as the first length; code-length code: 16 -> "1", 0 -> "0"
    BitWriter w;
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);
    w.bits(0, 5);
    w.bits(0, 4);
    w.bits(1, 3);  // 16
    w.bits(0, 3);  // 17
    w.bits(0, 3);  // 18
    w.bits(1, 3);  // 0
    w.code(1, 1);  // symbol 16
    w.bits(0, 2 + 32);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "repeat");
  }
  {  // 18 repeating 138 zeros with only 258 lengths to fill after 130: overflow
    BitWriter w;
    w.bits(1, 1);
    w.bits(2, 2);
    w.bits(0, 5);  // 257 + 1 = 258 lengths
    w.bits(0, 5);
    w.bits(0, 4);
    w.bits(0, 3);  // 16
    w.bits(0, 3);  // 17
    w.bits(1, 3);  // 18 -> "1"
    w.bits(1, 3);  // 0  -> "0"
    for (int k = 0; k < 130; ++k) w.code(0, 1);
    w.code(1, 1);
    w.bits(127, 7);  // 11 + 127 = 138 > 128 left
    w.bits(0, 32);
    expect_corrupt(inflate(w.bytes).status(), "test.deflate", "repeat");
  }
}

TEST(DeflateHandmade, EveryTruncationOfAHandmadeStreamIsCorrupt) {
  BitWriter w;
  w.bits(0, 1);  // a stored block, then a final fixed block
  w.bits(0, 2);
  w.align();
  w.bytes += std::string("\x02\x00\xfd\xff", 4) + "hi";
  w.bits(1, 1);
  w.bits(1, 2);
  for (char ch : std::string("hello")) fixed_litlen(w, ch);
  fixed_litlen(w, 258);
  fixed_dist(w, 4);
  w.bits(1, 1);
  fixed_litlen(w, 256);
  auto full = inflate(w.bytes);
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  EXPECT_EQ(*full, "hihello" + std::string("ihel"));  // length 4 from distance 6
  for (size_t cut = 0; cut < w.bytes.size(); ++cut) {
    auto r = inflate(w.bytes.substr(0, cut));
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(r.status().code(), StatusCode::CORRUPT);
  }
}

// ---------------------------------------------------------------- IDX

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  for (int k = 0; k < 4; ++k) s[size_t(k)] = char((v >> (24 - 8 * k)) & 0xFF);
  return s;
}

std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t data_bytes) {
  std::string s = std::string("\0\0\x08\x03", 4) + be32(n) + be32(rows) + be32(cols);
  for (uint32_t k = 0; k < data_bytes; ++k) s += char((k * 37 + 11) & 0xFF);
  return s;
}
std::string idx_labels(uint32_t n, uint32_t data_bytes) {
  std::string s = std::string("\0\0\x08\x01", 4) + be32(n);
  for (uint32_t k = 0; k < data_bytes; ++k) s += char(k % 10);
  return s;
}

struct IdxFiles {
  std::string images, labels;
};
IdxFiles write_idx(const std::string& tag, const std::string& images, const std::string& labels) {
  const std::string dir = ss::test::temp_dir("idx_" + tag);
  IdxFiles f{dir + "/images-idx3-ubyte", dir + "/labels-idx1-ubyte"};
  ss::test::write_bytes(f.images, std::vector<uint8_t>(images.begin(), images.end()));
  ss::test::write_bytes(f.labels, std::vector<uint8_t>(labels.begin(), labels.end()));
  return f;
}

TEST(Idx, LoadsPlainAndGzippedFilesWithLimitAndSlice) {
  const std::string images = idx_images(5, 3, 2, 30), labels = idx_labels(5, 5);
  for (bool gz : {false, true}) {
    const auto f = gz ? write_idx("gz", gzip_stored(images), gzip_stored(labels)) : write_idx("plain", images, labels);
    auto set = ss::load_idx(f.images, f.labels);
    ASSERT_TRUE(set.ok()) << set.status().to_string();
    EXPECT_EQ(set->n, 5);
    EXPECT_EQ(set->channels, 1);
    EXPECT_EQ(set->height, 3);
    EXPECT_EQ(set->width, 2);
    EXPECT_EQ(set->source, f.images);
    ASSERT_EQ(set->pixels.size(), 30u);
    for (uint32_t k = 0; k < 30; ++k) EXPECT_EQ(set->pixels[k], float((k * 37 + 11) & 0xFF) / 255.0f) << k;
    EXPECT_EQ(set->labels, (std::vector<int32_t>{0, 1, 2, 3, 4}));
    auto two = ss::load_idx(f.images, f.labels, 2);
    ASSERT_TRUE(two.ok());
    EXPECT_EQ(two->n, 2);
    EXPECT_EQ(two->pixels.size(), 12u);
    const ss::ImageSet mid = set->slice(1, 3);
    EXPECT_EQ(mid.n, 2);
    EXPECT_EQ(mid.labels, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(mid.image(0)[0], set->image(1)[0]);
    EXPECT_EQ(mid.image(1)[5], set->image(2)[5]);
    EXPECT_EQ(set->slice(4, 99).n, 1);  // clamped
    EXPECT_EQ(set->slice(3, 2).n, 0);
  }
}

TEST(Idx, BadHeadersAndSizesAreCorruptWithFileOffsetExpectedActual) {
  const std::string labels = idx_labels(5, 5);
  {  // truncated data: 29 of 30 bytes
    const auto f = write_idx("trunc", idx_images(5, 3, 2, 29), labels);
    auto r = ss::load_idx(f.images, f.labels);
    expect_corrupt(r.status(), f.images, "30 bytes");
    EXPECT_NE(r.status().message().find("got 29 bytes"), std::string::npos) << r.status().message();
  }
  {  // oversized dimension
    const auto f = write_idx("huge", idx_images(0x7FFFFFF0u, 3, 2, 30), labels);
    auto r = ss::load_idx(f.images, f.labels);
    expect_corrupt(r.status(), f.images, "12884901792 bytes (2147483632 x 3 x 2)");
    EXPECT_NE(r.status().message().find("offset 46: "), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("got 30 bytes"), std::string::npos) << r.status().message();
  }
  {  // a dimension of 2^31 or more
    const auto f = write_idx("dim31", idx_images(5, 0x80000000u, 2, 30), labels);
    auto r = ss::load_idx(f.images, f.labels);
    expect_corrupt(r.status(), f.images, "IDX dimension 1");
    EXPECT_NE(r.status().message().find("offset 8: "), std::string::npos) << r.status().message();
  }
  {  // three dimensions just below 2^31: the product (about 2^93) is computed without overflow
    const auto f = write_idx("overflow", idx_images(0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu, 30), labels);
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images, "overflowing product");
  }
  {  // a zero dimension
    const auto f = write_idx("zero", idx_images(0, 3, 2, 0), idx_labels(0, 0));
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images, "IDX dimension 0");
  }
  {  // trailing bytes
    const auto f = write_idx("trail", idx_images(5, 3, 2, 31), labels);
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images, "IDX data");
  }
  {  // truncated inside the dimensions
    const auto f = write_idx("dims", idx_images(5, 3, 2, 0).substr(0, 9), labels);
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images, "IDX dimensions");
  }
  {  // count mismatch
    const auto f = write_idx("count", idx_images(5, 3, 2, 30), idx_labels(4, 4));
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.labels, "label count");
  }
  {  // wrong type and wrong dimension count
    std::string img = idx_images(5, 3, 2, 30);
    img[2] = 0x0D;
    const auto f = write_idx("type", img, labels);
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images, "data type");
    const auto g = write_idx("ndims", idx_images(5, 3, 2, 30), std::string("\0\0\x08\x02", 4) + be32(5) + be32(1) + "abcde");
    expect_corrupt(ss::load_idx(g.images, g.labels).status(), g.labels, "dimension count");
  }
  {  // the gzipped form names the decompressed data
    const auto f = write_idx("gztrunc", gzip_stored(idx_images(5, 3, 2, 29)), labels);
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images + " (decompressed)", "30 bytes");
  }
  {  // a corrupt gzip wrapper
    std::string gz = gzip_stored(idx_images(5, 3, 2, 30));
    gz[gz.size() - 6] ^= 4;
    const auto f = write_idx("gzcrc", gz, labels);
    expect_corrupt(ss::load_idx(f.images, f.labels).status(), f.images, "CRC-32");
  }
  {
    const auto f = write_idx("neg", idx_images(5, 3, 2, 30), labels);
    EXPECT_EQ(ss::load_idx(f.images, f.labels, -1).status().code(), StatusCode::INVALID_ARGUMENT);
  }
}

TEST(FashionMnist, MissingFolderNamesThePackageAndClassNamesAreZalandos) {
  auto r = ss::load_fashion_mnist("test", 0, ss::test::temp_dir("no_fashion"));
  EXPECT_EQ(r.status().code(), StatusCode::NOT_FOUND);
  EXPECT_NE(r.status().message().find("dataset-fashion-mnist"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("t10k-images-idx3-ubyte"), std::string::npos) << r.status().message();
  EXPECT_EQ(ss::load_fashion_mnist("validation").status().code(), StatusCode::INVALID_ARGUMENT);
  const auto& names = ss::fashion_mnist_class_names();
  ASSERT_EQ(names.size(), 10u);
  EXPECT_EQ(names[0], "T-shirt/top");
  EXPECT_EQ(names[9], "Ankle boot");
}

TEST(FashionMnist, LabelsOutsideTheTenClassesAreCorrupt) {
  const std::string dir = ss::test::temp_dir("fashion_bad_label");
  std::string labels = idx_labels(5, 5);
  labels[8 + 3] = 10;
  const std::string images = idx_images(5, 3, 2, 30);
  ss::test::write_bytes(dir + "/t10k-images-idx3-ubyte", std::vector<uint8_t>(images.begin(), images.end()));
  const std::string gz = gzip_stored(labels);
  ss::test::write_bytes(dir + "/t10k-labels-idx1-ubyte.gz", std::vector<uint8_t>(gz.begin(), gz.end()));
  auto r = ss::load_fashion_mnist("test", 0, dir);
  expect_corrupt(r.status(), dir + "/t10k-labels-idx1-ubyte.gz (decompressed)", "label");
  EXPECT_NE(r.status().message().find("offset 11"), std::string::npos) << r.status().message();
}

}  // namespace

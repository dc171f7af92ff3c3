// gzip (RFC 1952) and raw DEFLATE (RFC 1951) decoding, written here so that the project reads
// gzip-compressed data (the Fashion-MNIST IDX files of the Debian package) without zlib. The
// decoder takes every input as hostile: each Huffman table is checked for over-subscribed and
// incomplete codes (the one incomplete code RFC 1951 allows, a single code of length 1, is
// accepted for the literal/length and distance trees, as zlib does; a tree without codes is
// accepted until a symbol is read from it), distances reaching before the start of the output,
// reserved block types and symbols, and stored blocks with LEN != ~NLEN are CORRUPT; input is never
// read past its end; output beyond max_output stops decoding with the project's cap error (CORRUPT
// whose "expected" reads "<= N (cap)", the shape every parser cap in src/formats uses, since
// status.h has no separate limit code). gzip members are checked for their header (reserved flags,
// FHCRC), CRC-32 and ISIZE; concatenated members are decoded one after another and zero padding
// after the last member is allowed, as gzip(1) allows it.
//
// Speed: Huffman codes are decoded through two-level lookup tables (kPrimaryBits of the bit buffer
// index the first level; longer codes follow a link into a sub-table), bits come from a 64-bit
// buffer refilled eight bytes at a time, and CRC-32 uses slicing by eight tables.
// Not here: compression (the project only reads gzip), zlib streams (RFC 1950), IDX (model/vision).
// To accept one more container around DEFLATE (e.g. zlib's 2-byte header and Adler-32): parse its
// header and trailer like gunzip_member does and call inflate_into for the body.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "safeshrink/buffer.h"
#include "safeshrink/status.h"
#include "safeshrink/vision.h"

namespace ss {
namespace {

// ---------------------------------------------------------------- CRC-32 (ISO-HDLC, reflected
// polynomial 0xEDB88320), slicing by eight: table[k][b] is the CRC of byte b followed by k zeros.

struct Crc32Tables {
  uint32_t t[8][256];
  Crc32Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b)
      for (int k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  }
};

const Crc32Tables& crc32_tables() {
  static const Crc32Tables tables;
  return tables;
}

uint32_t crc32_update(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = crc32_tables().t;
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][p[4]] ^
        t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

std::string hex32(uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int k = 28; k >= 0; k -= 4) s.push_back(digits[(v >> k) & 0xF]);
  return s;
}

// ---------------------------------------------------------------- Huffman lookup tables

constexpr int kMaxCodeBits = 15;
constexpr int kPrimaryBits = 10;

// One table entry: kind, the code's total length in bits, and a value (symbol, or the offset of
// a sub-table whose index width is `sub_bits`).
enum : uint8_t { ENTRY_INVALID = 0, ENTRY_SYMBOL = 1, ENTRY_LINK = 2 };
struct HuffEntry {
  uint16_t value;
  uint8_t length;  // ENTRY_SYMBOL: code length; ENTRY_LINK: sub-table index bits
  uint8_t kind;
};

struct HuffTable {
  // kPrimaryBits-wide first level, then sub-tables. Worst case: 288 symbols, each with its own
  // sub-table of 2^(15 - kPrimaryBits) entries.
  std::array<HuffEntry, (1u << kPrimaryBits) + 288 * (1u << (kMaxCodeBits - kPrimaryBits))> entries;
  bool empty = true;  // no codes at all: any use is CORRUPT
};

uint32_t reverse_bits(uint32_t code, int length) {
  uint32_t r = 0;
  for (int k = 0; k < length; ++k) r |= ((code >> k) & 1u) << (length - 1 - k);
  return r;
}

enum class BuildResult { OK, OVERSUBSCRIBED, INCOMPLETE };

// Canonical Huffman code (RFC 1951 3.2.2) from code lengths; fills `table`. `allow_single` accepts
// the one incomplete code RFC 1951 allows (exactly one symbol of length 1).
BuildResult build_huffman(const uint8_t* lengths, int n, bool allow_single, HuffTable& table) {
  int count[kMaxCodeBits + 1] = {};
  for (int s = 0; s < n; ++s) ++count[lengths[s]];
  count[0] = 0;
  int left = 1;
  int max_len = 0;
  for (int len = 1; len <= kMaxCodeBits; ++len) {
    left <<= 1;
    left -= count[len];
    if (left < 0) return BuildResult::OVERSUBSCRIBED;
    if (count[len]) max_len = len;
  }
  table.empty = max_len == 0;
  const int n_codes = [&] {
    int c = 0;
    for (int len = 1; len <= kMaxCodeBits; ++len) c += count[len];
    return c;
  }();
  if (left > 0 && !(max_len == 0 || (allow_single && n_codes == 1 && count[1] == 1)))
    return BuildResult::INCOMPLETE;

  // First code of each length.
  uint32_t next_code[kMaxCodeBits + 2] = {};
  uint32_t code = 0;
  for (int len = 1; len <= kMaxCodeBits; ++len) {
    code = (code + count[len - 1]) << 1;
    next_code[len] = code;
  }
  const uint32_t primary_size = 1u << kPrimaryBits;
  std::fill(table.entries.begin(), table.entries.begin() + primary_size, HuffEntry{0, 0, ENTRY_INVALID});
  const int sub_bits = max_len > kPrimaryBits ? max_len - kPrimaryBits : 0;
  uint32_t next_sub = primary_size;
  for (int s = 0; s < n; ++s) {
    const int len = lengths[s];
    if (len == 0) continue;
    const uint32_t rev = reverse_bits(next_code[len]++, len);  // stream order: first bit lowest
    if (len <= kPrimaryBits) {
      for (uint32_t i = rev; i < primary_size; i += 1u << len)
        table.entries[i] = HuffEntry{uint16_t(s), uint8_t(len), ENTRY_SYMBOL};
      continue;
    }
    // Long code: its first kPrimaryBits bits pick a link; the rest index the sub-table.
    HuffEntry& link = table.entries[rev & (primary_size - 1)];
    if (link.kind != ENTRY_LINK) {
      link = HuffEntry{uint16_t(next_sub), uint8_t(sub_bits), ENTRY_LINK};
      std::fill(table.entries.begin() + next_sub, table.entries.begin() + next_sub + (1u << sub_bits),
                HuffEntry{0, 0, ENTRY_INVALID});
      next_sub += 1u << sub_bits;
    }
    const uint32_t high = rev >> kPrimaryBits;
    const int high_len = len - kPrimaryBits;
    for (uint32_t i = high; i < (1u << sub_bits); i += 1u << high_len)
      table.entries[link.value + i] = HuffEntry{uint16_t(s), uint8_t(len), ENTRY_SYMBOL};
  }
  return BuildResult::OK;
}

// RFC 1951 3.2.5: base and extra bits of length symbols 257..285 and distance symbols 0..29.
constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr uint8_t kCodeLengthOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

// The fixed codes of BTYPE=01 (RFC 1951 3.2.6), built once.
struct FixedTables {
  HuffTable litlen, dist;
  FixedTables() {
    uint8_t lengths[288];
    for (int s = 0; s < 288; ++s) lengths[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
    (void)build_huffman(lengths, 288, false, litlen);
    uint8_t dl[32];
    std::fill(dl, dl + 32, uint8_t(5));
    (void)build_huffman(dl, 32, false, dist);  // symbols 30, 31 take part in the code but are invalid
  }
};

const FixedTables& fixed_tables() {
  static const FixedTables tables;
  return tables;
}

// ---------------------------------------------------------------- the decoder

// Output grows geometrically; kSlack bytes past the logical end let match copies run 8 bytes at a
// time without a tail loop.
constexpr size_t kSlack = 16;

class Inflater {
 public:
  Inflater(const uint8_t* in, size_t n, uint64_t base, const std::string& file, std::string& out, size_t& out_len,
           uint64_t max_output)
      : in_(in), n_(n), base_(base), file_(file), out_(out), out_len_(out_len), max_output_(max_output) {
    write_limit_ = std::min<uint64_t>(out_.size() >= kSlack ? out_.size() - kSlack : 0, max_output_);
  }

  // Decodes blocks until the final one; `consumed` receives the input bytes used (whole bytes: the
  // final block's last partial byte counts).
  Status run(uint64_t& consumed) {
    bool final_block = false;
    while (!final_block) {
      refill();
      final_block = take(1) != 0;
      const uint32_t type = take(2);
      SS_RETURN_IF_ERROR(check_truncated("block header"));
      if (type == 0) {
        SS_RETURN_IF_ERROR(stored_block());
      } else if (type == 1) {
        SS_RETURN_IF_ERROR(huffman_block(fixed_tables().litlen, fixed_tables().dist));
      } else if (type == 2) {
        SS_RETURN_IF_ERROR(dynamic_block());
      } else {
        return corrupt(file_, position() - 1, "DEFLATE block type", "0, 1 or 2", "3 (reserved)");
      }
    }
    drop(bitcnt_ & 7);  // the rest of the final byte is padding
    const uint64_t unused = bitcnt_ / 8 - padding_;
    consumed = pos_ - unused;
    return ok_status();
  }

 private:
  // ---- bits: LSB first. bitbuf_ holds bitcnt_ bits; the top 8*padding_ of them are zeros that
  // stand for bytes past the end of the input (reading into them is truncation).
  void refill() {
    if (bitcnt_ > 56) return;
    if (pos_ + 8 <= n_) {
      uint64_t word;
      std::memcpy(&word, in_ + pos_, 8);  // little-endian host (x86-64, as the build targets)
      bitbuf_ |= word << bitcnt_;
      pos_ += (63 - bitcnt_) >> 3;
      bitcnt_ |= 56;
      return;
    }
    while (bitcnt_ <= 56) {
      if (pos_ < n_) {
        bitbuf_ |= uint64_t(in_[pos_++]) << bitcnt_;
      } else {
        ++padding_;
      }
      bitcnt_ += 8;
    }
  }
  uint32_t peek(int k) const { return uint32_t(bitbuf_ & ((uint64_t(1) << k) - 1)); }
  void drop(int k) {
    bitbuf_ >>= k;
    bitcnt_ -= k;
  }
  uint32_t take(int k) {
    const uint32_t v = peek(k);
    drop(k);
    return v;
  }
  bool overran() const { return uint64_t(bitcnt_) < 8 * padding_; }
  // Byte offset (in the whole file) of the byte holding the next unread bit.
  uint64_t position() const { return base_ + std::min<uint64_t>((8 * (pos_ + padding_) - bitcnt_) / 8, n_); }
  Status check_truncated(const char* what) const {
    if (!overran()) return ok_status();
    return corrupt(file_, base_ + n_, what, "more input", "end of data (truncated stream)");
  }

  // Decodes one symbol; needs >= 15 bits buffered (the caller refilled).
  Status decode(const HuffTable& table, const char* what, uint32_t& symbol) {
    HuffEntry e = table.entries[peek(kPrimaryBits)];
    if (e.kind == ENTRY_LINK) e = table.entries[e.value + ((bitbuf_ >> kPrimaryBits) & ((1u << e.length) - 1))];
    if (e.kind != ENTRY_SYMBOL) {
      if (overran()) return check_truncated(what);
      return corrupt(file_, position(), what, table.empty ? "a code (the tree has none)" : "a code of the tree",
                     "bits that match no code (incomplete tree)");
    }
    drop(e.length);
    symbol = e.value;
    return ok_status();
  }

  Status grow(uint64_t needed) {
    if (needed > max_output_)
      return corrupt(file_, position(), "decompressed size", "<= " + std::to_string(max_output_) + " bytes (cap)",
                     "more than " + std::to_string(max_output_));
    uint64_t size = std::max<uint64_t>({needed, uint64_t(out_.size()) * 2, 1u << 16});
    size = std::min<uint64_t>(size, max_output_);
    out_.resize(size + kSlack);
    write_limit_ = size;
    return ok_status();
  }

  Status stored_block() {
    drop(bitcnt_ & 7);
    // Hand the whole buffered bytes back to the input.
    const uint64_t buffered = bitcnt_ / 8;
    if (buffered < padding_) return check_truncated("stored block");
    pos_ -= buffered - padding_;
    bitbuf_ = 0;
    bitcnt_ = 0;
    padding_ = 0;
    if (n_ - pos_ < 4) return corrupt(file_, base_ + n_, "stored block LEN/NLEN", "4 bytes", std::to_string(n_ - pos_) + " bytes");
    const uint32_t len = in_[pos_] | uint32_t(in_[pos_ + 1]) << 8;
    const uint32_t nlen = in_[pos_ + 2] | uint32_t(in_[pos_ + 3]) << 8;
    if ((len ^ 0xFFFFu) != nlen)
      return corrupt(file_, base_ + pos_, "stored block NLEN", "one's complement of LEN " + std::to_string(len),
                     std::to_string(nlen));
    pos_ += 4;
    if (n_ - pos_ < len)
      return corrupt(file_, base_ + n_, "stored block data", std::to_string(len) + " bytes",
                     std::to_string(n_ - pos_) + " bytes (truncated stream)");
    if (out_len_ + len > write_limit_) SS_RETURN_IF_ERROR(grow(out_len_ + len));
    std::memcpy(out_.data() + out_len_, in_ + pos_, len);
    out_len_ += len;
    pos_ += len;
    return ok_status();
  }

  Status dynamic_block() {
    refill();
    const int nlen = int(take(5)) + 257;
    const int ndist = int(take(5)) + 1;
    const int ncode = int(take(4)) + 4;
    SS_RETURN_IF_ERROR(check_truncated("dynamic block header"));
    if (nlen > 286) return corrupt(file_, position(), "HLIT", "<= 29 (286 literal/length codes)", std::to_string(nlen - 257));
    if (ndist > 30) return corrupt(file_, position(), "HDIST", "<= 29 (30 distance codes)", std::to_string(ndist - 1));
    uint8_t cl_lengths[19] = {};
    for (int i = 0; i < ncode; ++i) {
      refill();
      cl_lengths[kCodeLengthOrder[i]] = uint8_t(take(3));
    }
    SS_RETURN_IF_ERROR(check_truncated("code length code lengths"));
    const BuildResult cl = build_huffman(cl_lengths, 19, false, code_length_table_);
    if (cl != BuildResult::OK || code_length_table_.empty)
      return corrupt(file_, position(), "code length code", "a complete prefix code",
                     cl == BuildResult::OVERSUBSCRIBED ? "over-subscribed" : "incomplete");

    uint8_t lengths[286 + 30] = {};
    int i = 0;
    while (i < nlen + ndist) {
      refill();
      uint32_t sym = 0;
      SS_RETURN_IF_ERROR(decode(code_length_table_, "code length symbol", sym));
      if (sym < 16) {
        lengths[i++] = uint8_t(sym);
        continue;
      }
      int repeat;
      uint8_t value = 0;
      if (sym == 16) {
        if (i == 0) return corrupt(file_, position(), "code length repeat (16)", "a previous length", "none (first code)");
        value = lengths[i - 1];
        repeat = 3 + int(take(2));
      } else if (sym == 17) {
        repeat = 3 + int(take(3));
      } else {
        repeat = 11 + int(take(7));
      }
      SS_RETURN_IF_ERROR(check_truncated("code lengths"));
      if (i + repeat > nlen + ndist)
        return corrupt(file_, position(), "code length repeat", "<= " + std::to_string(nlen + ndist - i) + " lengths left",
                       std::to_string(repeat));
      std::fill(lengths + i, lengths + i + repeat, value);
      i += repeat;
    }
    SS_RETURN_IF_ERROR(check_truncated("code lengths"));
    if (lengths[256] == 0)
      return corrupt(file_, position(), "end-of-block code", "a nonzero code length for symbol 256", "0");
    const BuildResult lr = build_huffman(lengths, nlen, true, litlen_table_);
    if (lr != BuildResult::OK)
      return corrupt(file_, position(), "literal/length code", "a complete prefix code",
                     lr == BuildResult::OVERSUBSCRIBED ? "over-subscribed" : "incomplete");
    const BuildResult dr = build_huffman(lengths + nlen, ndist, true, dist_table_);
    if (dr != BuildResult::OK)
      return corrupt(file_, position(), "distance code", "a complete prefix code",
                     dr == BuildResult::OVERSUBSCRIBED ? "over-subscribed" : "incomplete");
    return huffman_block(litlen_table_, dist_table_);
  }

  Status huffman_block(const HuffTable& litlen, const HuffTable& dist) {
    uint8_t* out = reinterpret_cast<uint8_t*>(out_.data());
    for (;;) {
      // 48 bits cover the longest length/distance pair: 15 + 5 + 15 + 13.
      refill();
      HuffEntry e = litlen.entries[peek(kPrimaryBits)];
      if (e.kind == ENTRY_SYMBOL && e.value < 256) {
        // Literals whose codes sit in the first level (<= kPrimaryBits bits): up to four from one
        // refill (<= 40 of >= 57 bits), the bulk of image data.
        int k = 0;
        do {
          drop(e.length);
          if (out_len_ >= write_limit_) {
            SS_RETURN_IF_ERROR(grow(out_len_ + 1));
            out = reinterpret_cast<uint8_t*>(out_.data());
          }
          out[out_len_++] = uint8_t(e.value);
          e = litlen.entries[peek(kPrimaryBits)];
        } while (++k < 4 && e.kind == ENTRY_SYMBOL && e.value < 256);
        if (overran()) return check_truncated("literal");
        continue;
      }
      uint32_t sym = 0;
      if (e.kind == ENTRY_SYMBOL) {
        drop(e.length);
        sym = e.value;
      } else {
        SS_RETURN_IF_ERROR(decode(litlen, "literal/length symbol", sym));
      }
      if (sym < 256) {
        if (overran()) return check_truncated("literal");
        if (out_len_ >= write_limit_) {
          SS_RETURN_IF_ERROR(grow(out_len_ + 1));
          out = reinterpret_cast<uint8_t*>(out_.data());
        }
        out[out_len_++] = uint8_t(sym);
        continue;
      }
      if (sym == 256) return check_truncated("end-of-block");
      if (sym > 285) return corrupt(file_, position(), "length symbol", "257..285", std::to_string(sym));
      const uint32_t len = kLengthBase[sym - 257] + take(kLengthExtra[sym - 257]);
      uint32_t dsym = 0;
      SS_RETURN_IF_ERROR(decode(dist, "distance symbol", dsym));
      if (dsym > 29) return corrupt(file_, position(), "distance symbol", "0..29", std::to_string(dsym));
      const uint32_t distance = kDistBase[dsym] + take(kDistExtra[dsym]);
      if (overran()) return check_truncated("length/distance pair");
      if (distance > out_len_)
        return corrupt(file_, position(), "match distance", "<= " + std::to_string(out_len_) + " (bytes written so far)",
                       std::to_string(distance));
      if (out_len_ + len > write_limit_) {
        SS_RETURN_IF_ERROR(grow(out_len_ + len));
        out = reinterpret_cast<uint8_t*>(out_.data());
      }
      uint8_t* dst = out + out_len_;
      const uint8_t* src = dst - distance;
      if (distance == 1) {
        std::memset(dst, src[0], len);  // a run of one byte (the background of most images)
      } else if (distance >= 8) {
        // Chunks of 8 never overlap their own source; the last chunk may write up to 7 bytes past
        // the match into the slack, which later output overwrites.
        for (uint32_t k = 0; k < len; k += 8) std::memcpy(dst + k, src + k, 8);
      } else {
        for (uint32_t k = 0; k < len; ++k) dst[k] = src[k];
      }
      out_len_ += len;
    }
  }

  const uint8_t* in_;
  size_t n_;
  uint64_t base_;
  const std::string& file_;
  std::string& out_;
  size_t& out_len_;
  uint64_t max_output_;
  uint64_t write_limit_ = 0;
  uint64_t bitbuf_ = 0;
  int bitcnt_ = 0;
  size_t pos_ = 0;
  uint64_t padding_ = 0;
  HuffTable litlen_table_, dist_table_, code_length_table_;
};

// Decodes raw DEFLATE from in[0, n) (which sits at `base` in the file), appending to out (logical
// length out_len, capacity out.size() - kSlack).
Status inflate_into(const uint8_t* in, size_t n, uint64_t base, const std::string& file, std::string& out,
                    size_t& out_len, uint64_t max_output, uint64_t& consumed) {
  auto inflater = std::make_unique<Inflater>(in, n, base, file, out, out_len, max_output);  // ~20 KB of tables
  return inflater->run(consumed);
}

uint32_t read_le32(const uint8_t* p) { return p[0] | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// One gzip member starting at in[at]; advances `at` past its trailer.
Status gunzip_member(const uint8_t* in, size_t n, size_t& at, const std::string& file, std::string& out,
                     size_t& out_len, uint64_t max_output) {
  const size_t start = at;
  auto need = [&](size_t k, const char* what) -> Status {
    if (n - at < k)
      return corrupt(file, n, what, std::to_string(k) + " bytes", std::to_string(n - at) + " bytes (truncated)");
    return ok_status();
  };
  SS_RETURN_IF_ERROR(need(10, "gzip header"));
  if (in[at] != 0x1f || in[at + 1] != 0x8b)
    return corrupt(file, at, "gzip magic", "1f 8b", hex32(uint32_t(in[at]) << 8 | in[at + 1]));
  if (in[at + 2] != 8) return corrupt(file, at + 2, "gzip compression method", "8 (deflate)", std::to_string(in[at + 2]));
  const uint8_t flags = in[at + 3];
  if (flags & 0xE0) return corrupt(file, at + 3, "gzip flags", "reserved bits 5-7 zero", hex32(flags));
  at += 10;
  if (flags & 0x04) {  // FEXTRA
    SS_RETURN_IF_ERROR(need(2, "gzip FEXTRA length"));
    const size_t xlen = in[at] | size_t(in[at + 1]) << 8;
    at += 2;
    SS_RETURN_IF_ERROR(need(xlen, "gzip FEXTRA field"));
    at += xlen;
  }
  for (const uint8_t flag : {uint8_t(0x08), uint8_t(0x10)}) {  // FNAME, FCOMMENT: zero-terminated
    if (!(flags & flag)) continue;
    const void* end = std::memchr(in + at, 0, n - at);
    if (!end)
      return corrupt(file, n, flag == 0x08 ? "gzip FNAME" : "gzip FCOMMENT", "a zero-terminated string",
                     "end of data (truncated)");
    at = size_t(static_cast<const uint8_t*>(end) - in) + 1;
  }
  if (flags & 0x02) {  // FHCRC: low 16 bits of the CRC-32 of the header so far
    SS_RETURN_IF_ERROR(need(2, "gzip FHCRC"));
    const uint32_t expected = crc32_update(0, in + start, at - start) & 0xFFFFu;
    const uint32_t got = in[at] | uint32_t(in[at + 1]) << 8;
    if (expected != got) return corrupt(file, at, "gzip header CRC-16", hex32(expected), hex32(got));
    at += 2;
  }
  const size_t first = out_len;
  uint64_t consumed = 0;
  SS_RETURN_IF_ERROR(inflate_into(in + at, n - at, at, file, out, out_len, max_output, consumed));
  at += consumed;
  SS_RETURN_IF_ERROR(need(8, "gzip trailer (CRC-32, ISIZE)"));
  const uint32_t crc = crc32_update(0, reinterpret_cast<const uint8_t*>(out.data()) + first, out_len - first);
  const uint32_t stored_crc = read_le32(in + at);
  if (crc != stored_crc)
    return corrupt(file, at, "gzip CRC-32 of the member's data", hex32(stored_crc) + " (stored)",
                   hex32(crc) + " (computed)");
  const uint32_t isize = read_le32(in + at + 4);
  if (isize != uint32_t(out_len - first))
    return corrupt(file, at + 4, "gzip ISIZE (data length mod 2^32)", std::to_string(isize) + " (stored)",
                   std::to_string(uint32_t(out_len - first)) + " (decoded)");
  at += 8;
  return ok_status();
}

}  // namespace

Result<std::string> inflate_raw(std::string_view bytes, const std::string& file, uint64_t max_output,
                                uint64_t* consumed) {
  std::string out;
  size_t out_len = 0;
  uint64_t used = 0;
  SS_RETURN_IF_ERROR(inflate_into(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 0, file, out, out_len,
                                  max_output, used));
  out.resize(out_len);
  if (consumed) *consumed = used;
  return out;
}

Result<std::string> gunzip(std::string_view bytes, const std::string& file, uint64_t max_output) {
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  size_t out_len = 0;
  // The last member's ISIZE is a size hint (untrusted: capped by max_output and by DEFLATE's best
  // ratio of about 1032:1).
  if (n >= 18) {
    const uint64_t hint = std::min<uint64_t>({read_le32(in + n - 4), max_output, uint64_t(n) * 1032});
    out.resize(hint + kSlack);
  }
  size_t at = 0;
  do {
    SS_RETURN_IF_ERROR(gunzip_member(in, n, at, file, out, out_len, max_output));
    // Zero padding after the last member is allowed (gzip(1) and Python skip it too).
    size_t z = at;
    while (z < n && in[z] == 0) ++z;
    if (z == n) break;
    if (z != at)
      return corrupt(file, z, "data after zero padding", "only zeros up to the end", "a nonzero byte");
  } while (at < n);
  out.resize(out_len);
  return out;
}

Result<std::string> read_file_maybe_gzip(const std::string& path, uint64_t max_output) {
  SS_ASSIGN_OR_RETURN(auto mapped, MappedFile::open(path));
  const std::string_view bytes(reinterpret_cast<const char*>(mapped->data()), mapped->size());
  if (bytes.size() >= 2 && uint8_t(bytes[0]) == 0x1f && uint8_t(bytes[1]) == 0x8b) return gunzip(bytes, path, max_output);
  if (bytes.size() > max_output)
    return corrupt(path, 0, "file size", "<= " + std::to_string(max_output) + " bytes (cap)", std::to_string(bytes.size()));
  return std::string(bytes);
}

}  // namespace ss

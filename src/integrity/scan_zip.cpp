// A minimal zip reader for PyTorch archives (torch.save's default format since 1.6) and the
// scanner of such archives: the end-of-central-directory record (zip64 too), every central entry
// checked against its local header and the archive's bounds, CRC-32 of stored entries, and the
// pickle scanner run on every *.pkl member. Only STORED members are read (torch.save writes STORED;
// adding zlib would be a new dependency for no file torch writes), so a deflated pickle is a finding,
// not a silent skip. Zip members that are themselves zips are scanned recursively (depth 4).
// Not here: the pickle walker (scan_pickle.cpp). To look at one more kind of member: a branch in
// scan_zip_members.
#include <algorithm>
#include <array>
#include <map>

#include "safeshrink/integrity.h"

namespace ss {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kMaxEntries = 1u << 20;
constexpr int kMaxDepth = 4;

uint64_t le(const uint8_t* p, int k) {
  uint64_t v = 0;
  for (int i = 0; i < k; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void scan_zip_members(const uint8_t* data, size_t n, const std::string& name, int depth, std::vector<Finding>* out);

}  // namespace

uint32_t crc32_of(const uint8_t* data, size_t n) {
  const auto& t = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = t[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

Result<std::vector<ZipEntry>> read_zip_directory(const uint8_t* data, size_t n, const std::string& name) {
  if (n < 22) return corrupt(name, 0, "zip end record", ">= 22 bytes", std::to_string(n) + " bytes");
  // The end record is in the last 22 + 65535 bytes (its comment is at most 65535 bytes).
  size_t eocd = SIZE_MAX;
  const size_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (size_t k = n - 22 + 1; k-- > lowest;)
    if (le(data + k, 4) == kEocdSig && k + 22 + le(data + k + 20, 2) <= n) {
      eocd = k;
      break;
    }
  if (eocd == SIZE_MAX) return corrupt(name, n, "zip end of central directory", "signature PK\\5\\6", "not found");
  uint64_t entries = le(data + eocd + 10, 2), cd_size = le(data + eocd + 12, 4), cd_offset = le(data + eocd + 16, 4);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (eocd < 20 || le(data + eocd - 20, 4) != kZip64LocatorSig)
      return corrupt(name, eocd, "zip64 locator", "PK\\6\\7 before the end record", "absent");
    uint64_t z64 = le(data + eocd - 20 + 8, 8);
    if (z64 > n || n - z64 < 56 || le(data + z64, 4) != kZip64EocdSig)
      return corrupt(name, eocd - 20, "zip64 end record offset", "a PK\\6\\6 record inside the file", std::to_string(z64));
    entries = le(data + z64 + 32, 8);
    cd_size = le(data + z64 + 40, 8);
    cd_offset = le(data + z64 + 48, 8);
  }
  if (entries > kMaxEntries) return corrupt(name, eocd, "zip entry count", "<= " + std::to_string(kMaxEntries), std::to_string(entries));
  if (cd_offset > n || cd_size > n - cd_offset)
    return corrupt(name, eocd, "zip central directory", "inside the file", std::to_string(cd_offset) + "+" + std::to_string(cd_size));
  if (entries * 46 > cd_size) return corrupt(name, eocd, "zip central directory size", ">= 46 bytes per entry", std::to_string(cd_size));
  std::vector<ZipEntry> out;
  out.reserve(entries);
  uint64_t pos = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t e = 0; e < entries; ++e) {
    if (cd_end - pos < 46 || le(data + pos, 4) != kCentralSig)
      return corrupt(name, pos, "zip central header " + std::to_string(e), "signature PK\\1\\2", "something else");
    const uint8_t* h = data + pos;
    ZipEntry z;
    const uint64_t flags = le(h + 8, 2);
    z.method = static_cast<uint16_t>(le(h + 10, 2));
    z.crc32 = static_cast<uint32_t>(le(h + 16, 4));
    z.compressed_size = le(h + 20, 4);
    z.size = le(h + 24, 4);
    const uint64_t name_len = le(h + 28, 2), extra_len = le(h + 30, 2), comment_len = le(h + 32, 2);
    uint64_t local = le(h + 42, 4);
    if (46 + name_len + extra_len + comment_len > cd_end - pos)
      return corrupt(name, pos, "zip central header lengths", "inside the central directory", "past its end");
    z.name.assign(reinterpret_cast<const char*>(h + 46), name_len);
    // zip64 extra field: 64-bit values for the 32-bit fields that are 0xFFFFFFFF, in this order.
    const uint8_t* x = h + 46 + name_len;
    for (uint64_t k = 0; k + 4 <= extra_len;) {
      const uint64_t id = le(x + k, 2), len = le(x + k + 2, 2);
      if (k + 4 + len > extra_len) return corrupt(name, pos, "zip extra field of " + z.name, "inside the header", "past its end");
      if (id == 1) {
        uint64_t q = k + 4;
        auto take = [&](uint64_t* field) -> bool {
          if (*field != 0xFFFFFFFF) return true;
          if (q + 8 > k + 4 + len) return false;
          *field = le(x + q, 8);
          q += 8;
          return true;
        };
        if (!take(&z.size) || !take(&z.compressed_size) || !take(&local))
          return corrupt(name, pos, "zip64 extra field of " + z.name, "the 64-bit sizes it announces", "too short");
      }
      k += 4 + len;
    }
    if (flags & 1) return corrupt(name, pos, "zip entry " + z.name, "not encrypted", "encrypted");
    if (local > n || n - local < 30 || le(data + local, 4) != kLocalSig)
      return corrupt(name, pos, "zip local header of " + z.name, "signature PK\\3\\4 inside the file", std::to_string(local));
    const uint64_t lname = le(data + local + 26, 2), lextra = le(data + local + 28, 2);
    if (30 + lname + lextra > n - local)
      return corrupt(name, local, "zip local header of " + z.name, "inside the file", "past the end");
    if (std::string_view(reinterpret_cast<const char*>(data + local + 30), lname) != z.name)
      return corrupt(name, local, "zip local name", z.name, std::string(reinterpret_cast<const char*>(data + local + 30), lname));
    z.data_offset = local + 30 + lname + lextra;
    if (z.compressed_size > n - z.data_offset)
      return corrupt(name, z.data_offset, "zip data of " + z.name, "inside the file", std::to_string(z.compressed_size) + " bytes");
    if (z.method == 0 && z.compressed_size != z.size)
      return corrupt(name, pos, "zip stored entry " + z.name, "size == compressed size", std::to_string(z.size) + " vs " + std::to_string(z.compressed_size));
    out.push_back(std::move(z));
    pos += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

namespace {

void scan_zip_members(const uint8_t* data, size_t n, const std::string& name, int depth, std::vector<Finding>* out) {
  auto dir = read_zip_directory(data, n, name);
  if (!dir.ok()) {
    out->push_back({Severity::HIGH, "zip.malformed", name, 0, dir.status().message()});
    return;
  }
  std::map<std::string, int> seen;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  bool has_pickle = false;
  for (const ZipEntry& z : *dir) {
    const std::string member = name + "!" + z.name;
    if (++seen[z.name] == 2)
      out->push_back({Severity::HIGH, "zip.duplicate_name", name, z.data_offset,
                      "two entries named " + z.name + ": readers disagree on which one is loaded"});
    if (z.name.find("..") != std::string::npos || (!z.name.empty() && z.name[0] == '/'))
      out->push_back({Severity::HIGH, "zip.path_escape", name, z.data_offset, "entry name escapes the archive: " + z.name});
    ranges.push_back({z.data_offset, z.data_offset + z.compressed_size});
    const bool is_pickle = ends_with(z.name, ".pkl");
    has_pickle |= is_pickle;
    if (z.method != 0) {
      out->push_back({is_pickle ? Severity::HIGH : Severity::MEDIUM, "zip.deflated_member", name, z.data_offset,
                      z.name + " is compressed (method " + std::to_string(z.method) +
                          "); only STORED members are read, so it was not scanned"});
      continue;
    }
    const uint8_t* bytes = data + z.data_offset;
    const size_t size = static_cast<size_t>(z.size);
    if (crc32_of(bytes, size) != z.crc32)
      out->push_back({Severity::MEDIUM, "zip.crc_mismatch", name, z.data_offset, z.name + ": CRC-32 does not match its bytes"});
    if (is_pickle) {
      PickleScan ps = scan_pickle_bytes(bytes, size, member);
      for (auto& f : ps.findings) out->push_back(std::move(f));
    } else if (ends_with(z.name, ".py") || z.name.find("/code/") != std::string::npos) {
      out->push_back({Severity::MEDIUM, "zip.torchscript_code", name, z.data_offset,
                      z.name + ": TorchScript code, which torch.jit.load compiles and runs"});
    } else if (size >= 4 && le(bytes, 4) == kLocalSig) {
      if (depth >= kMaxDepth) {
        out->push_back({Severity::HIGH, "zip.nesting", name, z.data_offset, z.name + ": zip nested deeper than 4"});
      } else {
        scan_zip_members(bytes, size, member, depth + 1, out);
      }
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].first < ranges[k - 1].second) {
      out->push_back({Severity::HIGH, "zip.overlap", name, ranges[k].first, "two entries share bytes (overlapping members)"});
      break;
    }
  if (!has_pickle && depth == 0)
    out->push_back({Severity::INFO, "zip.no_pickle", name, 0, "no .pkl member: not a torch.save archive"});
}

}  // namespace

std::vector<Finding> scan_pytorch_zip_bytes(const uint8_t* data, size_t n, const std::string& name) {
  std::vector<Finding> out;
  scan_zip_members(data, n, name, 0, &out);
  return out;
}

}  // namespace ss

// Ed25519 signatures over manifests, in a DSSE envelope (github.com/secure-systems-lab/dsse):
// key generation, signing PAE(payloadType, statement), verification, and the base64 both need.
// Uses OpenSSL EVP only. Not here: what is signed (manifest.cpp builds the statement) and where
// the envelope is stored (the CLI). To support one more key type: a branch in load_*_key and in
// sign_statement / verify_envelope on EVP_PKEY_get_id.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "safeshrink/integrity.h"

namespace ss {
namespace {

using json = nlohmann::json;
using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using FilePtr = std::unique_ptr<FILE, int (*)(FILE*)>;

Result<PkeyPtr> load_key(const std::string& path, bool private_key) {
  FilePtr f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return not_found("cannot open key " + path);
  EVP_PKEY* k = private_key ? PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr)
                            : PEM_read_PUBKEY(f.get(), nullptr, nullptr, nullptr);
  if (!k) return invalid_argument(path + ": not a PEM " + (private_key ? "private" : "public") + " key");
  PkeyPtr key(k, &EVP_PKEY_free);
  if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) return unsupported(path + ": not an Ed25519 key");
  return key;
}

// keyid: SHA-256 of the raw 32-byte public key (informational; verification uses the key given).
std::string key_id(EVP_PKEY* k) {
  unsigned char raw[64];
  size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1) return "";
  return sha256_hex(raw, len);
}

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += table[v >> 18];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      ++pad;
      continue;
    }
    int v = b64_value(c);
    if (v < 0 || pad > 0) return corrupt("base64", i, "character", "base64 alphabet", std::string(1, c));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if (pad > 2 || bits >= 6) return corrupt("base64", text.size(), "length", "a whole number of bytes", "a partial byte");
  return out;
}

std::string dsse_pae(std::string_view payload_type, std::string_view payload) {
  std::string s = "DSSEv1 ";
  s += std::to_string(payload_type.size());
  s += ' ';
  s += payload_type;
  s += ' ';
  s += std::to_string(payload.size());
  s += ' ';
  s += payload;
  return s;
}

Status generate_ed25519_key(const std::string& private_pem_path, const std::string& public_pem_path) {
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                   &EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    return internal_error("OpenSSL refused to generate an Ed25519 key");
  PkeyPtr key(raw, &EVP_PKEY_free);
  {
    mode_t old = umask(077);
    FilePtr f(std::fopen(private_pem_path.c_str(), "wb"), &std::fclose);
    umask(old);
    if (!f) return io_error("cannot write " + private_pem_path);
    if (PEM_write_PrivateKey(f.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
      return io_error("cannot write the private key to " + private_pem_path);
  }
  chmod(private_pem_path.c_str(), 0600);
  FilePtr f(std::fopen(public_pem_path.c_str(), "wb"), &std::fclose);
  if (!f) return io_error("cannot write " + public_pem_path);
  if (PEM_write_PUBKEY(f.get(), key.get()) != 1) return io_error("cannot write the public key to " + public_pem_path);
  return ok_status();
}

Result<std::string> sign_statement(const std::string& statement_json, const std::string& private_pem_path) {
  SS_ASSIGN_OR_RETURN(PkeyPtr key, load_key(private_pem_path, true));
  const std::string pae = dsse_pae(kDssePayloadType, statement_json);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char sig[64];
  size_t sig_len = sizeof(sig);
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_len, reinterpret_cast<const unsigned char*>(pae.data()), pae.size()) != 1)
    return internal_error("OpenSSL refused to sign");
  json env = {{"payloadType", kDssePayloadType},
              {"payload", base64_encode(statement_json)},
              {"signatures", json::array({{{"keyid", key_id(key.get())},
                                           {"sig", base64_encode(std::string_view(reinterpret_cast<char*>(sig), sig_len))}}})}};
  return env.dump(2) + "\n";
}

Result<std::string> verify_envelope(std::string_view envelope_json, const std::string& public_pem_path) {
  SS_ASSIGN_OR_RETURN(PkeyPtr key, load_key(public_pem_path, false));
  json env = json::parse(envelope_json.begin(), envelope_json.end(), nullptr, false);
  auto bad = [](const std::string& what) { return corrupt("signature", 0, what, "a DSSE envelope", "something else"); };
  if (env.is_discarded() || !env.is_object()) return bad("JSON document");
  if (!env.contains("payloadType") || !env["payloadType"].is_string()) return bad("payloadType");
  if (!env.contains("payload") || !env["payload"].is_string()) return bad("payload");
  if (!env.contains("signatures") || !env["signatures"].is_array() || env["signatures"].empty()) return bad("signatures");
  const std::string type = env["payloadType"];
  if (type != kDssePayloadType)
    return Status(StatusCode::INTEGRITY, "signature: payloadType " + type + ", expected " + kDssePayloadType);
  SS_ASSIGN_OR_RETURN(std::string payload, base64_decode(env["payload"].get<std::string>()));
  const std::string pae = dsse_pae(type, payload);
  for (const auto& s : env["signatures"]) {
    if (!s.is_object() || !s.contains("sig") || !s["sig"].is_string()) return bad("signatures[].sig");
    auto sig = base64_decode(s["sig"].get<std::string>());
    if (!sig.ok()) continue;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                         reinterpret_cast<const unsigned char*>(pae.data()), pae.size()) == 1)
      return payload;
  }
  return Status(StatusCode::INTEGRITY, "signature: no signature in the envelope verifies with " + public_pem_path);
}

}  // namespace ss

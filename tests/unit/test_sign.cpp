// Signatures: DSSE's PAE against the example in the DSSE spec, base64 against RFC 4648 vectors,
// sign -> verify passes, and the signature also verifies with the openssl command line (an
// implementation we did not write) over the PAE bytes; a flipped byte in a file, in the signed
// statement or in the signature fails, and so does a different key.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "safeshrink/integrity.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace ss;
using json = nlohmann::json;

namespace {

struct Keys {
  std::string dir, priv, pub, priv2, pub2;
};

Keys make_keys() {
  Keys k;
  k.dir = test::temp_dir("sign");
  k.priv = k.dir + "/a.key";
  k.pub = k.dir + "/a.pub";
  k.priv2 = k.dir + "/b.key";
  k.pub2 = k.dir + "/b.pub";
  EXPECT_TRUE(generate_ed25519_key(k.priv, k.pub).ok());
  EXPECT_TRUE(generate_ed25519_key(k.priv2, k.pub2).ok());
  return k;
}

std::string model_folder() {
  const std::string dir = test::temp_dir("sign-model");
  test::write_bytes(dir + "/weights.bin", std::vector<uint8_t>(4096, 7));
  test::write_bytes(dir + "/config.json", {'{', '}'});
  return dir;
}

}  // namespace

TEST(Sign, PaeAndBase64KnownValues) {
  // DSSE protocol.md example.
  EXPECT_EQ(dsse_pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  // RFC 4648 section 10.
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(base64_encode(plain[i]), enc[i]);
    auto back = base64_decode(enc[i]);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, plain[i]);
  }
  EXPECT_FALSE(base64_decode("Zm9v*").ok());
}

TEST(Sign, SignVerifyAndTamper) {
  const Keys k = make_keys();
  const std::string dir = model_folder();
  auto m = build_manifest(dir);
  ASSERT_TRUE(m.ok());
  const std::string statement = manifest_to_json(*m);
  auto env = sign_statement(statement, k.priv);
  ASSERT_TRUE(env.ok()) << env.status().to_string();

  auto payload = verify_envelope(*env, k.pub);
  ASSERT_TRUE(payload.ok()) << payload.status().to_string();
  EXPECT_EQ(*payload, statement);
  auto signed_manifest = manifest_from_json(*payload);
  ASSERT_TRUE(signed_manifest.ok());
  auto c = verify_manifest(dir, *signed_manifest);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->ok());

  // Wrong key.
  auto wrong = verify_envelope(*env, k.pub2);
  EXPECT_EQ(wrong.status().code(), StatusCode::INTEGRITY);

  // A byte of the signed statement changed (the digest of a file), re-encoded.
  json j = json::parse(*env);
  std::string tampered_statement = statement;
  const size_t at = tampered_statement.find("\"digest\": \"") + 11;
  tampered_statement[at] = tampered_statement[at] == 'a' ? 'b' : 'a';
  json j2 = j;
  j2["payload"] = base64_encode(tampered_statement);
  EXPECT_EQ(verify_envelope(j2.dump(), k.pub).status().code(), StatusCode::INTEGRITY);

  // A byte of the signature changed.
  auto sig = base64_decode(j["signatures"][0]["sig"].get<std::string>());
  ASSERT_TRUE(sig.ok());
  ASSERT_EQ(sig->size(), 64u);
  std::string bad_sig = *sig;
  bad_sig[10] ^= 0x01;
  json j3 = j;
  j3["signatures"][0]["sig"] = base64_encode(bad_sig);
  EXPECT_EQ(verify_envelope(j3.dump(), k.pub).status().code(), StatusCode::INTEGRITY);

  // A byte of a file changed: the signature still verifies, the files do not.
  auto bytes = test::read_bytes(dir + "/weights.bin");
  bytes[1000] ^= 0x80;
  test::write_bytes(dir + "/weights.bin", bytes);
  auto c2 = verify_manifest(dir, *signed_manifest);
  ASSERT_TRUE(c2.ok());
  ASSERT_EQ(c2->mismatches.size(), 1u);
  EXPECT_EQ(c2->mismatches[0].path, "weights.bin");

  // Malformed envelopes are CORRUPT, not crashes.
  EXPECT_EQ(verify_envelope("not json", k.pub).status().code(), StatusCode::CORRUPT);
  EXPECT_EQ(verify_envelope("{\"payloadType\": 1}", k.pub).status().code(), StatusCode::CORRUPT);
}

TEST(Sign, SignatureVerifiesWithOpensslCli) {
  std::string out;
  if (test::run_command("openssl version", &out) != 0) GTEST_SKIP() << "openssl CLI absent";
  const Keys k = make_keys();
  const std::string statement = "{\"hello\": \"world\"}";
  auto env = sign_statement(statement, k.priv);
  ASSERT_TRUE(env.ok());
  json j = json::parse(*env);
  auto sig = base64_decode(j["signatures"][0]["sig"].get<std::string>());
  ASSERT_TRUE(sig.ok());
  const std::string pae = dsse_pae(kDssePayloadType, statement);
  test::write_bytes(k.dir + "/pae", std::vector<uint8_t>(pae.begin(), pae.end()));
  test::write_bytes(k.dir + "/sig", std::vector<uint8_t>(sig->begin(), sig->end()));
  EXPECT_EQ(test::run_command("openssl pkeyutl -verify -pubin -inkey '" + k.pub + "' -rawin -in '" + k.dir + "/pae' -sigfile '" +
                              k.dir + "/sig'", &out), 0) << out;
  EXPECT_NE(test::run_command("openssl pkeyutl -verify -pubin -inkey '" + k.pub2 + "' -rawin -in '" + k.dir + "/pae' -sigfile '" +
                              k.dir + "/sig'", &out), 0) << out;
  // The private key file is not readable by others.
  EXPECT_EQ(fs::status(k.priv).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST(Sign, CliSignAndVerify) {
  if (!fs::exists(test::cli_path())) GTEST_SKIP() << "safeshrink CLI not built";
  const std::string keys = test::temp_dir("sign-cli");
  const std::string dir = model_folder();
  const std::string cli = "'" + test::cli_path() + "' ";
  std::string out;
  ASSERT_EQ(test::run_command(cli + "keygen --private '" + keys + "/k' --public '" + keys + "/k.pub'", &out), 0) << out;
  ASSERT_EQ(test::run_command(cli + "keygen --private '" + keys + "/o' --public '" + keys + "/o.pub'", &out), 0) << out;
  ASSERT_EQ(test::run_command(cli + "sign --key '" + keys + "/k' '" + dir + "' --signature '" + keys + "/m.sig'", &out), 0) << out;
  EXPECT_EQ(test::run_command(cli + "verify-signature --pubkey '" + keys + "/k.pub' '" + dir + "' --signature '" + keys + "/m.sig'", &out), 0) << out;
  EXPECT_EQ(test::run_command(cli + "verify-signature --pubkey '" + keys + "/o.pub' '" + dir + "' --signature '" + keys + "/m.sig'", &out), 3) << out;
  test::write_bytes(dir + "/config.json", {'[', ']'});
  EXPECT_EQ(test::run_command(cli + "verify-signature --pubkey '" + keys + "/k.pub' '" + dir + "' --signature '" + keys + "/m.sig'", &out), 3) << out;
}

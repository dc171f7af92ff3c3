// `safeshrink manifest | verify | keygen | sign | verify-signature`: pin model files by SHA-256 and
// sign the pins. manifest PATH prints an in-toto Statement v1 (or writes it with -o); verify PATH
// checks it against --manifest M or --pin sha256:HEX and prints a per-file table of what is
// missing / extra / changed (exit 3); sign writes a DSSE envelope of the manifest (Ed25519), and
// verify-signature checks the envelope and then the files it names. Logic lives in
// safeshrink/integrity.h; this file parses flags and prints. To add a flag: declare it once here.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "safeshrink/buffer.h"
#include "safeshrink/integrity.h"

namespace ss::cli {
namespace {

int print_comparison(const ManifestComparison& c) {
  if (c.ok()) {
    std::printf("OK: %zu file(s) match\n", c.files_checked);
    return EXIT_OK;
  }
  std::printf("%-8s %-40s %-16s %-16s\n", "status", "file", "expected", "actual");
  for (const auto& m : c.mismatches)
    std::printf("%-8s %-40s %-16s %-16s\n", m.kind.c_str(), m.path.c_str(),
                m.expected.empty() ? "-" : m.expected.substr(0, 16).c_str(), m.actual.empty() ? "-" : m.actual.substr(0, 16).c_str());
  std::printf("MISMATCH: %zu problem(s), %zu file(s) checked\n", c.mismatches.size(), c.files_checked);
  return EXIT_INTEGRITY;
}

Status write_text(const std::string& path, const std::string& text) { return write_file_atomic(path, text.data(), text.size()); }

std::string default_signature_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p + ".sig";
}

}  // namespace

RunFn add_manifest(CLI::App& app) {
  struct Args {
    std::string path, out, manifest, pin, key, pubkey, signature, private_out = "safeshrink.key", public_out = "safeshrink.pub";
    uint64_t shard = kDefaultShardBytes;
    std::vector<std::string> ignore;
  };
  auto a = std::make_shared<Args>();
  auto* man = app.add_subcommand("manifest", "SHA-256 manifest (in-toto Statement v1) of a file or model folder");
  man->add_option("path", a->path, "file or folder")->required();
  man->add_option("-o,--output", a->out, "write the manifest here (default: stdout)");
  man->add_option("--shard-size", a->shard, "bytes per shard digest for large files (0 = none; default 1 GiB)");
  man->add_option("--ignore", a->ignore, "names to leave out (default: .git .gitattributes .github .gitignore __pycache__)");
  auto* ver = app.add_subcommand("verify", "Check files against a manifest (--manifest) or one pin (--pin sha256:HEX)");
  ver->add_option("path", a->path, "file or folder")->required();
  auto* m_opt = ver->add_option("--manifest", a->manifest, "manifest JSON written by `safeshrink manifest`");
  ver->add_option("--pin", a->pin, "sha256:<64 hex> of one file")->excludes(m_opt);
  auto* key = app.add_subcommand("keygen", "Write a new Ed25519 key pair (PEM)");
  key->add_option("--private", a->private_out, "private key path (mode 0600; default safeshrink.key)");
  key->add_option("--public", a->public_out, "public key path (default safeshrink.pub)");
  auto* sign = app.add_subcommand("sign", "Sign the manifest of PATH (DSSE envelope, Ed25519)");
  sign->add_option("path", a->path, "file or folder")->required();
  sign->add_option("--key", a->key, "private key (PEM)")->required();
  sign->add_option("--signature", a->signature, "where to write the envelope (default PATH.sig)");
  auto* vsig = app.add_subcommand("verify-signature", "Verify PATH's signature, then its files against the signed manifest");
  vsig->add_option("path", a->path, "file or folder")->required();
  vsig->add_option("--pubkey", a->pubkey, "public key (PEM)")->required();
  vsig->add_option("--signature", a->signature, "envelope (default PATH.sig)");

  return [=]() -> int {
    if (man->parsed()) {
      ManifestOptions opts;
      opts.shard_bytes = a->shard;
      if (!a->ignore.empty()) opts.ignore = a->ignore;
      auto m = build_manifest(a->path, opts);
      if (!m.ok()) return fail(m.status());
      const std::string text = manifest_to_json(*m);
      if (a->out.empty()) {
        std::fwrite(text.data(), 1, text.size(), stdout);
      } else {
        Status s = write_text(a->out, text);
        if (!s.ok()) return fail(s);
        std::fprintf(stderr, "wrote %s (%zu files)\n", a->out.c_str(), m->files.size());
      }
      return EXIT_OK;
    }
    if (ver->parsed()) {
      if (!a->pin.empty()) {
        auto c = verify_pin(a->path, a->pin);
        return c.ok() ? print_comparison(*c) : fail(c.status());
      }
      if (a->manifest.empty()) return fail(invalid_argument("verify needs --manifest M or --pin sha256:HEX"));
      auto text = read_text_file(a->manifest);
      if (!text.ok()) return fail(text.status());
      auto m = manifest_from_json(*text);
      if (!m.ok()) return fail(m.status());
      auto c = verify_manifest(a->path, *m);
      return c.ok() ? print_comparison(*c) : fail(c.status());
    }
    if (key->parsed()) {
      Status s = generate_ed25519_key(a->private_out, a->public_out);
      if (!s.ok()) return fail(s);
      std::printf("wrote %s (private) and %s (public)\n", a->private_out.c_str(), a->public_out.c_str());
      return EXIT_OK;
    }
    if (sign->parsed()) {
      auto m = build_manifest(a->path);
      if (!m.ok()) return fail(m.status());
      auto env = sign_statement(manifest_to_json(*m), a->key);
      if (!env.ok()) return fail(env.status());
      const std::string out = a->signature.empty() ? default_signature_path(a->path) : a->signature;
      Status s = write_text(out, *env);
      if (!s.ok()) return fail(s);
      std::printf("signed %zu file(s): %s\n", m->files.size(), out.c_str());
      return EXIT_OK;
    }
    if (vsig->parsed()) {
      const std::string sig = a->signature.empty() ? default_signature_path(a->path) : a->signature;
      auto text = read_text_file(sig);
      if (!text.ok()) return fail(text.status());
      auto statement = verify_envelope(*text, a->pubkey);
      if (!statement.ok()) return fail(statement.status());
      auto m = manifest_from_json(*statement);
      if (!m.ok()) return fail(m.status());
      std::printf("signature OK (%s)\n", a->pubkey.c_str());
      auto c = verify_manifest(a->path, *m);
      return c.ok() ? print_comparison(*c) : fail(c.status());
    }
    return -1;
  };
}

}  // namespace ss::cli

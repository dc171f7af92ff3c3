// `safeshrink scan PATH [--format text|json|sarif] [-o FILE]`: static scan of model files (pickle,
// PyTorch zip, safetensors, GGUF, chat templates) without running them. Exit 3 when a finding is
// critical, 0 otherwise (input errors: 2). The scanners live in safeshrink/integrity.h.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "safeshrink/buffer.h"
#include "safeshrink/integrity.h"

namespace ss::cli {

RunFn add_scan(CLI::App& app) {
  auto* sub = app.add_subcommand("scan", "Static scan of model files: pickle imports, format bounds, chat templates");
  auto path = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("text");
  auto out = std::make_shared<std::string>();
  sub->add_option("path", *path, "file or folder")->required();
  sub->add_option("--format", *format, "text (default), json or sarif")->check(CLI::IsMember({"text", "json", "sarif"}));
  sub->add_option("-o,--output", *out, "write the report here (default: stdout)");
  return [=]() -> int {
    if (!sub->parsed()) return -1;
    auto r = scan_path(*path);
    if (!r.ok()) return fail(r.status());
    const std::string text = *format == "json" ? scan_report_json(*r) : *format == "sarif" ? scan_report_sarif(*r) : scan_report_text(*r);
    if (out->empty()) {
      std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
      Status s = write_file_atomic(*out, text.data(), text.size());
      if (!s.ok()) return fail(s);
    }
    return r->has_critical() ? EXIT_INTEGRITY : EXIT_OK;
  };
}

}  // namespace ss::cli

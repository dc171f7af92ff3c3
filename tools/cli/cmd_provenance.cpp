// `safeshrink provenance --base ORIG --derived FILE [--json] [--slack X]`: is FILE explainable as a
// compression (quantization, pruning) of ORIG? Prints a per-tensor table and CONSISTENT or
// TAMPERED_BEYOND_COMPRESSION_NOISE (exit 3). The check lives in safeshrink/integrity.h.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.h"
#include "safeshrink/formats.h"
#include "safeshrink/integrity.h"

namespace ss::cli {

RunFn add_provenance(CLI::App& app) {
  auto* sub = app.add_subcommand("provenance", "Check that a derived file is a compression of its base");
  auto base = std::make_shared<std::string>();
  auto derived = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto opts = std::make_shared<ProvenanceOptions>();
  sub->add_option("--base", *base, "original model (file or folder)")->required();
  sub->add_option("--derived", *derived, "compressed model to check")->required();
  sub->add_flag("--json", *as_json, "print JSON");
  sub->add_option("--slack", opts->step_slack, "factor on every per-weight bound (default 1)");
  sub->add_option("--max-outside", opts->max_outside_fraction, "fraction of weights a tensor may have outside (default 0)");
  return [=]() -> int {
    if (!sub->parsed()) return -1;
    auto b = open_model(*base);
    if (!b.ok()) return fail(b.status());
    auto d = open_model(*derived);
    if (!d.ok()) return fail(d.status());
    auto r = check_provenance(*b, *d, *opts);
    if (!r.ok()) return fail(r.status());
    const std::string text = *as_json ? provenance_report_json(*r) : provenance_report_text(*r);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return r->consistent ? EXIT_OK : EXIT_INTEGRITY;
  };
}

}  // namespace ss::cli

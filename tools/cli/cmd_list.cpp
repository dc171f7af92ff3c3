// `safeshrink list <kind>`: prints a registry (formats, dtypes, cpu, quantizers, pruners).
#include <cstdio>
#include <string>

#include "commands.h"
#include "safeshrink/adversarial.h"
#include "safeshrink/compress.h"
#include "safeshrink/cpu_features.h"
#include "safeshrink/dtype.h"
#include "safeshrink/eval.h"
#include "safeshrink/formats.h"

namespace ss::cli {

RunFn add_list(CLI::App& app) {
  auto* sub = app.add_subcommand("list", "List registered units: formats, dtypes, cpu, quantizers, pruners");
  auto kind = std::make_shared<std::string>();
  sub->add_option("kind", *kind, "what to list")->required()->check(CLI::IsMember({"formats", "dtypes", "cpu", "prompt-formats", "judges", "quantizers", "pruners", "attacks"}));
  return [sub, kind]() -> int {
    if (!sub->parsed()) return -1;
    if (*kind == "formats") {
      std::printf("%-12s %-5s %-5s %-22s %s\n", "name", "read", "write", "extensions", "summary");
      for (const auto& f : format_registry())
        std::printf("%-12s %-5s %-5s %-22s %s\n", f.name, f.can_read ? "yes" : "no", f.can_write ? "yes" : "no",
                    f.extensions, f.summary);
    } else if (*kind == "prompt-formats") {
      for (const auto& f : prompt_format_registry())
        std::printf("%-15s %-70s %s\n", f.name.c_str(), f.columns.c_str(), f.summary.c_str());
    } else if (*kind == "judges") {
      for (const auto& j : judge_registry()) std::printf("%-8s %s\n", j.name.c_str(), j.summary.c_str());
    } else if (*kind == "dtypes") {
      std::printf("%-6s %6s %6s %6s %6s %s\n", "name", "block", "bytes", "bpw", "ggml", "safetensors");
      for (int i = 0; i < static_cast<int>(DType::COUNT); ++i) {
        const DTypeInfo& d = dtype_info(static_cast<DType>(i));
        std::printf("%-6s %6lld %6lld %6.4g %6d %s\n", d.name, static_cast<long long>(d.block_size),
                    static_cast<long long>(d.type_size), dtype_bits_per_weight(d.dtype), d.ggml_type,
                    d.safetensors_name ? d.safetensors_name : "-");
      }
    } else if (*kind == "quantizers" || *kind == "pruners") {
      const auto& units = *kind == "quantizers" ? quantizer_registry() : pruner_registry();
      std::printf("%-18s %-60s %s\n", "name", "summary", "params");
      for (const auto& u : units) std::printf("%-18s %-60s %s\n", u.name.c_str(), u.summary.c_str(), u.params.dump().c_str());
      for (const auto& u : units) std::printf("  %s: %s\n", u.name.c_str(), u.reference.c_str());
    } else if (*kind == "attacks") {
      std::printf("%-10s %-60s %s\n", "name", "summary", "params");
      for (const auto& a : attack_registry()) std::printf("%-10s %-60s %s\n", a.name.c_str(), a.summary.c_str(), a.params.dump().c_str());
      for (const auto& a : attack_registry()) std::printf("  %s: %s\n", a.name.c_str(), a.reference.c_str());
    } else {
      std::printf("features: %s\nkernels:  %s\n", cpu_features().describe().c_str(), simd_level_name(simd_level()));
    }
    return EXIT_OK;
  };
}

}  // namespace ss::cli

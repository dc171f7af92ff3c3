// `safeshrink list <kind>`: prints a registry (formats, dtypes, cpu).
#include <cstdio>
#include <string>

#include "commands.h"
#include "safeshrink/cpu_features.h"
#include "safeshrink/dtype.h"
#include "safeshrink/formats.h"

namespace ss::cli {

RunFn add_list(CLI::App& app) {
  auto* sub = app.add_subcommand("list", "List registered units: formats, dtypes, cpu");
  auto kind = std::make_shared<std::string>();
  sub->add_option("kind", *kind, "what to list")->required()->check(CLI::IsMember({"formats", "dtypes", "cpu"}));
  return [sub, kind]() -> int {
    if (!sub->parsed()) return -1;
    if (*kind == "formats") {
      std::printf("%-12s %-5s %-5s %-22s %s\n", "name", "read", "write", "extensions", "summary");
      for (const auto& f : format_registry())
        std::printf("%-12s %-5s %-5s %-22s %s\n", f.name, f.can_read ? "yes" : "no", f.can_write ? "yes" : "no",
                    f.extensions, f.summary);
    } else if (*kind == "dtypes") {
      std::printf("%-6s %6s %6s %6s %6s %s\n", "name", "block", "bytes", "bpw", "ggml", "safetensors");
      for (int i = 0; i < static_cast<int>(DType::COUNT); ++i) {
        const DTypeInfo& d = dtype_info(static_cast<DType>(i));
        std::printf("%-6s %6lld %6lld %6.4g %6d %s\n", d.name, static_cast<long long>(d.block_size),
                    static_cast<long long>(d.type_size), dtype_bits_per_weight(d.dtype), d.ggml_type,
                    d.safetensors_name ? d.safetensors_name : "-");
      }
    } else {
      std::printf("features: %s\nkernels:  %s\n", cpu_features().describe().c_str(), simd_level_name(simd_level()));
    }
    return EXIT_OK;
  };
}

}  // namespace ss::cli

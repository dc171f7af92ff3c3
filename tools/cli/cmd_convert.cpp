// `safeshrink convert IN OUT [--to gguf|safetensors]`: rewrites a model in another container
// format without changing a single tensor byte (block-quantized tensors included; see formats.h).
#include <cstdio>
#include <string>

#include "commands.h"
#include "safeshrink/formats.h"

namespace ss::cli {

RunFn add_convert(CLI::App& app) {
  auto* sub = app.add_subcommand("convert", "Rewrite a model as GGUF or safetensors, tensors bit-exact");
  struct Opts {
    std::string in, out, to;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("input", o->in, "model file or HF folder")->required();
  sub->add_option("output", o->out, "output file")->required();
  sub->add_option("--to", o->to, "output format (default: from the output's extension)")
      ->check(CLI::IsMember({"gguf", "safetensors"}));
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto store = open_model(o->in);
    if (!store.ok()) return fail(store.status());
    Status st = save_model(*store, o->out, o->to);
    if (!st.ok()) return fail(st);
    std::fprintf(stderr, "wrote %s: %zu tensors, %llu tensor bytes\n", o->out.c_str(), store->tensors.size(),
                 static_cast<unsigned long long>(store->total_bytes()));
    return EXIT_OK;
  };
}

}  // namespace ss::cli

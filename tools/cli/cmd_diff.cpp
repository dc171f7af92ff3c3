// `safeshrink diff A B [--top K] [--json]`: per tensor relative error ||A-B||/||A||, max abs error,
// sparsity and bits/weight of B, the K most changed tensors and totals (diff_stores in
// compress_diff.h does the work; this file prints). A and B may be any readable formats and
// layouts (an HF original against a GGUF derivative).
#include <cstdio>
#include <string>

#include "commands.h"
#include "safeshrink/compress_diff.h"
#include "safeshrink/formats.h"

namespace ss::cli {

RunFn add_diff(CLI::App& app) {
  auto* sub = app.add_subcommand("diff", "Per-tensor error between two models (any formats)");
  struct Opts {
    std::string a, b;
    size_t top = 10;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("a", o->a, "reference model (the original)")->required();
  sub->add_option("b", o->b, "compared model (the compressed one)")->required();
  sub->add_option("--top", o->top, "how many of the most changed tensors to list (default 10)");
  sub->add_flag("--json", o->json, "print JSON instead of tables");
  return [sub, o]() -> int {
    if (!sub->parsed()) return -1;
    auto a = open_model(o->a);
    if (!a.ok()) return fail(a.status());
    auto b = open_model(o->b);
    if (!b.ok()) return fail(b.status());
    auto d = diff_stores(*a, *b);
    if (!d.ok()) return fail(d.status());
    if (o->json) {
      std::printf("%s\n", d->to_json(o->top).dump(2).c_str());
      return EXIT_OK;
    }
    std::printf("%-40s %-6s %-6s %11s %11s %8s %8s\n", "tensor", "A", "B", "rel_error", "max_abs", "sparse_B", "bpw_B");
    for (const TensorDiff& t : d->tensors)
      std::printf("%-40s %-6s %-6s %11.4e %11.4e %8.4f %8.4f\n", t.tensor.c_str(), t.a_type.c_str(), t.b_type.c_str(),
                  t.rel_error, t.max_abs_error, t.sparsity_b, t.bits_per_weight_b);
    std::printf("\ntop %zu by relative error:\n", o->top);
    for (const TensorDiff* t : d->top(o->top)) std::printf("  %-40s %11.4e\n", t->tensor.c_str(), t->rel_error);
    std::printf("\ntotal: %zu tensors, %lld elements, rel_error %.4e, max_abs %.4e, B %.4f bits/weight, "
                "B sparsity %.4f\n",
                d->tensors.size(), static_cast<long long>(d->compared_elements), d->total_rel_error, d->max_abs_error,
                d->bits_per_weight_b, d->sparsity_b);
    if (!d->only_in_a.empty()) std::printf("only in A: %zu tensors (first %s)\n", d->only_in_a.size(), d->only_in_a[0].c_str());
    if (!d->only_in_b.empty()) std::printf("only in B: %zu tensors (first %s)\n", d->only_in_b.size(), d->only_in_b[0].c_str());
    if (!d->shape_mismatch.empty())
      std::printf("shape differs: %zu tensors (first %s)\n", d->shape_mismatch.size(), d->shape_mismatch[0].c_str());
    return EXIT_OK;
  };
}

}  // namespace ss::cli

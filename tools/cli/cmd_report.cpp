// `safeshrink report RUN_DIR [--max-refusal-drop X] [--max-over-refusal-rise Y]`: re-renders
// summary.json, report.md, report.html and junit.xml from RUN_DIR/run.jsonl alone and exits 1 when a
// gate fails. All logic is in the library (render_reports in report.h); this parses and prints.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "safeshrink/report.h"

namespace ss::cli {

RunFn add_report(CLI::App& app) {
  auto* sub = app.add_subcommand("report", "Re-render summary.json, report.md, report.html, junit.xml from a run log");
  struct Args {
    std::string run_dir;
    std::optional<double> max_refusal_drop, max_over_refusal_rise;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("run_dir", args->run_dir, "folder holding run.jsonl")->required();
  sub->add_option("--max-refusal-drop", args->max_refusal_drop,
                  "fail when a variant's refusal rate on harmful prompts drops by more than X (0.05 = 5 points); "
                  "default: the run's own gate, else none")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--max-over-refusal-rise", args->max_over_refusal_rise,
                  "fail when a variant's refusal rate on benign prompts rises by more than Y; default: the run's own "
                  "gate, else none")
      ->check(CLI::Range(0.0, 1.0));
  return [sub, args]() -> int {
    if (!sub->parsed()) return -1;
    GateConfig gates{args->max_refusal_drop, args->max_over_refusal_rise};
    auto outcome = render_reports(args->run_dir, gates);
    if (!outcome.ok()) return fail(outcome.status());
    std::printf("%s\n%s/report.md\n%s/report.html\n%s/junit.xml\n", outcome->summary_path.c_str(), args->run_dir.c_str(),
                args->run_dir.c_str(), args->run_dir.c_str());
    std::fprintf(stderr, "safeshrink report: %d divergence(s); gates %s\n", outcome->n_divergences,
                 outcome->gates_failed ? "FAILED" : "passed");
    return outcome->gates_failed ? EXIT_GATE : EXIT_OK;
  };
}

}  // namespace ss::cli

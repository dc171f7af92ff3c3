// safeshrink: entry point. Global flags (--threads, --version), then one subcommand.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "safeshrink/cpu_features.h"
#include "safeshrink/thread_pool.h"

namespace ss::cli {

int exit_code_for(const Status& s) {
  switch (s.code()) {
    case StatusCode::OK: return EXIT_OK;
    case StatusCode::INTEGRITY: return EXIT_INTEGRITY;
    default: return EXIT_INPUT;
  }
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

int fail(const Status& s) {
  std::fprintf(stderr, "safeshrink: %s\n", s.to_string().c_str());
  return exit_code_for(s);
}

}  // namespace ss::cli

int main(int argc, char** argv) {
  using namespace ss::cli;
  CLI::App app{"safeshrink — security of compressed AI models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("safeshrink ") + SAFESHRINK_VERSION);
  int threads = 0;
  app.add_option("-t,--threads", threads, "worker threads (default: all cores)")
      ->envname("SAFESHRINK_THREADS")
      ->check(CLI::Range(0, 1024));

  std::vector<RunFn> runs;
  runs.push_back(add_inspect(app));
  runs.push_back(add_convert(app));
  runs.push_back(add_generate(app));
  runs.push_back(add_score(app));
  runs.push_back(add_tokenize(app));
  runs.push_back(add_list(app));
  runs.push_back(add_quantize(app));
  runs.push_back(add_diff(app));
  runs.push_back(add_prune(app));
  runs.push_back(add_eval(app));
  runs.push_back(add_compare(app));
  runs.push_back(add_audit(app));
  runs.push_back(add_judge_eval(app));
  runs.push_back(add_manifest(app));
  runs.push_back(add_scan(app));
  runs.push_back(add_provenance(app));
  runs.push_back(add_train_tokenizer(app));
  runs.push_back(add_report(app));
  runs.push_back(add_attribute(app));

  runs.push_back(add_train(app));
  runs.push_back(add_distill(app));
  runs.push_back(add_adversarial(app));
  runs.push_back(add_backdoor(app));
  runs.push_back(add_vision(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? EXIT_OK : EXIT_INPUT;
  }
  ss::set_default_threads(threads);
  for (auto& run : runs) {
    if (!run) continue;
    int rc = run();
    if (rc >= 0) return rc;
  }
  return EXIT_INPUT;
}

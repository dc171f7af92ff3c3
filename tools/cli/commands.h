// The CLI's subcommand table. Each subcommand lives in its own file and registers itself by one
// entry in kCommands (main.cpp): add_<name>(app) declares its flags and returns the function that
// runs it (it returns -1 when its subcommand was not chosen). The CLI holds no logic a library user would need: it parses, calls the library, prints,
// and maps Status codes to exit codes (0 ok, 1 gate failed, 2 usage/input error, 3 integrity).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "safeshrink/calibration.h"
#include "safeshrink/compress.h"
#include "safeshrink/status.h"

namespace ss::cli {

enum ExitCode { EXIT_OK = 0, EXIT_GATE = 1, EXIT_INPUT = 2, EXIT_INTEGRITY = 3 };

using RunFn = std::function<int()>;

// Prints "safeshrink: <status>" on stderr and returns the exit code for its StatusCode.
int fail(const Status& s);
int exit_code_for(const Status& s);
// "a, b,,c" -> {"a", "b", "c"}: a comma-separated flag value, spaces and empty items dropped (main.cpp).
std::vector<std::string> split_list(const std::string& s);

RunFn add_inspect(CLI::App& app);  // cmd_inspect.cpp
RunFn add_list(CLI::App& app);
RunFn add_convert(CLI::App& app);
RunFn add_generate(CLI::App& app);  // cmd_generate.cpp
RunFn add_score(CLI::App& app);
RunFn add_tokenize(CLI::App& app);
RunFn add_eval(CLI::App& app);        // cmd_eval.cpp: eval, compare, audit, judge-eval
RunFn add_compare(CLI::App& app);
RunFn add_audit(CLI::App& app);
RunFn add_judge_eval(CLI::App& app);
RunFn add_manifest(CLI::App& app);    // cmd_manifest.cpp: manifest verify keygen sign verify-signature
RunFn add_scan(CLI::App& app);        // cmd_scan.cpp
RunFn add_provenance(CLI::App& app);  // cmd_provenance.cpp
RunFn add_train_tokenizer(CLI::App& app);  // cmd_train_tokenizer.cpp
RunFn add_report(CLI::App& app);  // cmd_report.cpp
RunFn add_attribute(CLI::App& app);  // cmd_attribute.cpp
// CompressContext::calibrate for the --calib/--samples/--seq-len/--seed/--imatrix flags of `quantize`
// and `prune`: the statistics file when given (and no Hessian is needed), else a capture on the
// model in STORE, cached for the run; MISSING_HINT ends the error when neither is given.
using CalibrateFn = std::function<Result<std::shared_ptr<const Calibration>>(bool hessian)>;
CalibrateFn calibration_from_flags(std::shared_ptr<const TensorStore> store, CalibrationSpec spec,
                                   std::string imatrix, std::string missing_hint);  // cmd_quantize.cpp
RunFn add_train(CLI::App& app);   // cmd_train.cpp: train, distill
RunFn add_distill(CLI::App& app);
RunFn add_quantize(CLI::App& app);  // cmd_quantize.cpp
RunFn add_diff(CLI::App& app);      // cmd_diff.cpp
RunFn add_prune(CLI::App& app);     // cmd_prune.cpp
RunFn add_adversarial(CLI::App& app);  // cmd_adversarial.cpp
RunFn add_backdoor(CLI::App& app);     // cmd_backdoor.cpp: backdoor train|survival|fine-prune|report
RunFn add_vision(CLI::App& app);       // cmd_vision.cpp: vision train|eval

}  // namespace ss::cli

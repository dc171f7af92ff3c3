// Private to src/eval/backdoor/: what the survival study and fine-pruning share before their loops
// (load the model and hash its file, parse the trigger, load and trigger the test set) and at the
// start of their run log (refuse a folder holding another run; write start_run). Not a public API:
// library users call run_backdoor_survival / run_fine_pruning (backdoor.h).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "safeshrink/backdoor.h"
#include "safeshrink/run_log.h"

namespace ss::backdoor_detail {

struct RunSetup {
  VisionModel model;
  std::string model_sha256;
  TriggerSpec trigger;
  ImageSet test, triggered_test;  // (n_test, C, H, W)
  std::string data_dir;           // resolved
};

Result<RunSetup> prepare_run(const std::string& model_path, const std::string& trigger_spec, int32_t target,
                             const std::string& data_dir, int64_t test_limit);

// When out_dir/run.jsonl exists: its start_run must agree with `config` on `keys` (else
// INVALID_ARGUMENT naming the field and both values). Returns the log read (empty when none).
Result<BackdoorLog> check_resume(const std::string& out_dir, const nlohmann::json& config,
                                 const std::vector<std::string>& keys);

Status append_start_run(RunLogWriter& w, const nlohmann::json& config, uint64_t seed, bool resumed);

// Fraction of exact zeros over the conv and fc weights (not biases).
double weight_sparsity(const VisionModel& model);

}  // namespace ss::backdoor_detail

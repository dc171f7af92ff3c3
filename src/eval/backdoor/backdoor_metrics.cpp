// Backdoor metrics and training (contract: include/safeshrink/backdoor.h): clean accuracy over the
// full test set and attack success rate over the triggered test images whose true label is not the
// target, both with Wilson intervals and their counts; and training a backdoored model (poison,
// then train_vision). Not here: triggers (trigger.cpp), survival or defences, printing.
// To add a metric: a field in BackdoorCounts, computed in backdoor_counts from the predictions, so
// a recount from the run log stays possible.
#include <string>

#include "safeshrink/backdoor.h"

namespace ss {

Result<BackdoorCounts> backdoor_counts(const std::vector<int32_t>& clean_predictions,
                                       const std::vector<int32_t>& triggered_predictions,
                                       const std::vector<int32_t>& labels, int32_t target) {
  if (clean_predictions.size() != labels.size() || triggered_predictions.size() != labels.size())
    return invalid_argument("backdoor counts: expected " + std::to_string(labels.size()) +
                            " clean and triggered predictions, got " + std::to_string(clean_predictions.size()) +
                            " and " + std::to_string(triggered_predictions.size()));
  BackdoorCounts c;
  for (size_t i = 0; i < labels.size(); ++i) {
    c.clean_n += 1;
    c.clean_correct += clean_predictions[i] == labels[i];
    if (labels[i] == target) continue;
    c.asr_n += 1;
    c.asr_hits += triggered_predictions[i] == target;
  }
  SS_ASSIGN_OR_RETURN(c.clean_ci, wilson_interval(c.clean_correct, c.clean_n));
  SS_ASSIGN_OR_RETURN(c.asr_ci, wilson_interval(c.asr_hits, c.asr_n));
  return c;
}

Result<BackdoorEval> evaluate_backdoor(const VisionModel& model, const ImageSet& test, const ImageSet& triggered_test,
                                       int32_t target, ThreadPool* pool) {
  if (triggered_test.n != test.n || triggered_test.image_size() != test.image_size())
    return invalid_argument("evaluate_backdoor: the triggered test set must be the test set with the trigger applied (" +
                            std::to_string(test.n) + " vs " + std::to_string(triggered_test.n) + " images)");
  BackdoorEval e;
  SS_ASSIGN_OR_RETURN(e.clean_predictions, model.predict(test.pixels.data(), test.n, pool));
  SS_ASSIGN_OR_RETURN(e.triggered_predictions, model.predict(triggered_test.pixels.data(), triggered_test.n, pool));
  SS_ASSIGN_OR_RETURN(e.counts, backdoor_counts(e.clean_predictions, e.triggered_predictions, test.labels, target));
  return e;
}

Result<BackdoorTrainReport> train_backdoored(VisionModel& model, const ImageSet& train, const ImageSet& test,
                                             const TriggerSpec& trigger, const PoisonConfig& poison,
                                             const VisionTrainConfig& train_cfg, ThreadPool* pool) {
  SS_RETURN_IF_ERROR(poison.validate(model.config().n_classes));
  SS_ASSIGN_OR_RETURN(PoisonedSet poisoned, poison_training_set(train, trigger, poison));
  BackdoorTrainReport r;
  r.n_poisoned = static_cast<int64_t>(poisoned.chosen.size());
  r.n_train = poisoned.set.n;
  SS_ASSIGN_OR_RETURN(r.train, train_vision(model, poisoned.set, train_cfg, pool));
  SS_ASSIGN_OR_RETURN(ImageSet triggered, triggered_copy(test, trigger));
  SS_ASSIGN_OR_RETURN(r.eval, evaluate_backdoor(model, test, triggered, poison.target, pool));
  return r;
}

}  // namespace ss

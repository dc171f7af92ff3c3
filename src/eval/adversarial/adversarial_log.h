// Internal to src/eval/adversarial/: the entry-type names and JSON writers of the adversarial run
// log (the record structs and the reader are public in include/safeshrink/adversarial.h).
// Not a public header. To add an entry type: a constant and a writer here, a branch in the reader.
#pragma once

#include <nlohmann/json.hpp>

#include "safeshrink/adversarial.h"
#include "safeshrink/run_log.h"

namespace ss {

inline constexpr const char* kEntryAdvVariant = "adv_variant";
inline constexpr const char* kEntryAdvSubstitute = "adv_substitute";
inline constexpr const char* kEntryAdvResult = "adv_result";
inline constexpr const char* kEntryAdvBoundary = "adv_boundary";
inline constexpr const char* kEntryAdvMinEps = "adv_min_eps";

nlohmann::json adv_variant_json(const AdvVariantRecord& r);
nlohmann::json adv_substitute_json(const AdvSubstituteRecord& r);
nlohmann::json adv_result_json(const AdvResultRecord& r);
nlohmann::json adv_boundary_json(const AdvBoundaryRecord& r);
nlohmann::json adv_min_eps_json(const AdvMinEpsRecord& r);
// Two eps values name the same grid point (they come from the same decimal flags).
bool same_eps(double a, double b);

}  // namespace ss

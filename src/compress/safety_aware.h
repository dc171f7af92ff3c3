// Safety-aware quantization plans (the "-safety" spec suffix of compress_variant): internal to
// src/compress/. See safety_aware.cpp for the method. Not here: the sensitivity scores themselves
// (eval/attribution, reached through CompressContext::safety_sensitivity).
#pragma once

#include <string>
#include <vector>

#include "safeshrink/compress.h"

namespace ss {

// `plain_spec` names a quantizer spec ("int2-g32", "q2_k", "int4"); `overrides` are the unit's
// parameter overrides; budget_bits <= 0 means plain bits/weight + 0.5; rank: "restore" | "drop" | "sum".
Result<CompressOutput> compress_safety_aware(const TensorStore& in, const std::string& plain_spec,
                                             const CompressContext& ctx, const nlohmann::json& overrides,
                                             double budget_bits, const std::string& rank);

// The higher-precision specs a tensor of `plain_spec` may be raised to, cheapest first
// ("int2-g32" -> int3-g32, int4-g32, int8-g32, fp16; "q2_k" -> q3_k_m, q4_k_m, q5_k_m, q6_k, q8_0, fp16).
// Empty when the spec names no quantizer this knows how to raise.
std::vector<std::string> safety_upgrade_specs(const std::string& plain_spec);

}  // namespace ss

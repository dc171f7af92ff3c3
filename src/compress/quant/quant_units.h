// The quantizer rows of quantizer_registry() (registry.cpp lists them, one line each), made by the
// files of this folder. Internal to src/compress/. Not here: the building blocks callers use
// directly (compress.h: quant_tensor_int_rtn, quant_tensor_gguf, ...).
#pragma once

#include <string>

#include "safeshrink/compress.h"

namespace ss {

CompressorInfo quant_unit_float(DType type);   // "fp16", "bf16" (quant_float_int.cpp)
CompressorInfo quant_unit_int(int bits);       // "int8", "int4", "int3", "int2" (quant_float_int.cpp)
// "q8_0" ... "q6_k" and the presets "q4_k_m" ... (quant_gguf.cpp): llama-quantize's file types.
CompressorInfo quant_unit_gguf(const std::string& name);
// Names quant_unit_gguf accepts, in registry order.
const std::vector<std::string>& quant_gguf_unit_names();
CompressorInfo quant_unit_gptq();  // "gptq" (gptq.cpp)
CompressorInfo quant_unit_awq();   // "awq" (awq.cpp)
// Dense F32 tensor of a GroupQuantizedLinear's dequantized weights (gptq.cpp; used by awq.cpp).
struct GroupQuantizedLinear;
Result<Tensor> group_quantized_to_tensor(const std::string& name, const std::vector<int64_t>& shape,
                                         const GroupQuantizedLinear& q);

}  // namespace ss

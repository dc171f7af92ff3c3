// The one hand-written list of quantizers (quantizer_registry() in compress.h): `safeshrink list
// quantizers` prints it, compress_variant() resolves spec names against it, tests iterate it.
// To add a quantizer (GPTQ, AWQ, ...): write a function returning its CompressorInfo in its own
// file of this folder, declare it in quant_units.h, and add ONE line to the list below, in the
// section it belongs to. Nothing else registers itself.
#include "compress/quant/quant_units.h"

namespace ss {

const std::vector<CompressorInfo>& quantizer_registry() {
  static const std::vector<CompressorInfo> units = [] {
    std::vector<CompressorInfo> v;
    // dense floating point
    v.push_back(quant_unit_float(DType::F16));
    v.push_back(quant_unit_float(DType::BF16));
    // integer round-to-nearest (fake-quant dense)
    v.push_back(quant_unit_int(8));
    v.push_back(quant_unit_int(4));
    v.push_back(quant_unit_int(3));
    v.push_back(quant_unit_int(2));
    // calibrated integer quantizers (GPTQ, AWQ): one line each here
    v.push_back(quant_unit_gptq());
    v.push_back(quant_unit_awq());
    // GGUF block types and llama-quantize presets
    for (const std::string& name : quant_gguf_unit_names()) v.push_back(quant_unit_gguf(name));
    return v;
  }();
  return units;
}

}  // namespace ss

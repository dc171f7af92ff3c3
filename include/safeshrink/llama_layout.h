// Llama-family file layouts: the facts that differ between a GGUF file and a Hugging Face folder
// holding the same model — tensor names, the RoPE row order of q/k (see the top comment of
// src/formats/model_config.cpp), and how the architecture config is written (llama.* GGUF keys vs
// config.json). Converting a store between the two layouts is exact: rows are moved, never
// re-rounded, so block-quantized tensors convert too. Used by writers of trained models, `diff`
// and provenance (which must compare an HF original with a GGUF derivative).
// Not here: binding tensors for inference (model/llama.cpp), reading or writing files (formats/).
// To add a tensor kind: one row in kLlamaTensorNames (src/model/llama_layout.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "safeshrink/metadata.h"
#include "safeshrink/model_config.h"
#include "safeshrink/status.h"
#include "safeshrink/store.h"

namespace ss {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; GGUF names map to themselves;
// nullopt for a name that is not a Llama tensor.
std::optional<std::string> llama_gguf_name(std::string_view name);
// The reverse: GGUF (or HF) name -> HF name; nullopt when unknown.
std::optional<std::string> llama_hf_name(std::string_view name);

// Moves the rows of a q or k projection (rows = n_heads * head_dim, any dtype: whole rows move) or
// of its bias from one RoPE order to the other. NORM row 2i / 2i+1 of a head are NEOX rows i and
// i + head_dim/2. Returns a new heap tensor; the input is left alone.
Result<Tensor> permute_rope_rows(const Tensor& t, int64_t n_heads, RopeOrder from, RopeOrder to);

// The GGUF KVs (general.architecture, llama.* keys) that llama_config_from_gguf reads back as CFG.
Metadata llama_gguf_metadata(const LlamaConfig& cfg);
// An HF config.json (model_type llama/mistral/qwen2) that llama_config_from_hf_json reads back as CFG.
std::string llama_hf_config_json(const LlamaConfig& cfg);

// The same model in GGUF layout: GGUF names, q/k in the GGUF order of the architecture (NORM for
// llama/mistral, NEOX for qwen2), general.* / <arch>.* metadata from the config (tokenizer.* and
// other non-architecture KVs of IN are kept). IN may be GGUF or HF layout.
Result<TensorStore> llama_to_gguf_layout(const TensorStore& in);
// The same model in HF layout: HF names, q/k in NEOX order, meta "hf.config_json" set (a
// safetensors writer keeps it; write it as config.json next to the weights for a folder).
Result<TensorStore> llama_to_hf_layout(const TensorStore& in);

// Writes a Llama-family store to PATH in the layout its extension asks for: ".gguf" -> GGUF layout
// (write_gguf), ".safetensors" -> one file as the store is, anything else -> an HF folder
// (model.safetensors in HF layout, config.json, and the tokenizer.json / tokenizer_config.json of
// the folder the store was read from, when it was read from one). EXTRA is set in the metadata.
Status save_llama_model(const TensorStore& store, const std::string& path, const Metadata& extra = {});

}  // namespace ss

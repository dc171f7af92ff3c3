// TensorStore: the one currency between stages (see ARCHITECTURE.md). Named tensors plus metadata
// plus where they came from. Readers produce it, writers consume it, compressors map one to
// another, the model binds to it. Tensors keep their file's names (GGUF "blk.0.attn_q.weight" or
// HF "model.layers.0.self_attn.q_proj.weight"); mapping names is the model's job.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "safeshrink/metadata.h"
#include "safeshrink/tensor.h"

namespace ss {

struct TensorStore {
  std::string format;   // "gguf", "safetensors", ... (the registry's format name)
  std::string path;     // file or folder it was read from; empty when built in memory
  Metadata meta;        // GGUF KVs, or safetensors __metadata__ as strings, plus reader facts
  std::vector<Tensor> tensors;

  const Tensor* find(std::string_view name) const;
  // Appends, or errors if the name exists.
  Status add(Tensor t);
  uint64_t total_bytes() const;
  int64_t total_elements() const;

 private:
  mutable std::unordered_map<std::string, size_t> index_;
  void reindex() const;
};

}  // namespace ss

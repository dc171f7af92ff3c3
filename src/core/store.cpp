// TensorStore lookups.
#include "safeshrink/store.h"

namespace ss {

void TensorStore::reindex() const {
  index_.clear();
  for (size_t i = 0; i < tensors.size(); ++i) index_.emplace(tensors[i].name, i);
}

const Tensor* TensorStore::find(std::string_view name) const {
  if (index_.size() != tensors.size()) reindex();
  auto it = index_.find(std::string(name));
  if (it == index_.end() || it->second >= tensors.size() || tensors[it->second].name != name) {
    reindex();
    it = index_.find(std::string(name));
    if (it == index_.end()) return nullptr;
  }
  return &tensors[it->second];
}

Status TensorStore::add(Tensor t) {
  if (find(t.name) != nullptr) return invalid_argument("duplicate tensor name '" + t.name + "'");
  index_.emplace(t.name, tensors.size());
  tensors.push_back(std::move(t));
  return ok_status();
}

uint64_t TensorStore::total_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.nbytes;
  return n;
}

int64_t TensorStore::total_elements() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

}  // namespace ss

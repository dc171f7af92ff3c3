// The Tape of include/safeshrink/autograd.h: nodes in creation order, each with its value, its
// gradient (allocated when it first receives one) and the closure that propagates it. Not here: the
// ops (ops.cpp). To add a node kind, add an op; the tape itself has one mechanism.
#include <string>

#include "safeshrink/autograd.h"
#include "safeshrink/thread_pool.h"

namespace ss::ag {

template <class T>
Tape<T>::Tape(ThreadPool* pool) : pool_(pool) {}

template <class T>
ThreadPool& Tape<T>::pool() const {
  return pool_ ? *pool_ : default_pool();
}

template <class T>
Var Tape<T>::leaf(Shape shape, std::vector<T> value, bool requires_grad) {
  int64_t n = 1;
  for (int64_t d : shape) n = d < 0 ? -1 : n * d;
  if (!check({}, n == static_cast<int64_t>(value.size()), "leaf",
             "shape holds " + std::to_string(n) + " elements, value has " + std::to_string(value.size())))
    return Var{};
  Node node;
  node.shape = std::move(shape);
  node.value = std::move(value);
  node.requires_grad = requires_grad;
  nodes_.push_back(std::move(node));
  return Var{static_cast<int32_t>(nodes_.size() - 1)};
}

template <class T>
Var Tape<T>::push(Shape shape, std::vector<T> value, std::initializer_list<Var> inputs, Backward backward) {
  Node node;
  node.shape = std::move(shape);
  node.value = std::move(value);
  for (Var v : inputs)
    if (v.valid() && nodes_[v.id].requires_grad) node.requires_grad = true;
  if (node.requires_grad) node.backward = std::move(backward);
  nodes_.push_back(std::move(node));
  return Var{static_cast<int32_t>(nodes_.size() - 1)};
}

template <class T>
std::vector<T>& Tape<T>::grad_mut(Var v) {
  Node& n = nodes_[v.id];
  if (n.grad.empty()) n.grad.assign(n.value.size(), T(0));
  return n.grad;
}

template <class T>
bool Tape<T>::check(std::initializer_list<Var> inputs, bool ok, const char* op, const std::string& what) {
  if (!status_.ok()) return false;
  for (Var v : inputs)
    if (!v.valid() || v.id >= static_cast<int32_t>(nodes_.size())) {
      status_ = invalid_argument(std::string("autograd ") + op + ": an input is not a node of this tape");
      return false;
    }
  if (!ok) status_ = invalid_argument(std::string("autograd ") + op + ": " + what);
  return ok;
}

template <class T>
Status Tape<T>::backward(Var loss) {
  SS_RETURN_IF_ERROR(status_);
  if (backward_done_) return invalid_argument("autograd backward: this tape has already run backward");
  if (!loss.valid() || loss.id >= static_cast<int32_t>(nodes_.size()))
    return invalid_argument("autograd backward: the loss is not a node of this tape");
  if (nodes_[loss.id].value.size() != 1)
    return invalid_argument("autograd backward: the loss must have one element, it has " +
                            std::to_string(nodes_[loss.id].value.size()));
  backward_done_ = true;
  if (!nodes_[loss.id].requires_grad) return ok_status();  // nothing to differentiate
  grad_mut(loss)[0] = T(1);
  for (int32_t i = loss.id; i >= 0; --i) {
    Node& n = nodes_[i];
    if (n.requires_grad && n.backward && !n.grad.empty()) {
      Backward fn = std::move(n.backward);  // run once; frees what the closure captured
      fn(*this, Var{i});
    }
  }
  return ok_status();
}

template class Tape<float>;
template class Tape<double>;

}  // namespace ss::ag

// Reverse-mode automatic differentiation over dense row-major arrays: a Tape records each op's
// output and a closure that turns the output's gradient into its inputs' gradients; backward() runs
// the closures in reverse. Templated on the element type: float for training, double for the
// finite-difference checks of the tests (the same code path, so the check covers what runs).
// Errors are sticky: an op given bad shapes returns an invalid Var and records the first error in
// tape.status(); later ops on invalid Vars do nothing; backward() returns that status.
// Not here: parameters and optimizers (train.h), models (model/llama_train.cpp).
// To add an op: declare it below with its shapes, write forward and backward in src/autograd/ops.cpp
// (push() the output with a closure that adds to the inputs' grad_mut()), instantiate it for float
// and double there, and add it to the finite-difference and PyTorch tables of the tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "safeshrink/model_config.h"
#include "safeshrink/status.h"

namespace ss {
class ThreadPool;
}

namespace ss::ag {

using Shape = std::vector<int64_t>;

// A handle to a node of one tape (an index); invalid when id < 0 (after an error).
struct Var {
  int32_t id = -1;
  bool valid() const { return id >= 0; }
};

template <class T>
class Tape {
 public:
  // pool == nullptr: ss::default_pool().
  explicit Tape(ThreadPool* pool = nullptr);

  // A leaf. requires_grad: backward() fills its grad (weights, or an input image for an attack).
  Var leaf(Shape shape, std::vector<T> value, bool requires_grad);
  // Runs the recorded closures from `loss` (a one-element node) back to the leaves; d loss/d loss = 1.
  // May be called once per tape.
  Status backward(Var loss);

  const Shape& shape(Var v) const { return nodes_[v.id].shape; }
  int64_t numel(Var v) const { return static_cast<int64_t>(nodes_[v.id].value.size()); }
  const std::vector<T>& value(Var v) const { return nodes_[v.id].value; }
  // Gradient of a node that requires one (zeros until backward); empty otherwise.
  const std::vector<T>& grad(Var v) const { return nodes_[v.id].grad; }
  bool requires_grad(Var v) const { return v.valid() && nodes_[v.id].requires_grad; }
  const Status& status() const { return status_; }
  ThreadPool& pool() const;
  size_t size() const { return nodes_.size(); }

  bool training = true;  // dropout is the identity when false

  // ---- for op implementations ----
  // The closure reads out's gradient (grad(out)) and adds to its inputs' grad_mut().
  using Backward = std::function<void(Tape&, Var out)>;
  // Appends an output node; requires_grad when any input does (then `backward` is kept).
  Var push(Shape shape, std::vector<T> value, std::initializer_list<Var> inputs, Backward backward);
  // Gradient buffer of a node that requires one, zero-filled on first use.
  std::vector<T>& grad_mut(Var v);
  // Checks that all inputs are valid and the condition holds; else records the error and returns false.
  bool check(std::initializer_list<Var> inputs, bool ok, const char* op, const std::string& what);

 private:
  struct Node {
    Shape shape;
    std::vector<T> value, grad;
    bool requires_grad = false;
    Backward backward;
  };
  std::vector<Node> nodes_;
  ThreadPool* pool_;
  Status status_;
  bool backward_done_ = false;
};

enum class GeluKind { TANH, ERF };  // TANH: 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))); ERF: exact

// ---- ops; shapes in comments, "..." = any leading dimensions ----
// table (V, D), ids (n) in [0, V) -> (n, D)
template <class T> Var embedding(Tape<T>& t, Var table, const std::vector<int32_t>& ids);
// x (..., in), w (out, in), bias (out) or invalid Var -> (..., out) = x w^T + b. sgemm/dgemm.
template <class T> Var linear(Tape<T>& t, Var x, Var w, Var bias = {});
// a (M, K), b (K, N) -> (M, N)
template <class T> Var matmul(Tape<T>& t, Var a, Var b);
// Elementwise, same shapes.
template <class T> Var add(Tape<T>& t, Var a, Var b);
template <class T> Var mul(Tape<T>& t, Var a, Var b);
template <class T> Var scale(Tape<T>& t, Var a, double s);
// x (..., d), w (d) -> x / sqrt(mean(x^2) + eps) * w
template <class T> Var rms_norm(Tape<T>& t, Var x, Var w, double eps);
// x (B, S, H, hd), position of x[b, s] = s. inv_freq (hd/2). NORM rotates pairs (2i, 2i+1), NEOX
// rotates (i, i+hd/2); angle = s * inv_freq[i] (computed in double, as LlamaModel does).
template <class T> Var rope(Tape<T>& t, Var x, const std::vector<float>& inv_freq, RopeOrder order);
// Causal self-attention with GQA: q (B, S, H, hd), k and v (B, S, KV, hd), H % KV == 0, query
// head h reads kv head h / (H / KV). out (B, S, H, hd) = softmax(q k^T / sqrt(hd) + causal mask) v.
// Parallel over (batch, kv head) on the tape's pool. Keeps the probabilities (B, H, S, S).
template <class T> Var attention(Tape<T>& t, Var q, Var k, Var v);
// Over the last dimension.
template <class T> Var softmax(Tape<T>& t, Var x);
template <class T> Var log_softmax(Tape<T>& t, Var x);
template <class T> Var silu(Tape<T>& t, Var x);
// silu(gate) * up, same shapes.
template <class T> Var swiglu(Tape<T>& t, Var gate, Var up);
template <class T> Var relu(Tape<T>& t, Var x);
template <class T> Var gelu(Tape<T>& t, Var x, GeluKind kind);
// x (N, C, H, W), w (O, C, KH, KW), bias (O) or invalid -> (N, O, OH, OW),
// OH = (H + 2 pad - KH) / stride + 1. Zero padding. im2col + gemm.
template <class T> Var conv2d(Tape<T>& t, Var x, Var w, Var bias, int64_t stride, int64_t pad);
// x (N, C, H, W) -> (N, C, OH, OW), window k x k, no padding, OH = (H - k) / stride + 1.
// Max: the gradient goes to the first maximum of the window. Avg: divides by k*k.
template <class T> Var max_pool2d(Tape<T>& t, Var x, int64_t k, int64_t stride);
template <class T> Var avg_pool2d(Tape<T>& t, Var x, int64_t k, int64_t stride);
// Same elements, new shape; one dimension may be -1 (inferred). flatten = reshape(x, {N, -1}).
template <class T> Var reshape(Tape<T>& t, Var x, Shape shape);
// Zeroes each element with probability p (seeded ss::Rng) and scales the rest by 1/(1-p);
// the identity when !t.training or p == 0.
template <class T> Var dropout(Tape<T>& t, Var x, double p, uint64_t seed);
// sum(x * r) for a constant r of x's size -> (1). Turns any output into a scalar (tests, attacks).
template <class T> Var dot_const(Tape<T>& t, Var x, const std::vector<T>& r);
// mean((a - b)^2) over all elements -> (1). Gradients to both.
template <class T> Var mse(Tape<T>& t, Var a, Var b);

// Cross entropy of logits (N, V) against targets (N), -1 = ignored row, with per-row weights
// (N, or empty = all 1) -> (1):
//   sum_{i counted} w_i * (-log softmax(logits_i)[target_i]) / count,   count = #rows with target != -1
// With all weights 1 this is torch's F.cross_entropy(ignore_index=-1, reduction='mean'). (Weights
// scale a row's share absolutely; they do not renormalise, so weight 2 doubles that row's pull.)
// A batch with no counted row gives 0.
template <class T>
Var cross_entropy(Tape<T>& t, Var logits, const std::vector<int32_t>& targets, const std::vector<T>& weights);

// Knowledge-distillation loss of student logits (N, V) against constant teacher logits (N, V):
//   sum_{i counted} w_i * [ alpha T^2 KL(softmax(teacher_i/T) || softmax(student_i/T))
//                           + (1 - alpha) CE(student_i, target_i) ] / count
// with count and weights as in cross_entropy. Rows with target -1 get neither term. With all rows
// counted and weights 1, the KL term is torch's F.kl_div(F.log_softmax(s/T, -1), F.softmax(t/T, -1),
// reduction='batchmean') * T^2 on the (N, V) logits (batchmean divides by N = count).
template <class T>
Var kd_loss(Tape<T>& t, Var student, const std::vector<T>& teacher, const std::vector<int32_t>& targets,
            const std::vector<T>& weights, double alpha, double temperature);

}  // namespace ss::ag

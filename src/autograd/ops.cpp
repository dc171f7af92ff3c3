// The ops of include/safeshrink/autograd.h: each computes its output, then pushes it with a closure
// that adds the input gradients (the math of each backward is in a comment above it). Products go
// through blas_gemm (sgemm/dgemm); row-independent ops run over the tape's pool. Not here: the tape
// (tape.cpp), optimizers (optimizers.cpp), models. To add an op: see the header's comment.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>

#include "autograd/blas_gemm.h"
#include "safeshrink/autograd.h"
#include "safeshrink/rng.h"
#include "safeshrink/thread_pool.h"

namespace ss::ag {
namespace {

std::string shape_text(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t last_dim(const Shape& s) { return s.empty() ? 1 : s.back(); }

template <class T>
int64_t rows_of(const Tape<T>& t, Var x) {
  const int64_t d = last_dim(t.shape(x));
  return d == 0 ? 0 : t.numel(x) / d;
}

// Runs fn(begin, end) over [0, n) on the pool when the work is big enough to share.
template <class T, class Fn>
void over_rows(const Tape<T>& t, int64_t n, int64_t work_per_row, Fn fn) {
  if (n * work_per_row < (1 << 15) || t.pool().size() <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  t.pool().parallel_for(n, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Row-wise log-sum-exp helpers: writes softmax(x / temp) into p, returns log of the normaliser.
template <class T>
T softmax_row(const T* x, T* p, int64_t n, T inv_temp) {
  T mx = -INFINITY;
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[j] * inv_temp);
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    p[j] = std::exp(x[j] * inv_temp - mx);
    sum += p[j];
  }
  const T inv = T(1) / sum;
  for (int64_t j = 0; j < n; ++j) p[j] *= inv;
  return mx + std::log(sum);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// embedding: y[r] = table[ids[r]];  dtable[ids[r]] += dy[r]
template <class T>
Var embedding(Tape<T>& t, Var table, const std::vector<int32_t>& ids) {
  if (!t.check({table}, t.shape(table).size() == 2, "embedding", "table must be (V, D), got " + shape_text(t.shape(table))))
    return {};
  const int64_t V = t.shape(table)[0], D = t.shape(table)[1], n = static_cast<int64_t>(ids.size());
  for (int32_t id : ids)
    if (!t.check({table}, id >= 0 && id < V, "embedding", "id " + std::to_string(id) + " outside [0, " + std::to_string(V) + ")"))
      return {};
  std::vector<T> y(n * D);  // (n, D)
  const T* w = t.value(table).data();
  for (int64_t r = 0; r < n; ++r) std::copy(w + ids[r] * D, w + (ids[r] + 1) * D, y.begin() + r * D);
  return t.push({n, D}, std::move(y), {table}, [table, ids, D](Tape<T>& t, Var out) {
    const T* gy = t.grad(out).data();
    T* gw = t.grad_mut(table).data();
    for (size_t r = 0; r < ids.size(); ++r)
      for (int64_t j = 0; j < D; ++j) gw[ids[r] * D + j] += gy[r * D + j];
  });
}

// ---------------------------------------------------------------------------------------------
// linear: y (n, out) = x (n, in) w^T + b.  dx += dy w;  dw += dy^T x;  db += sum_rows dy
template <class T>
Var linear(Tape<T>& t, Var x, Var w, Var bias) {
  if (!t.check({x, w}, t.shape(w).size() == 2 && !t.shape(x).empty() && t.shape(x).back() == t.shape(w)[1], "linear",
               "x " + shape_text(t.shape(x)) + " does not match w " + shape_text(t.shape(w)) + " (out, in)"))
    return {};
  const int64_t out = t.shape(w)[0], in = t.shape(w)[1], n = rows_of(t, x);
  if (bias.valid() && !t.check({bias}, t.numel(bias) == out, "linear", "bias must have " + std::to_string(out) + " elements"))
    return {};
  std::vector<T> y(n * out);  // (n, out)
  gemm<T>(t.pool(), false, true, n, out, in, T(1), t.value(x).data(), in, t.value(w).data(), in, T(0), y.data(), out);
  if (bias.valid()) {
    const T* b = t.value(bias).data();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out; ++j) y[r * out + j] += b[j];
  }
  Shape shape = t.shape(x);
  shape.back() = out;
  return t.push(std::move(shape), std::move(y), {x, w, bias}, [x, w, bias, n, in, out](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    if (t.requires_grad(x))
      gemm<T>(t.pool(), false, false, n, in, out, T(1), gy, out, t.value(w).data(), in, T(1), t.grad_mut(x).data(), in);
    if (t.requires_grad(w))
      gemm<T>(t.pool(), true, false, out, in, n, T(1), gy, out, t.value(x).data(), in, T(1), t.grad_mut(w).data(), in);
    if (t.requires_grad(bias)) {
      T* gb = t.grad_mut(bias).data();
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < out; ++j) gb[j] += gy[r * out + j];
    }
  });
}

// matmul: c (M, N) = a (M, K) b (K, N).  da += dc b^T;  db += a^T dc
template <class T>
Var matmul(Tape<T>& t, Var a, Var b) {
  if (!t.check({a, b}, t.shape(a).size() == 2 && t.shape(b).size() == 2 && t.shape(a)[1] == t.shape(b)[0], "matmul",
               "shapes " + shape_text(t.shape(a)) + " x " + shape_text(t.shape(b)) + " do not chain"))
    return {};
  const int64_t M = t.shape(a)[0], K = t.shape(a)[1], N = t.shape(b)[1];
  std::vector<T> c(M * N);
  gemm<T>(t.pool(), false, false, M, N, K, T(1), t.value(a).data(), K, t.value(b).data(), N, T(0), c.data(), N);
  return t.push({M, N}, std::move(c), {a, b}, [a, b, M, N, K](Tape<T>& t, Var o) {
    const T* gc = t.grad(o).data();
    if (t.requires_grad(a))
      gemm<T>(t.pool(), false, true, M, K, N, T(1), gc, N, t.value(b).data(), N, T(1), t.grad_mut(a).data(), K);
    if (t.requires_grad(b))
      gemm<T>(t.pool(), true, false, K, N, M, T(1), t.value(a).data(), K, gc, N, T(1), t.grad_mut(b).data(), N);
  });
}

// ---------------------------------------------------------------------------------------------
// add: da += dy, db += dy.  mul: da += dy b, db += dy a.  scale: da += s dy
template <class T>
Var add(Tape<T>& t, Var a, Var b) {
  if (!t.check({a, b}, t.shape(a) == t.shape(b), "add", shape_text(t.shape(a)) + " vs " + shape_text(t.shape(b))))
    return {};
  std::vector<T> y(t.value(a));
  const T* vb = t.value(b).data();
  for (size_t i = 0; i < y.size(); ++i) y[i] += vb[i];
  return t.push(t.shape(a), std::move(y), {a, b}, [a, b](Tape<T>& t, Var o) {
    const std::vector<T>& gy = t.grad(o);
    for (Var v : {a, b})
      if (t.requires_grad(v)) {
        T* g = t.grad_mut(v).data();
        for (size_t i = 0; i < gy.size(); ++i) g[i] += gy[i];
      }
  });
}

template <class T>
Var mul(Tape<T>& t, Var a, Var b) {
  if (!t.check({a, b}, t.shape(a) == t.shape(b), "mul", shape_text(t.shape(a)) + " vs " + shape_text(t.shape(b))))
    return {};
  std::vector<T> y(t.value(a));
  const T* vb = t.value(b).data();
  for (size_t i = 0; i < y.size(); ++i) y[i] *= vb[i];
  return t.push(t.shape(a), std::move(y), {a, b}, [a, b](Tape<T>& t, Var o) {
    const std::vector<T>& gy = t.grad(o);
    if (t.requires_grad(a)) {
      T* g = t.grad_mut(a).data();
      const T* vb = t.value(b).data();
      for (size_t i = 0; i < gy.size(); ++i) g[i] += gy[i] * vb[i];
    }
    if (t.requires_grad(b)) {
      T* g = t.grad_mut(b).data();
      const T* va = t.value(a).data();
      for (size_t i = 0; i < gy.size(); ++i) g[i] += gy[i] * va[i];
    }
  });
}

template <class T>
Var scale(Tape<T>& t, Var a, double s) {
  if (!t.check({a}, true, "scale", "")) return {};
  std::vector<T> y(t.value(a));
  for (T& v : y) v *= static_cast<T>(s);
  return t.push(t.shape(a), std::move(y), {a}, [a, s](Tape<T>& t, Var o) {
    const std::vector<T>& gy = t.grad(o);
    T* g = t.grad_mut(a).data();
    for (size_t i = 0; i < gy.size(); ++i) g[i] += static_cast<T>(s) * gy[i];
  });
}

// ---------------------------------------------------------------------------------------------
// rms_norm: y = x r w, r = (mean(x^2) + eps)^-1/2.
//   dw += dy x r;   dx = r (w dy) - x r^3 / d * sum_j (w_j dy_j x_j)
template <class T>
Var rms_norm(Tape<T>& t, Var x, Var w, double eps) {
  if (!t.check({x, w}, t.numel(w) == last_dim(t.shape(x)), "rms_norm",
               "weight has " + std::to_string(t.numel(w)) + " elements, x is " + shape_text(t.shape(x))))
    return {};
  const int64_t d = t.numel(w), n = rows_of(t, x);
  std::vector<T> y(n * d);
  auto r = std::make_shared<std::vector<T>>(n);  // (n) the inverse rms of each row
  const T* vx = t.value(x).data();
  const T* vw = t.value(w).data();
  over_rows(t, n, d, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(vx[i * d + j]) * vx[i * d + j];
      const T ri = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
      (*r)[i] = ri;
      for (int64_t j = 0; j < d; ++j) y[i * d + j] = vx[i * d + j] * ri * vw[j];
    }
  });
  return t.push(t.shape(x), std::move(y), {x, w}, [x, w, r, n, d](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    const T* vx = t.value(x).data();
    const T* vw = t.value(w).data();
    if (t.requires_grad(w)) {
      T* gw = t.grad_mut(w).data();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) gw[j] += gy[i * d + j] * vx[i * d + j] * (*r)[i];
    }
    if (t.requires_grad(x)) {
      T* gx = t.grad_mut(x).data();
      over_rows(t, n, d, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T ri = (*r)[i];
          T dot = 0;
          for (int64_t j = 0; j < d; ++j) dot += vw[j] * gy[i * d + j] * vx[i * d + j];
          const T c = dot * ri * ri * ri / static_cast<T>(d);
          for (int64_t j = 0; j < d; ++j) gx[i * d + j] += ri * vw[j] * gy[i * d + j] - vx[i * d + j] * c;
        }
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// rope: (y_a, y_b) = (x_a c - x_b s, x_a s + x_b c);  the transpose rotates back:
//   dx_a = dy_a c + dy_b s,  dx_b = -dy_a s + dy_b c
template <class T>
Var rope(Tape<T>& t, Var x, const std::vector<float>& inv_freq, RopeOrder order) {
  if (!t.check({x}, t.shape(x).size() == 4 && t.shape(x)[3] % 2 == 0 &&
                        static_cast<int64_t>(inv_freq.size()) == t.shape(x)[3] / 2,
               "rope", "x must be (B, S, H, hd) with hd even and hd/2 = " + std::to_string(inv_freq.size()) +
                           " frequencies, got " + shape_text(t.shape(x))))
    return {};
  const Shape& s = t.shape(x);
  const int64_t B = s[0], S = s[1], H = s[2], hd = s[3], half = hd / 2;
  auto cs = std::make_shared<std::vector<T>>(S * half * 2);  // (S, half, {cos, sin})
  for (int64_t p = 0; p < S; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      (*cs)[(p * half + i) * 2] = static_cast<T>(std::cos(angle));
      (*cs)[(p * half + i) * 2 + 1] = static_cast<T>(std::sin(angle));
    }
  auto rotate = [=](const T* in, T* out, T sign) {  // sign -1: the inverse rotation
    for (int64_t bsh = 0; bsh < B * S * H; ++bsh) {
      const int64_t p = (bsh / H) % S;
      const T* v = in + bsh * hd;
      T* w = out + bsh * hd;
      for (int64_t i = 0; i < half; ++i) {
        const T c = (*cs)[(p * half + i) * 2], sn = sign * (*cs)[(p * half + i) * 2 + 1];
        const int64_t a = order == RopeOrder::NORM ? 2 * i : i;
        const int64_t b = order == RopeOrder::NORM ? 2 * i + 1 : i + half;
        const T x0 = v[a], x1 = v[b];
        w[a] += x0 * c - x1 * sn;
        w[b] += x0 * sn + x1 * c;
      }
    }
  };
  std::vector<T> y(t.numel(x), T(0));
  rotate(t.value(x).data(), y.data(), T(1));
  return t.push(s, std::move(y), {x}, [x, rotate](Tape<T>& t, Var o) {
    rotate(t.grad(o).data(), t.grad_mut(x).data(), T(-1));
  });
}

// ---------------------------------------------------------------------------------------------
// attention, per (batch b, query head h), with Q (S, hd), K and V (S, hd) of kv head h / group:
//   A = Q K^T * scale + causal mask,  P = softmax_rows(A),  O = P V
// backward: dP = dO V^T;  dV += P^T dO;  dA = P * (dP - rowsum(P * dP));  dQ += scale dA K;
//   dK += scale dA^T Q.  Parallel over (b, kv head) so no two threads add to the same dK/dV rows.
template <class T>
Var attention(Tape<T>& t, Var q, Var k, Var v) {
  const Shape &sq = t.shape(q), &sk = t.shape(k);
  if (!t.check({q, k, v},
               sq.size() == 4 && sk.size() == 4 && t.shape(v) == sk && sq[0] == sk[0] && sq[1] == sk[1] &&
                   sq[3] == sk[3] && sk[2] > 0 && sq[2] % sk[2] == 0,
               "attention", "q " + shape_text(sq) + " must be (B, S, H, hd) and k, v (B, S, KV, hd) with H % KV == 0, got k " +
                                shape_text(sk) + ", v " + shape_text(t.shape(v))))
    return {};
  const int64_t B = sq[0], S = sq[1], H = sq[2], hd = sq[3], KV = sk[2], group = H / KV;
  const int64_t ldq = H * hd, ldk = KV * hd;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
  auto probs = std::make_shared<std::vector<T>>(B * H * S * S, T(0));  // (B, H, S, S), zero above the diagonal
  std::vector<T> y(B * S * H * hd);                                    // (B, S, H, hd)
  const T* vq = t.value(q).data();
  const T* vk = t.value(k).data();
  const T* vv = t.value(v).data();
  {
    SingleThreadedBlasScope single;
    t.pool().parallel_for(B * H, [&](int64_t begin, int64_t end, int) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t b = bh / H, h = bh % H, g = h / group;
        T* P = probs->data() + bh * S * S;
        const T* Q = vq + b * S * ldq + h * hd;
        const T* K = vk + b * S * ldk + g * hd;
        const T* V = vv + b * S * ldk + g * hd;
        gemm_serial<T>(false, true, S, S, hd, scale, Q, ldq, K, ldk, T(0), P, S);
        for (int64_t i = 0; i < S; ++i) {
          T* row = P + i * S;
          softmax_row(row, row, i + 1, T(1));
          std::fill(row + i + 1, row + S, T(0));
        }
        gemm_serial<T>(false, false, S, hd, S, T(1), P, S, V, ldk, T(0), y.data() + b * S * ldq + h * hd, ldq);
      }
    });
  }
  return t.push(sq, std::move(y), {q, k, v}, [=](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    T* gq = t.requires_grad(q) ? t.grad_mut(q).data() : nullptr;
    T* gk = t.requires_grad(k) ? t.grad_mut(k).data() : nullptr;
    T* gv = t.requires_grad(v) ? t.grad_mut(v).data() : nullptr;
    const T* vq = t.value(q).data();
    const T* vk = t.value(k).data();
    const T* vv = t.value(v).data();
    SingleThreadedBlasScope single;
    t.pool().parallel_for(B * KV, [&](int64_t begin, int64_t end, int) {
      std::vector<T> dA(S * S);  // (S, S)
      for (int64_t bg = begin; bg < end; ++bg) {
        const int64_t b = bg / KV, g = bg % KV;
        const T* K = vk + b * S * ldk + g * hd;
        const T* V = vv + b * S * ldk + g * hd;
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const T* P = probs->data() + (b * H + h) * S * S;
          const T* Q = vq + b * S * ldq + h * hd;
          const T* dO = gy + b * S * ldq + h * hd;
          if (gv) gemm_serial<T>(true, false, S, hd, S, T(1), P, S, dO, ldq, T(1), gv + b * S * ldk + g * hd, ldk);
          if (!gq && !gk) continue;
          gemm_serial<T>(false, true, S, S, hd, T(1), dO, ldq, V, ldk, T(0), dA.data(), S);  // dP
          for (int64_t i = 0; i < S; ++i) {
            T* row = dA.data() + i * S;
            const T* p = P + i * S;
            T dot = 0;
            for (int64_t j = 0; j <= i; ++j) dot += p[j] * row[j];
            for (int64_t j = 0; j <= i; ++j) row[j] = p[j] * (row[j] - dot);
            std::fill(row + i + 1, row + S, T(0));
          }
          if (gq) gemm_serial<T>(false, false, S, hd, S, scale, dA.data(), S, K, ldk, T(1), gq + b * S * ldq + h * hd, ldq);
          if (gk) gemm_serial<T>(true, false, S, hd, S, scale, dA.data(), S, Q, ldq, T(1), gk + b * S * ldk + g * hd, ldk);
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// softmax: dx = y (dy - sum(dy y)).  log_softmax: dx = dy - softmax(x) sum(dy)
template <class T>
Var softmax(Tape<T>& t, Var x) {
  if (!t.check({x}, true, "softmax", "")) return {};
  const int64_t d = last_dim(t.shape(x)), n = rows_of(t, x);
  std::vector<T> y(t.numel(x));
  const T* vx = t.value(x).data();
  for (int64_t i = 0; i < n; ++i) softmax_row(vx + i * d, y.data() + i * d, d, T(1));
  return t.push(t.shape(x), std::move(y), {x}, [x, n, d](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    const T* vy = t.value(o).data();
    T* gx = t.grad_mut(x).data();
    for (int64_t i = 0; i < n; ++i) {
      T dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += gy[i * d + j] * vy[i * d + j];
      for (int64_t j = 0; j < d; ++j) gx[i * d + j] += vy[i * d + j] * (gy[i * d + j] - dot);
    }
  });
}

template <class T>
Var log_softmax(Tape<T>& t, Var x) {
  if (!t.check({x}, true, "log_softmax", "")) return {};
  const int64_t d = last_dim(t.shape(x)), n = rows_of(t, x);
  std::vector<T> y(t.numel(x));
  const T* vx = t.value(x).data();
  for (int64_t i = 0; i < n; ++i) {
    const T lse = softmax_row(vx + i * d, y.data() + i * d, d, T(1));
    for (int64_t j = 0; j < d; ++j) y[i * d + j] = vx[i * d + j] - lse;
  }
  return t.push(t.shape(x), std::move(y), {x}, [x, n, d](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    const T* vy = t.value(o).data();
    T* gx = t.grad_mut(x).data();
    for (int64_t i = 0; i < n; ++i) {
      T sum = 0;
      for (int64_t j = 0; j < d; ++j) sum += gy[i * d + j];
      for (int64_t j = 0; j < d; ++j) gx[i * d + j] += gy[i * d + j] - std::exp(vy[i * d + j]) * sum;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Pointwise activations: y = f(x), dx += f'(x) dy.
namespace {
template <class T, class F, class DF>
Var pointwise(Tape<T>& t, Var x, const char* name, F f, DF df) {
  if (!t.check({x}, true, name, "")) return {};
  std::vector<T> y(t.numel(x));
  const T* vx = t.value(x).data();
  for (size_t i = 0; i < y.size(); ++i) y[i] = f(vx[i]);
  return t.push(t.shape(x), std::move(y), {x}, [x, df](Tape<T>& t, Var o) {
    const std::vector<T>& gy = t.grad(o);
    const T* vx = t.value(x).data();
    T* gx = t.grad_mut(x).data();
    for (size_t i = 0; i < gy.size(); ++i) gx[i] += df(vx[i]) * gy[i];
  });
}
}  // namespace

// silu(x) = x sigmoid(x);  silu' = s (1 + x (1 - s))
template <class T>
Var silu(Tape<T>& t, Var x) {
  return pointwise(t, x, "silu", [](T v) { return v * sigmoid(v); },
                   [](T v) { const T s = sigmoid(v); return s * (T(1) + v * (T(1) - s)); });
}

template <class T>
Var relu(Tape<T>& t, Var x) {
  return pointwise(t, x, "relu", [](T v) { return v > T(0) ? v : T(0); }, [](T v) { return v > T(0) ? T(1) : T(0); });
}

// tanh form: u = sqrt(2/pi) (x + 0.044715 x^3), y = x (1 + tanh u) / 2,
//   y' = (1 + tanh u) / 2 + x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2
// erf form:  y = x (1 + erf(x / sqrt 2)) / 2,  y' = (1 + erf(x / sqrt 2)) / 2 + x exp(-x^2/2) / sqrt(2 pi)
template <class T>
Var gelu(Tape<T>& t, Var x, GeluKind kind) {
  constexpr double kSqrt2OverPi = 0.7978845608028654, kInvSqrt2 = 0.7071067811865476, kInvSqrt2Pi = 0.3989422804014327;
  if (kind == GeluKind::TANH)
    return pointwise(t, x, "gelu",
        [](T v) { return T(0.5) * v * (T(1) + std::tanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v))); },
        [](T v) {
          const T th = std::tanh(T(kSqrt2OverPi) * (v + T(0.044715) * v * v * v));
          return T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * v * v);
        });
  return pointwise(t, x, "gelu", [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(kInvSqrt2))); },
                   [](T v) { return T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2))) + v * std::exp(T(-0.5) * v * v) * T(kInvSqrt2Pi); });
}

// swiglu: y = silu(g) u;  dg += silu'(g) u dy;  du += silu(g) dy
template <class T>
Var swiglu(Tape<T>& t, Var gate, Var up) {
  if (!t.check({gate, up}, t.shape(gate) == t.shape(up), "swiglu",
               shape_text(t.shape(gate)) + " vs " + shape_text(t.shape(up))))
    return {};
  const int64_t n = t.numel(gate);
  std::vector<T> y(n);
  const T* g = t.value(gate).data();
  const T* u = t.value(up).data();
  over_rows(t, n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = g[i] * sigmoid(g[i]) * u[i];
  });
  return t.push(t.shape(gate), std::move(y), {gate, up}, [gate, up, n](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    const T* g = t.value(gate).data();
    const T* u = t.value(up).data();
    T* gg = t.requires_grad(gate) ? t.grad_mut(gate).data() : nullptr;
    T* gu = t.requires_grad(up) ? t.grad_mut(up).data() : nullptr;
    over_rows(t, n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T s = sigmoid(g[i]);
        if (gg) gg[i] += s * (T(1) + g[i] * (T(1) - s)) * u[i] * gy[i];
        if (gu) gu[i] += g[i] * s * gy[i];
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// conv2d per image n: cols (C KH KW, OH OW) = im2col(x_n);  y_n (O, OH OW) = W (O, C KH KW) cols + b
//   dW += dy_n cols^T;  dcols = W^T dy_n, added back into dx_n by col2im;  db += sum dy_n
namespace {
struct ConvGeom {
  int64_t N, C, H, W, O, KH, KW, OH, OW, stride, pad;
  int64_t ckk() const { return C * KH * KW; }
  int64_t ohw() const { return OH * OW; }
};
// to_cols: cols[(c, ky, kx), (oy, ox)] = x[c, oy*s - p + ky, ox*s - p + kx] (0 outside).
// !to_cols: the transpose, x[...] += cols[...].
template <class T>
void im2col(const ConvGeom& g, T* x, T* cols, bool to_cols) {
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t ky = 0; ky < g.KH; ++ky)
      for (int64_t kx = 0; kx < g.KW; ++kx) {
        T* row = cols + ((c * g.KH + ky) * g.KW + kx) * g.ohw();
        for (int64_t oy = 0; oy < g.OH; ++oy) {
          const int64_t iy = oy * g.stride - g.pad + ky;
          for (int64_t ox = 0; ox < g.OW; ++ox) {
            const int64_t ix = ox * g.stride - g.pad + kx;
            const bool inside = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
            if (to_cols)
              row[oy * g.OW + ox] = inside ? x[(c * g.H + iy) * g.W + ix] : T(0);
            else if (inside)
              x[(c * g.H + iy) * g.W + ix] += row[oy * g.OW + ox];
          }
        }
      }
}
}  // namespace

template <class T>
Var conv2d(Tape<T>& t, Var x, Var w, Var bias, int64_t stride, int64_t pad) {
  const Shape &sx = t.shape(x), &sw = t.shape(w);
  if (!t.check({x, w}, sx.size() == 4 && sw.size() == 4 && sx[1] == sw[1] && stride > 0 && pad >= 0, "conv2d",
               "x " + shape_text(sx) + " must be (N, C, H, W) and w " + shape_text(sw) +
                   " (O, C, KH, KW), stride > 0, pad >= 0"))
    return {};
  ConvGeom g{sx[0], sx[1], sx[2], sx[3], sw[0], sw[2], sw[3], 0, 0, stride, pad};
  g.OH = (g.H + 2 * pad - g.KH) / stride + 1;
  g.OW = (g.W + 2 * pad - g.KW) / stride + 1;
  if (!t.check({x}, g.H + 2 * pad >= g.KH && g.W + 2 * pad >= g.KW, "conv2d", "kernel larger than the padded input"))
    return {};
  if (bias.valid() && !t.check({bias}, t.numel(bias) == g.O, "conv2d", "bias must have O elements")) return {};
  std::vector<T> y(g.N * g.O * g.ohw());  // (N, O, OH, OW)
  std::vector<T> cols(g.ckk() * g.ohw());
  for (int64_t n = 0; n < g.N; ++n) {
    im2col(g, const_cast<T*>(t.value(x).data()) + n * g.C * g.H * g.W, cols.data(), true);
    T* yn = y.data() + n * g.O * g.ohw();
    gemm<T>(t.pool(), false, false, g.O, g.ohw(), g.ckk(), T(1), t.value(w).data(), g.ckk(), cols.data(), g.ohw(), T(0), yn,
            g.ohw());
    if (bias.valid())
      for (int64_t o = 0; o < g.O; ++o)
        for (int64_t i = 0; i < g.ohw(); ++i) yn[o * g.ohw() + i] += t.value(bias)[o];
  }
  return t.push({g.N, g.O, g.OH, g.OW}, std::move(y), {x, w, bias}, [x, w, bias, g](Tape<T>& t, Var o) {
    const T* gy = t.grad(o).data();
    std::vector<T> cols(g.ckk() * g.ohw());
    for (int64_t n = 0; n < g.N; ++n) {
      const T* gyn = gy + n * g.O * g.ohw();
      if (t.requires_grad(w)) {
        im2col(g, const_cast<T*>(t.value(x).data()) + n * g.C * g.H * g.W, cols.data(), true);
        gemm<T>(t.pool(), false, true, g.O, g.ckk(), g.ohw(), T(1), gyn, g.ohw(), cols.data(), g.ohw(), T(1),
                t.grad_mut(w).data(), g.ckk());
      }
      if (t.requires_grad(x)) {
        gemm<T>(t.pool(), true, false, g.ckk(), g.ohw(), g.O, T(1), t.value(w).data(), g.ckk(), gyn, g.ohw(), T(0),
                cols.data(), g.ohw());
        im2col(g, t.grad_mut(x).data() + n * g.C * g.H * g.W, cols.data(), false);
      }
      if (t.requires_grad(bias)) {
        T* gb = t.grad_mut(bias).data();
        for (int64_t oc = 0; oc < g.O; ++oc)
          for (int64_t i = 0; i < g.ohw(); ++i) gb[oc] += gyn[oc * g.ohw() + i];
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Pools over k x k windows with stride, no padding. max: dx[argmax] += dy.  avg: dx[window] += dy/k^2
namespace {
template <class T>
Var pool2d(Tape<T>& t, Var x, int64_t k, int64_t stride, bool is_max) {
  const Shape& s = t.shape(x);
  const char* name = is_max ? "max_pool2d" : "avg_pool2d";
  if (!t.check({x}, s.size() == 4 && k > 0 && stride > 0 && s[2] >= k && s[3] >= k, name,
               "x must be (N, C, H, W) with H, W >= k > 0 and stride > 0, got " + shape_text(s)))
    return {};
  const int64_t NC = s[0] * s[1], H = s[2], W = s[3], OH = (H - k) / stride + 1, OW = (W - k) / stride + 1;
  std::vector<T> y(NC * OH * OW);
  auto arg = std::make_shared<std::vector<int64_t>>(is_max ? y.size() : 0);  // flat index into x
  const T* vx = t.value(x).data();
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        T acc = is_max ? -INFINITY : T(0);
        int64_t best = -1;
        for (int64_t ky = 0; ky < k; ++ky)
          for (int64_t kx = 0; kx < k; ++kx) {
            const int64_t idx = (c * H + oy * stride + ky) * W + ox * stride + kx;
            if (!is_max) acc += vx[idx];
            else if (best < 0 || vx[idx] > acc) { acc = vx[idx]; best = idx; }
          }
        const int64_t o = (c * OH + oy) * OW + ox;
        y[o] = is_max ? acc : acc / static_cast<T>(k * k);
        if (is_max) (*arg)[o] = best;
      }
  return t.push({s[0], s[1], OH, OW}, std::move(y), {x}, [=](Tape<T>& t, Var out) {
    const T* gy = t.grad(out).data();
    T* gx = t.grad_mut(x).data();
    for (int64_t c = 0; c < NC; ++c)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t o = (c * OH + oy) * OW + ox;
          if (is_max) {
            gx[(*arg)[o]] += gy[o];
            continue;
          }
          const T share = gy[o] / static_cast<T>(k * k);
          for (int64_t ky = 0; ky < k; ++ky)
            for (int64_t kx = 0; kx < k; ++kx) gx[(c * H + oy * stride + ky) * W + ox * stride + kx] += share;
        }
  });
}
}  // namespace

template <class T>
Var max_pool2d(Tape<T>& t, Var x, int64_t k, int64_t stride) { return pool2d(t, x, k, stride, true); }
template <class T>
Var avg_pool2d(Tape<T>& t, Var x, int64_t k, int64_t stride) { return pool2d(t, x, k, stride, false); }

// ---------------------------------------------------------------------------------------------
template <class T>
Var reshape(Tape<T>& t, Var x, Shape shape) {
  if (!t.check({x}, true, "reshape", "")) return {};
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && infer < 0) infer = static_cast<int64_t>(i);
    else if (!t.check({x}, shape[i] >= 0, "reshape", "bad dimension in " + shape_text(shape))) return {};
    else known *= shape[i];
  }
  if (infer >= 0 && known > 0) shape[infer] = t.numel(x) / known;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (!t.check({x}, n == t.numel(x), "reshape", shape_text(t.shape(x)) + " cannot become " + shape_text(shape))) return {};
  return t.push(std::move(shape), t.value(x), {x}, [x](Tape<T>& t, Var o) {
    const std::vector<T>& gy = t.grad(o);
    T* gx = t.grad_mut(x).data();
    for (size_t i = 0; i < gy.size(); ++i) gx[i] += gy[i];
  });
}

template <class T>
Var dropout(Tape<T>& t, Var x, double p, uint64_t seed) {
  if (!t.check({x}, p >= 0 && p < 1, "dropout", "p must be in [0, 1), got " + std::to_string(p))) return {};
  if (!t.training || p == 0) return scale(t, x, 1.0);
  Rng rng(seed);
  auto mask = std::make_shared<std::vector<T>>(t.numel(x));  // 0 or 1/(1-p)
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (T& m : *mask) m = rng.uniform() < p ? T(0) : keep_scale;
  std::vector<T> y(t.value(x));
  for (size_t i = 0; i < y.size(); ++i) y[i] *= (*mask)[i];
  return t.push(t.shape(x), std::move(y), {x}, [x, mask](Tape<T>& t, Var o) {
    const std::vector<T>& gy = t.grad(o);
    T* gx = t.grad_mut(x).data();
    for (size_t i = 0; i < gy.size(); ++i) gx[i] += (*mask)[i] * gy[i];
  });
}

template <class T>
Var dot_const(Tape<T>& t, Var x, const std::vector<T>& r) {
  if (!t.check({x}, static_cast<int64_t>(r.size()) == t.numel(x), "dot_const",
               "r has " + std::to_string(r.size()) + " elements, x " + std::to_string(t.numel(x))))
    return {};
  double sum = 0;
  for (size_t i = 0; i < r.size(); ++i) sum += static_cast<double>(t.value(x)[i]) * r[i];
  return t.push({1}, {static_cast<T>(sum)}, {x}, [x, r](Tape<T>& t, Var o) {
    const T g = t.grad(o)[0];
    T* gx = t.grad_mut(x).data();
    for (size_t i = 0; i < r.size(); ++i) gx[i] += g * r[i];
  });
}

// mse = mean((a - b)^2);  da += 2 (a - b) / n dy;  db -= the same
template <class T>
Var mse(Tape<T>& t, Var a, Var b) {
  if (!t.check({a, b}, t.shape(a) == t.shape(b), "mse", shape_text(t.shape(a)) + " vs " + shape_text(t.shape(b))))
    return {};
  const int64_t n = t.numel(a);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(t.value(a)[i]) - t.value(b)[i];
    sum += d * d;
  }
  return t.push({1}, {static_cast<T>(n ? sum / n : 0.0)}, {a, b}, [a, b, n](Tape<T>& t, Var o) {
    const T c = n ? T(2) * t.grad(o)[0] / static_cast<T>(n) : T(0);
    const T* va = t.value(a).data();
    const T* vb = t.value(b).data();
    T* ga = t.requires_grad(a) ? t.grad_mut(a).data() : nullptr;
    T* gb = t.requires_grad(b) ? t.grad_mut(b).data() : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      if (ga) ga[i] += c * (va[i] - vb[i]);
      if (gb) gb[i] -= c * (va[i] - vb[i]);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Losses over rows of logits. The gradient is computed with the loss (it needs the same softmax)
// and kept; backward scales it by the upstream scalar.
//   CE_i = lse(z_i) - z_i[y_i];  dCE_i/dz_i = softmax(z_i) - onehot(y_i)
//   KL_i = sum_j pt_j (log pt_j - log ps_j), ps = softmax(z_i / T), pt = softmax(teacher_i / T);
//   d(T^2 KL_i)/dz_i = T (ps - pt)
namespace {
template <class T>
Var row_loss(Tape<T>& t, Var logits, const T* teacher, const std::vector<int32_t>& targets,
             const std::vector<T>& weights, double alpha, double temperature, const char* name) {
  const Shape& s = t.shape(logits);
  if (!t.check({logits}, s.size() == 2 && static_cast<int64_t>(targets.size()) == s[0] &&
                             (weights.empty() || weights.size() == targets.size()),
               name, "logits must be (N, V) with N targets (and N weights or none), got " + shape_text(s) + ", " +
                         std::to_string(targets.size()) + " targets, " + std::to_string(weights.size()) + " weights"))
    return {};
  if (!t.check({logits}, temperature > 0, name, "temperature must be positive")) return {};
  const int64_t N = s[0], V = s[1];
  int64_t count = 0;
  for (int32_t y : targets) {
    if (!t.check({logits}, y >= -1 && y < V, name, "target " + std::to_string(y) + " outside [-1, " + std::to_string(V) + ")"))
      return {};
    count += y != -1;
  }
  auto grad = std::make_shared<std::vector<T>>(N * V, T(0));  // (N, V) d loss / d logits
  std::vector<double> per_row(N, 0.0);
  const T* z = t.value(logits).data();
  const T inv_count = count ? T(1) / static_cast<T>(count) : T(0);
  const T temp = static_cast<T>(temperature);
  over_rows(t, N, V, [&](int64_t b, int64_t e) {
    std::vector<T> ps(teacher ? V : 0), pt(teacher ? V : 0);
    for (int64_t i = b; i < e; ++i) {
      if (targets[i] == -1) continue;
      const T w = weights.empty() ? T(1) : weights[i];
      T* g = grad->data() + i * V;
      const T* zi = z + i * V;
      const T lse = softmax_row(zi, g, V, T(1));  // g = softmax(z)
      const double ce = static_cast<double>(lse) - zi[targets[i]];
      const T ce_share = teacher ? static_cast<T>(1.0 - alpha) : T(1);
      for (int64_t j = 0; j < V; ++j) g[j] *= ce_share;
      g[targets[i]] -= ce_share;
      double loss = ce_share * ce;
      if (teacher) {
        const T lse_s = softmax_row(zi, ps.data(), V, T(1) / temp);
        const T lse_t = softmax_row(teacher + i * V, pt.data(), V, T(1) / temp);
        double kl = 0;
        for (int64_t j = 0; j < V; ++j) {
          if (pt[j] > T(0))
            kl += static_cast<double>(pt[j]) *
                  ((teacher[i * V + j] / temp - lse_t) - (zi[j] / temp - lse_s));
          g[j] += static_cast<T>(alpha) * temp * (ps[j] - pt[j]);
        }
        loss += alpha * temperature * temperature * kl;
      }
      for (int64_t j = 0; j < V; ++j) g[j] *= w * inv_count;
      per_row[i] = static_cast<double>(w) * loss;
    }
  });
  double total = 0;
  for (double l : per_row) total += l;
  total = count ? total / static_cast<double>(count) : 0.0;
  return t.push({1}, {static_cast<T>(total)}, {logits}, [logits, grad](Tape<T>& t, Var o) {
    const T g = t.grad(o)[0];
    T* gz = t.grad_mut(logits).data();
    for (size_t i = 0; i < grad->size(); ++i) gz[i] += g * (*grad)[i];
  });
}
}  // namespace

template <class T>
Var cross_entropy(Tape<T>& t, Var logits, const std::vector<int32_t>& targets, const std::vector<T>& weights) {
  return row_loss<T>(t, logits, nullptr, targets, weights, 0.0, 1.0, "cross_entropy");
}

template <class T>
Var kd_loss(Tape<T>& t, Var student, const std::vector<T>& teacher, const std::vector<int32_t>& targets,
            const std::vector<T>& weights, double alpha, double temperature) {
  if (!t.check({student}, static_cast<int64_t>(teacher.size()) == t.numel(student), "kd_loss",
               "teacher logits have " + std::to_string(teacher.size()) + " elements, student " +
                   std::to_string(t.numel(student))))
    return {};
  return row_loss<T>(t, student, teacher.data(), targets, weights, alpha, temperature, "kd_loss");
}

// ---------------------------------------------------------------------------------------------
#define SS_AG_INSTANTIATE(T)                                                                                      \
  template Var embedding<T>(Tape<T>&, Var, const std::vector<int32_t>&);                                          \
  template Var linear<T>(Tape<T>&, Var, Var, Var);                                                                \
  template Var matmul<T>(Tape<T>&, Var, Var);                                                                     \
  template Var add<T>(Tape<T>&, Var, Var);                                                                        \
  template Var mul<T>(Tape<T>&, Var, Var);                                                                        \
  template Var scale<T>(Tape<T>&, Var, double);                                                                   \
  template Var rms_norm<T>(Tape<T>&, Var, Var, double);                                                           \
  template Var rope<T>(Tape<T>&, Var, const std::vector<float>&, RopeOrder);                                      \
  template Var attention<T>(Tape<T>&, Var, Var, Var);                                                             \
  template Var softmax<T>(Tape<T>&, Var);                                                                         \
  template Var log_softmax<T>(Tape<T>&, Var);                                                                     \
  template Var silu<T>(Tape<T>&, Var);                                                                            \
  template Var swiglu<T>(Tape<T>&, Var, Var);                                                                     \
  template Var relu<T>(Tape<T>&, Var);                                                                            \
  template Var gelu<T>(Tape<T>&, Var, GeluKind);                                                                  \
  template Var conv2d<T>(Tape<T>&, Var, Var, Var, int64_t, int64_t);                                              \
  template Var max_pool2d<T>(Tape<T>&, Var, int64_t, int64_t);                                                    \
  template Var avg_pool2d<T>(Tape<T>&, Var, int64_t, int64_t);                                                    \
  template Var reshape<T>(Tape<T>&, Var, Shape);                                                                  \
  template Var dropout<T>(Tape<T>&, Var, double, uint64_t);                                                       \
  template Var dot_const<T>(Tape<T>&, Var, const std::vector<T>&);                                                \
  template Var mse<T>(Tape<T>&, Var, Var);                                                                        \
  template Var cross_entropy<T>(Tape<T>&, Var, const std::vector<int32_t>&, const std::vector<T>&);               \
  template Var kd_loss<T>(Tape<T>&, Var, const std::vector<T>&, const std::vector<int32_t>&, const std::vector<T>&, \
                          double, double);

SS_AG_INSTANTIATE(float)
SS_AG_INSTANTIATE(double)
#undef SS_AG_INSTANTIATE

}  // namespace ss::ag

// The layer-norm LSTM recurrence (Ba et al. 2016) over a whole sequence, forward and
// backward, for CPU. Compiled on first use by rnnkit/core/kernels.py; the TorchScript loops
// of rnnkit/core/fused_lstm.py compute the same numbers where no compiler is available.
//
// Why C++: a step of a small LSTM is a few microseconds of arithmetic, and every tensor
// operation launched from Python or TorchScript costs about as much again. Here a step is
// one matrix product (oneDNN or MKL, through ATen) plus plain loops over each row that the
// compiler vectorizes: two operator calls per step instead of twenty.
//
// Per step, with gx = LN_ih(x W_ih^T) + b (all steps computed beforehand, under autograd):
//   raw = h W_hh^T                          z = gx + LN_hh(raw)       (gain only)
//   i, f, o = sigmoid(z_i, z_f, z_o)        g = tanh(z_g)
//   c' = f c + i g                          y = LN_c(c')              (gain and shift)
//   h' = o tanh(y)
// At padded steps (mask false) the state passes through and the output is zero.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

using at::Tensor;

constexpr double kEps = 1e-5;  // torch.nn.functional.layer_norm's default

// exp(x) for |x| <= 80, in plain arithmetic that the compiler vectorizes without
// -ffast-math (which would also let it assume there is no NaN): Cephes' expf, i.e.
// x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-7 polynomial (about 1 ulp), times 2^n
// built in the exponent bits. float only; double (tests, gradcheck) calls std::exp.
inline float exp_bounded(float x) {
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x/ln2)
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, |n| <= 116: normal
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
inline double exp_bounded(double x) { return std::exp(x); }

// sigmoid(x); NaN stays NaN (the clamps are comparisons that NaN fails, and the last line
// returns it), +-Inf give 1 and ~1e-35.
template <typename T>
inline T sigmoid(T x) {
  T bounded = x < T(-80) ? T(-80) : x;  // exp stays finite
  bounded = bounded > T(80) ? T(80) : bounded;
  const T result = T(1) / (T(1) + exp_bounded(-bounded));
  return x == x ? result : x;
}

template <typename T>
inline T tanh_(T x) {  // one exp, like sigmoid: vectorizes the same way
  return T(2) * sigmoid(T(2) * x) - T(1);
}

// The sum of n values in kLanes interleaved partial sums, which the compiler turns into
// vector additions without reordering any of them (no -ffast-math needed).
constexpr int64_t kLanes = 8;
template <typename T, typename F>
inline T lane_sum(int64_t n, F value) {
  T partial[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) partial[l] += value(k + l);
  T sum = 0;
  for (; k < n; ++k) sum += value(k);
  for (int64_t l = 0; l < kLanes; ++l) sum += partial[l];
  return sum;
}

// Mean and 1/std of n values, with the biased variance, as torch's layer norm.
template <typename T>
inline void moments(const T* v, int64_t n, T& mean, T& rstd) {
  mean = lane_sum<T>(n, [&](int64_t k) { return v[k]; }) / T(n);
  const T m = mean;
  const T squares = lane_sum<T>(n, [&](int64_t k) { return (v[k] - m) * (v[k] - m); });
  rstd = T(1) / std::sqrt(squares / T(n) + T(kEps));
}

// Layer norm's backward for one row of n values, gain only: d(input) from d(output), and
// the gain's gradient added to grad_gain.
template <typename T>
inline void layer_norm_backward(const T* grad_out, const T* gain, const T* input, T mean, T rstd,
                                int64_t n, T* scratch, T* grad_in, T* grad_gain) {
  for (int64_t k = 0; k < n; ++k) {
    grad_gain[k] += grad_out[k] * ((input[k] - mean) * rstd);
    scratch[k] = grad_out[k] * gain[k];
  }
  const T sum_g = lane_sum<T>(n, [&](int64_t k) { return scratch[k]; }) / T(n);
  const T sum_gn =
      lane_sum<T>(n, [&](int64_t k) { return scratch[k] * ((input[k] - mean) * rstd); }) / T(n);
  for (int64_t k = 0; k < n; ++k)
    grad_in[k] = rstd * (scratch[k] - sum_g - (input[k] - mean) * rstd * sum_gn);
}

// x @ w^T into out, for x [rows, k] and w [n, k]: through torch's oneDNN matmul where it is
// faster (float32 with 16 rows or more: 1.4-2.3x MKL's sgemm on this project's CPUs), else
// MKL's.
class Linear {
 public:
  Linear(const Tensor& x, const Tensor& w) : w_(w) {
    if (x.scalar_type() != at::kFloat || x.size(0) < 16) return;
    auto handle = c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
    if (handle) onednn_ = handle->typed<OneDnnLinear>();
  }
  void operator()(const Tensor& x, Tensor out) const {
    if (onednn_)
      out.copy_(onednn_->call(x, w_, std::nullopt, "none", no_scalars_, std::nullopt));
    else
      at::mm_out(out, x, w_.t());
  }

 private:
  using OneDnnLinear = Tensor(const Tensor&, const Tensor&, const std::optional<Tensor>&,
                              c10::string_view, c10::List<std::optional<at::Scalar>>,
                              std::optional<c10::string_view>);
  Tensor w_;
  c10::List<std::optional<at::Scalar>> no_scalars_;
  std::optional<c10::TypedOperatorHandle<OneDnnLinear>> onednn_;
};

// Rows are independent within a step: threads split them when a step has enough work.
inline int64_t grain(int64_t hidden) { return std::max<int64_t>(1, 16384 / (4 * hidden)); }

// What the forward pass keeps for the backward pass, per step (or one step's worth, reused,
// when nothing will be differentiated).
struct Saved {
  Tensor gates;      // [T, B, 4H] i, f, g, o after their nonlinearities
  Tensor raw;        // [T, B, 4H] h W_hh^T before its layer norm
  Tensor raw_stats;  // [T, B, 2] its mean and 1/std
  Tensor c_stats;    // [T, B, 2] mean and 1/std of the new cell
  Tensor tanh_y;     // [T, B, H] tanh of the normalized cell
};

template <typename T>
void forward_loop(const Tensor& gx, const Tensor& mask, const Tensor& w_hh, const Tensor& ln_hh_w,
                  const Tensor& ln_c_w, const Tensor& ln_c_b, bool keep, Tensor& outputs,
                  Tensor& h_states, Tensor& c_states, Saved& saved) {
  const int64_t steps = gx.size(0), batch = gx.size(1), H = c_states.size(2), G = 4 * H;
  const Linear recurrent(gx[0], w_hh);
  const T *lnw = ln_hh_w.data_ptr<T>(), *lncw = ln_c_w.data_ptr<T>(),
          *lncb = ln_c_b.data_ptr<T>();
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t s = keep ? t : 0;  // where this step's intermediate results go
    Tensor raw_t = saved.raw[s];
    recurrent(h_states[t], raw_t);
    const bool* valid = mask.defined() ? mask.data_ptr<bool>() + t * batch : nullptr;
    const T* gx_t = gx.data_ptr<T>() + t * batch * G;
    const T* raw_p = raw_t.data_ptr<T>();
    T* gate_p = saved.gates.data_ptr<T>() + s * batch * G;
    T* raw_stat_p = saved.raw_stats.data_ptr<T>() + s * batch * 2;
    T* c_stat_p = saved.c_stats.data_ptr<T>() + s * batch * 2;
    T* tanh_y_p = saved.tanh_y.data_ptr<T>() + s * batch * H;
    T* out_p = outputs.data_ptr<T>() + t * batch * H;
    const T* h_prev = h_states.data_ptr<T>() + t * batch * H;
    const T* c_prev = c_states.data_ptr<T>() + t * batch * H;
    T* h_next = h_states.data_ptr<T>() + (t + 1) * batch * H;
    T* c_next = c_states.data_ptr<T>() + (t + 1) * batch * H;
    at::parallel_for(0, batch, grain(H), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        if (valid && !valid[b]) {
          std::copy(h_prev + b * H, h_prev + (b + 1) * H, h_next + b * H);
          std::copy(c_prev + b * H, c_prev + (b + 1) * H, c_next + b * H);
          std::fill(out_p + b * H, out_p + (b + 1) * H, T(0));
          continue;
        }
        const T* r = raw_p + b * G;
        T mean, rstd;
        moments(r, G, mean, rstd);
        raw_stat_p[2 * b] = mean;
        raw_stat_p[2 * b + 1] = rstd;
        T* z = gate_p + b * G;
        const T* x = gx_t + b * G;
        for (int64_t j = 0; j < G; ++j) z[j] = x[j] + (r[j] - mean) * rstd * lnw[j];
        for (int64_t j = 0; j < 2 * H; ++j) z[j] = sigmoid(z[j]);
        for (int64_t j = 2 * H; j < 3 * H; ++j) z[j] = tanh_(z[j]);
        for (int64_t j = 3 * H; j < G; ++j) z[j] = sigmoid(z[j]);
        const T *i = z, *f = z + H, *g = z + 2 * H, *o = z + 3 * H;
        T* c = c_next + b * H;
        const T* cp = c_prev + b * H;
        for (int64_t k = 0; k < H; ++k) c[k] = f[k] * cp[k] + i[k] * g[k];
        moments(c, H, mean, rstd);
        c_stat_p[2 * b] = mean;
        c_stat_p[2 * b + 1] = rstd;
        T* ty = tanh_y_p + b * H;
        T* h = h_next + b * H;
        for (int64_t k = 0; k < H; ++k) {
          ty[k] = tanh_((c[k] - mean) * rstd * lncw[k] + lncb[k]);
          h[k] = o[k] * ty[k];
        }
        std::copy(h, h + H, out_p + b * H);
      }
    });
  }
}

// Returns [outputs, h_states, c_states, gates, raw, raw_stats, c_stats, tanh_y]; with
// keep=false (inference) the last five hold only the last step's values.
std::vector<Tensor> forward(const Tensor& gx, const Tensor& h0, const Tensor& c0,
                            const std::optional<Tensor>& mask, const Tensor& w_hh,
                            const Tensor& ln_hh_w, const Tensor& ln_c_w, const Tensor& ln_c_b,
                            bool keep) {
  TORCH_CHECK(gx.device().is_cpu() && gx.is_contiguous(), "gx must be contiguous on the CPU");
  const int64_t steps = gx.size(0), batch = gx.size(1), H = h0.size(1);
  const int64_t kept = keep ? steps : 1;
  Tensor outputs = gx.new_empty({steps, batch, H});
  Tensor h_states = gx.new_empty({steps + 1, batch, H});
  Tensor c_states = gx.new_empty({steps + 1, batch, H});
  h_states[0].copy_(h0);
  c_states[0].copy_(c0);
  // Padded steps leave their rows unwritten (the backward pass never reads them): zeros
  // there, so that the operator's every output is determined by its inputs.
  const auto saved_tensor = [&](int64_t width) {
    return mask.has_value() ? gx.new_zeros({kept, batch, width}) : gx.new_empty({kept, batch, width});
  };
  Saved saved{saved_tensor(4 * H), saved_tensor(4 * H), saved_tensor(2), saved_tensor(2),
              saved_tensor(H)};
  Tensor valid = mask.has_value() ? mask->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "layer_norm_lstm_forward", [&] {
    forward_loop<scalar_t>(gx, valid, w_hh.contiguous(), ln_hh_w.contiguous(),
                           ln_c_w.contiguous(), ln_c_b.contiguous(), keep, outputs, h_states,
                           c_states, saved);
  });
  return {outputs,   h_states,        c_states,      saved.gates,
          saved.raw, saved.raw_stats, saved.c_stats, saved.tanh_y};
}

template <typename T>
void backward_loop(const Tensor& grad_outputs, const Tensor& mask, const Tensor& w_hh,
                   const Tensor& ln_hh_w, const Tensor& ln_c_w, const Tensor& c_states,
                   const Saved& saved, Tensor& grad_h, Tensor& grad_c, Tensor& grad_gx,
                   Tensor& grad_raw, Tensor& grad_ln_hh_rows, Tensor& grad_ln_c_rows,
                   Tensor& grad_ln_c_b_rows) {
  const int64_t steps = grad_gx.size(0), batch = grad_gx.size(1), H = c_states.size(2),
                G = 4 * H;
  const T *lnw = ln_hh_w.data_ptr<T>(), *lncw = ln_c_w.data_ptr<T>();
  Tensor grad_h_next = at::empty_like(grad_h);
  const Linear recurrent_backward(grad_h, w_hh.t().contiguous());
  for (int64_t t = steps - 1; t >= 0; --t) {
    const bool* valid = mask.defined() ? mask.data_ptr<bool>() + t * batch : nullptr;
    const T* gate_p = saved.gates.data_ptr<T>() + t * batch * G;
    const T* raw_p = saved.raw.data_ptr<T>() + t * batch * G;
    const T* raw_stat_p = saved.raw_stats.data_ptr<T>() + t * batch * 2;
    const T* c_stat_p = saved.c_stats.data_ptr<T>() + t * batch * 2;
    const T* tanh_y_p = saved.tanh_y.data_ptr<T>() + t * batch * H;
    const T* c_prev_p = c_states.data_ptr<T>() + t * batch * H;
    const T* c_new_p = c_states.data_ptr<T>() + (t + 1) * batch * H;
    const T* grad_out_p = grad_outputs.data_ptr<T>() + t * batch * H;
    T* grad_h_p = grad_h.data_ptr<T>();
    T* grad_c_p = grad_c.data_ptr<T>();
    T* grad_z_p = grad_gx.data_ptr<T>() + t * batch * G;
    T* grad_raw_p = grad_raw.data_ptr<T>() + t * batch * G;
    at::parallel_for(0, batch, grain(H), [&](int64_t begin, int64_t end) {
      std::vector<T> scratch(G), grad_y(H), grad_c_ln(H);
      for (int64_t b = begin; b < end; ++b) {
        T* dz = grad_z_p + b * G;
        if (valid && !valid[b]) {  // the state's gradient passes through the padded step
          std::fill(dz, dz + G, T(0));
          std::fill(grad_raw_p + b * G, grad_raw_p + (b + 1) * G, T(0));
          continue;
        }
        const T *i = gate_p + b * G, *f = i + H, *g = i + 2 * H, *o = i + 3 * H;
        const T* ty = tanh_y_p + b * H;
        const T* dout = grad_out_p + b * H;
        const T* dh = grad_h_p + b * H;
        T* dy = grad_y.data();
        for (int64_t k = 0; k < H; ++k) {
          const T grad = dh[k] + dout[k];
          dz[3 * H + k] = grad * ty[k] * o[k] * (T(1) - o[k]);
          dy[k] = grad * o[k] * (T(1) - ty[k] * ty[k]);
        }
        // The cell norm has a shift too: its gradient is the output gradient itself.
        T* grad_shift = grad_ln_c_b_rows.data_ptr<T>() + b * H;
        for (int64_t k = 0; k < H; ++k) grad_shift[k] += dy[k];
        layer_norm_backward(dy, lncw, c_new_p + b * H, c_stat_p[2 * b], c_stat_p[2 * b + 1], H,
                            scratch.data(), grad_c_ln.data(),
                            grad_ln_c_rows.data_ptr<T>() + b * H);
        T* dc = grad_c_p + b * H;
        const T* c_prev = c_prev_p + b * H;
        for (int64_t k = 0; k < H; ++k) {
          const T total = dc[k] + grad_c_ln[k];
          dz[k] = total * g[k] * i[k] * (T(1) - i[k]);
          dz[H + k] = total * c_prev[k] * f[k] * (T(1) - f[k]);
          dz[2 * H + k] = total * i[k] * (T(1) - g[k] * g[k]);
          dc[k] = total * f[k];
        }
        layer_norm_backward(dz, lnw, raw_p + b * G, raw_stat_p[2 * b], raw_stat_p[2 * b + 1], G,
                            scratch.data(), grad_raw_p + b * G,
                            grad_ln_hh_rows.data_ptr<T>() + b * G);
      }
    });
    recurrent_backward(grad_raw[t], grad_h_next);
    for (int64_t b = 0; valid && b < batch; ++b)  // padded rows: zero from the matmul
      if (!valid[b]) grad_h_next[b].copy_(grad_h[b]);
    std::swap(grad_h, grad_h_next);
  }
}

// Returns [d gx, d h0, d c0, d raw (for W_hh's gradient), d ln_hh_w, d ln_c_w, d ln_c_b].
std::vector<Tensor> backward(const Tensor& grad_outputs, const Tensor& grad_h_last,
                             const Tensor& grad_c_last, const std::optional<Tensor>& mask,
                             const Tensor& w_hh, const Tensor& ln_hh_w, const Tensor& ln_c_w,
                             const Tensor& c_states, const Tensor& gates, const Tensor& raw,
                             const Tensor& raw_stats, const Tensor& c_stats,
                             const Tensor& tanh_y) {
  Tensor grad_h = grad_h_last.contiguous().clone();
  Tensor grad_c = grad_c_last.contiguous().clone();
  Tensor grad_gx = at::empty_like(gates);
  Tensor grad_raw = at::empty_like(gates);
  // The gains' gradients are summed per batch row (each row belongs to one thread), then
  // over rows at the end.
  Tensor grad_ln_hh_rows = at::zeros_like(gates[0]);
  Tensor grad_ln_c_rows = at::zeros_like(tanh_y[0]);
  Tensor grad_ln_c_b_rows = at::zeros_like(tanh_y[0]);
  Tensor valid = mask.has_value() ? mask->contiguous() : Tensor();
  const Saved saved{gates, raw, raw_stats, c_stats, tanh_y};
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "layer_norm_lstm_backward", [&] {
    backward_loop<scalar_t>(grad_outputs.contiguous(), valid, w_hh.contiguous(),
                            ln_hh_w.contiguous(), ln_c_w.contiguous(), c_states, saved, grad_h,
                            grad_c, grad_gx, grad_raw, grad_ln_hh_rows, grad_ln_c_rows,
                            grad_ln_c_b_rows);
  });
  return {grad_gx,
          grad_h,
          grad_c,
          grad_raw,
          grad_ln_hh_rows.sum(0),
          grad_ln_c_rows.sum(0),
          grad_ln_c_b_rows.sum(0)};
}

}  // namespace

TORCH_LIBRARY(rnnkit_kernels, m) {
  m.def(
      "layer_norm_lstm_forward(Tensor gx, Tensor h0, Tensor c0, Tensor? mask, Tensor w_hh, "
      "Tensor ln_hh_w, Tensor ln_c_w, Tensor ln_c_b, bool keep) -> Tensor[]",
      &forward);
  m.def(
      "layer_norm_lstm_backward(Tensor grad_outputs, Tensor grad_h_last, Tensor grad_c_last, "
      "Tensor? mask, Tensor w_hh, Tensor ln_hh_w, Tensor ln_c_w, Tensor c_states, "
      "Tensor gates, Tensor raw, Tensor raw_stats, Tensor c_stats, Tensor tanh_y) -> Tensor[]",
      &backward);
}

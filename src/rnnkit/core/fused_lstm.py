"""A fused step loop for the LSTM variants torch has no kernel for (layer norm, peephole).

Autograd through a Python step loop records ~15 operations per step and replays ~25 in the
backward pass, which made the layer-norm LSTM 7x slower than ``torch.nn.LSTM``. Here the
recurrence over the whole sequence is one `torch.autograd.Function`: the forward loop runs
without recording and writes what the backward pass needs straight into preallocated
tensors; the backward pass walks the steps in reverse with hand-written derivatives, and
the weight gradients are then one large matmul over all steps instead of one per step.
Both loops are TorchScript when it is available (no Python interpreter inside the loop),
plain Python otherwise. The input projection of all steps is one matmul beforehand.

Equations, per step (gate order i, f, g, o as torch; optional parts in brackets)::

    z = [LN_ih](x W_ih^T) + b_ih + b_hh + [LN_hh](h W_hh^T)
    i = σ(z_i [+ w_ci ⊙ c]), f = σ(z_f [+ w_cf ⊙ c]), g = tanh(z_g)
    c' = f ⊙ c + i ⊙ g
    o = σ(z_o [+ w_co ⊙ c'])
    h' = [W_hr] (o ⊙ tanh([LN_c](c')))

One more trick: on CPU tanh costs several sigmoids, so the loop computes
tanh(a) = 2 σ(2a) - 1, with the doubling folded into the weights once per call.

On CPU the most used variant, the layer-norm LSTM without peepholes or projection, runs a
C++ kernel instead (`rnnkit.core.kernels`, ~2x faster for small batches): one matmul and
plain vectorized loops per step. It computes the same equations; the loops here are its
reference in the tests and its fallback where it cannot be compiled. It is registered as
the operator ``torch.ops.rnnkit.layer_norm_lstm`` (schema, fake implementation, autograd,
autocast), which torch.compile and torch.export keep as one node; the TorchScript loops
cannot be traced, so there (and for ONNX) the cell runs its step loop: see `runs_fused`.

Under ``torch.autocast`` every recurrence here takes float32 inputs and runs in float32
(`forward_in_float32`), as torch's own RNN kernels accumulate in float32.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.core import kernels

#: The device types whose autocast the custom autograd Functions below declare themselves for.
AUTOCAST_DEVICES = ("cpu", "cuda")


def forward_in_float32(forward):
    """Declare a custom autograd Function's ``forward`` for ``torch.autocast``: inside an
    autocast region its floating-point inputs are cast to float32 and it runs with autocast
    off, so a recurrence accumulates in float32 (as torch's own RNN kernels do) instead of
    rounding its state to bfloat16/float16 at every step. Outside autocast: no effect."""
    for device_type in AUTOCAST_DEVICES:
        forward = torch.amp.custom_fwd(forward, device_type=device_type, cast_inputs=torch.float32)
    return forward


def backward_like_forward(backward):
    """The ``backward`` companion of `forward_in_float32`: the same autocast state (off)."""
    for device_type in AUTOCAST_DEVICES:
        backward = torch.amp.custom_bwd(backward, device_type=device_type)
    return backward


def _sequence_forward(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    mask: Tensor | None,
    w_hh: Tensor,
    ln_hh_w: Tensor | None,
    w_cif: Tensor | None,
    w_co: Tensor | None,
    ln_c_w: Tensor | None,
    ln_c_b: Tensor | None,
    w_hr: Tensor | None,
) -> list[Tensor]:
    """Run all steps without recording; the g gate's pre-activation arrives doubled, and so
    does the cell's layer norm output (its gain and shift are doubled): see
    `fused_lstm_sequence`.

    Returns [outputs, h_states [T+1, B, P], c_states [T+1, B, H], sigmoids [T, B, 4H],
    g [T, B, H], tanh(cell) [T, B, H], raw h @ W_hh^T [T, B, 4H], hh_mean, hh_rstd, c_mean,
    c_rstd [T, B, 1], unprojected h [T, B, H]] (empty where unused). Each step writes its
    results straight into these tensors (``out=``), which saves a copy per result.
    """
    steps, batch = gx.shape[0], gx.shape[1]
    hidden = c0.shape[-1]
    empty = gx.new_empty(0)
    minus_one = gx.new_full([1], -1.0)
    h_states = gx.new_empty(steps + 1, batch, h0.shape[-1])
    c_states = gx.new_empty(steps + 1, batch, hidden)
    h_states[0] = h0
    c_states[0] = c0
    sigmoids = gx.new_empty(steps, batch, 4 * hidden)
    g_all = gx.new_empty(steps, batch, hidden)
    tanh_c_all = gx.new_empty(steps, batch, hidden)
    hh_raw = gx.new_empty(steps, batch, 4 * hidden) if ln_hh_w is not None else empty
    unprojected = gx.new_empty(steps, batch, hidden) if w_hr is not None else empty
    outputs = gx.new_empty(steps, batch, h0.shape[-1]) if mask is not None else empty
    # Per-step views, made once: indexing inside the loop costs an operation each time.
    gx_t = gx.unbind(0)
    h_out = h_states[1:].unbind(0)
    c_out_t = c_states[1:].unbind(0)
    sig_t = sigmoids.unbind(0)
    g_t = g_all.unbind(0)
    tanh_c_t = tanh_c_all.unbind(0)
    hh_raw_t = hh_raw.unbind(0) if ln_hh_w is not None else [empty]
    unprojected_t = unprojected.unbind(0) if w_hr is not None else [empty]
    outputs_t = outputs.unbind(0) if mask is not None else [empty]
    valid_t = mask.unsqueeze(2).unbind(0) if mask is not None else [empty]
    zero = gx.new_zeros(1)
    hh_mean: list[Tensor] = []
    hh_rstd: list[Tensor] = []
    c_mean: list[Tensor] = []
    c_rstd: list[Tensor] = []
    h = h0
    c = c0
    for t in range(steps):
        if ln_hh_w is not None:
            hh = torch.mm(h, w_hh.t(), out=hh_raw_t[t])
            hh, mean, rstd = torch.native_layer_norm(hh, [4 * hidden], ln_hh_w, None, 1e-5)
            hh_mean.append(mean)
            hh_rstd.append(rstd)
            z = gx_t[t] + hh
        else:
            z = torch.addmm(gx_t[t], h, w_hh.t())
        if w_cif is not None:
            z.view(batch, 4, hidden)[:, :2] += w_cif * c.unsqueeze(1)
        # One sigmoid for all four gates; tanh(a) = 2 sigmoid(2a) - 1 for g.
        sig = torch.sigmoid(z, out=sig_t[t])
        g = torch.add(minus_one, sig[:, 2 * hidden : 3 * hidden], alpha=2.0, out=g_t[t])
        c_new = sig[:, hidden : 2 * hidden] * c
        if mask is None:
            c_new = torch.addcmul(c_new, sig[:, :hidden], g, out=c_out_t[t])
        else:
            c_new = torch.addcmul(c_new, sig[:, :hidden], g)
        o = sig[:, 3 * hidden :]
        if w_co is not None:
            o = torch.sigmoid(z[:, 3 * hidden :] + w_co * c_new, out=o)
        if ln_c_w is not None:
            doubled, mean, rstd = torch.native_layer_norm(c_new, [hidden], ln_c_w, ln_c_b, 1e-5)
            c_mean.append(mean)
            c_rstd.append(rstd)
        else:
            doubled = c_new + c_new
        tanh_c = torch.add(minus_one, torch.sigmoid(doubled), alpha=2.0, out=tanh_c_t[t])
        h_target = h_out[t] if mask is None else empty
        if w_hr is not None:
            h_new = torch.mul(o, tanh_c, out=unprojected_t[t])
            h_new = torch.mm(h_new, w_hr.t(), out=h_target) if mask is None else h_new @ w_hr.t()
        else:
            h_new = torch.mul(o, tanh_c, out=h_target) if mask is None else o * tanh_c
        if mask is not None:
            valid = valid_t[t]
            h_new = torch.where(valid, h_new, h, out=h_out[t])
            c_new = torch.where(valid, c_new, c, out=c_out_t[t])
            # where, not a product with the mask: NaN * 0 would leak into padded outputs.
            torch.where(valid, h_new, zero, out=outputs_t[t])
        h = h_new
        c = c_new
    if mask is None:
        outputs = h_states[1:].clone()
    stats = [torch.stack(s) if len(s) > 0 else empty for s in [hh_mean, hh_rstd, c_mean, c_rstd]]
    return [outputs, h_states, c_states, sigmoids, g_all, tanh_c_all, hh_raw] + stats + [
        unprojected
    ]  # fmt: skip


def _sequence_backward(
    grad_outputs: Tensor,
    grad_h_last: Tensor,
    grad_c_last: Tensor,
    mask: Tensor | None,
    w_hh: Tensor,
    ln_hh_w: Tensor | None,
    w_ci: Tensor | None,
    w_cf: Tensor | None,
    w_co: Tensor | None,
    ln_c_w: Tensor | None,
    ln_c_b: Tensor | None,
    w_hr: Tensor | None,
    c_states: Tensor,
    forget: Tensor,
    d_ifg: Tensor,
    d_o: Tensor,
    d_c_out: Tensor,
    hh_raw: Tensor,
    hh_mean: Tensor,
    hh_rstd: Tensor,
    c_mean: Tensor,
    c_rstd: Tensor,
) -> list[Tensor]:
    """Walk the steps backwards. ``d_*`` are the local derivatives, computed for all steps
    at once beforehand: of z_i, z_f, z_g by the cell gradient (d_ifg [T, B, 3, H]), of z_o
    and of the cell's tanh input by the h gradient (d_o, d_c_out).

    Returns [d gates [T, B, 4H], d h0, d c0, d (h @ W_hh^T) [T, B, 4H], d ln_hh_w, d ln_c_w,
    d ln_c_b, d unprojected h [T, B, P]] (empty where unused). The layer-norm gains get
    their gradient step by step, while the data is in cache.
    """
    steps, batch = d_o.shape[0], d_o.shape[1]
    hidden = c_states.shape[-1]
    empty = d_o.new_empty(0)
    grad_z_all = d_o.new_empty(steps, batch, 4 * hidden)
    grad_h_new_all = d_o.new_empty(grad_outputs.shape) if w_hr is not None else empty
    grad_z_t = grad_z_all.unbind(0)
    grad_outputs_t = grad_outputs.unbind(0)
    grad_h_new_t = grad_h_new_all.unbind(0) if w_hr is not None else [empty]
    d_o_t = d_o.unbind(0)
    d_c_out_t = d_c_out.unbind(0)
    d_ifg_t = d_ifg.unbind(0)
    forget_t = forget.unbind(0)
    c_new_t = c_states[1:].unbind(0)
    hh_raw_t = hh_raw.unbind(0) if ln_hh_w is not None else [empty]
    hh_mean_t = hh_mean.unbind(0) if ln_hh_w is not None else [empty]
    hh_rstd_t = hh_rstd.unbind(0) if ln_hh_w is not None else [empty]
    c_mean_t = c_mean.unbind(0) if ln_c_w is not None else [empty]
    c_rstd_t = c_rstd.unbind(0) if ln_c_w is not None else [empty]
    valid_t = mask.unsqueeze(2).unbind(0) if mask is not None else [empty]
    zero = d_o.new_zeros(1)
    grad_hh_list: list[Tensor] = []
    grad_ln_hh_w: list[Tensor] = []
    grad_ln_c_w: list[Tensor] = []
    grad_ln_c_b: list[Tensor] = []
    grad_h = grad_h_last
    grad_c = grad_c_last
    for t in range(steps - 1, -1, -1):
        # At padded steps the state passes through unchanged: its gradient skips the step.
        grad_h_keep = grad_h
        grad_c_keep = grad_c
        if mask is not None:
            # torch.where, not products with the mask: NaN or Inf times 0 is NaN.
            valid = valid_t[t]
            grad_h_new = torch.where(valid, grad_h + grad_outputs_t[t], zero)
            grad_h_keep = torch.where(valid, zero, grad_h)
            grad_c_keep = torch.where(valid, zero, grad_c)
            grad_c = torch.where(valid, grad_c, zero)
        else:
            grad_h_new = grad_h + grad_outputs_t[t]
        if w_hr is not None:
            grad_h_new_t[t].copy_(grad_h_new)
            grad_h_new = torch.mm(grad_h_new, w_hr)
        grad_z = grad_z_t[t]
        grad_gates = grad_z.view(batch, 4, hidden)
        grad_z_o = torch.mul(grad_h_new, d_o_t[t], out=grad_gates[:, 3])
        grad_c_out = grad_h_new * d_c_out_t[t]
        if ln_c_w is not None:
            grad_c_out, grad_w, grad_b = torch.ops.aten.native_layer_norm_backward(
                grad_c_out, c_new_t[t], [hidden], c_mean_t[t], c_rstd_t[t], ln_c_w, ln_c_b,
                [True, True, True],
            )  # fmt: skip
            grad_ln_c_w.append(grad_w)
            grad_ln_c_b.append(grad_b)
        grad_c_total = grad_c + grad_c_out
        if w_co is not None:
            grad_c_total = torch.addcmul(grad_c_total, grad_z_o, w_co)
        torch.mul(grad_c_total.unsqueeze(1), d_ifg_t[t], out=grad_gates[:, :3])
        grad_c = grad_c_total * forget_t[t]
        if w_ci is not None and w_cf is not None:
            grad_c = torch.addcmul(grad_c, grad_gates[:, 0], w_ci)
            grad_c = torch.addcmul(grad_c, grad_gates[:, 1], w_cf)
        grad_hh = grad_z
        if ln_hh_w is not None:
            grad_hh, grad_w, _ = torch.ops.aten.native_layer_norm_backward(
                grad_z, hh_raw_t[t], [4 * hidden], hh_mean_t[t], hh_rstd_t[t], ln_hh_w, None,
                [True, True, False],
            )  # fmt: skip
            grad_ln_hh_w.append(grad_w)
            grad_hh_list.append(grad_hh)
        grad_h = torch.mm(grad_hh, w_hh)
        if mask is not None:
            grad_h = grad_h + grad_h_keep
            grad_c = grad_c + grad_c_keep
    grad_hh_all = grad_z_all
    if len(grad_hh_list) > 0:
        grad_hh_list.reverse()
        grad_hh_all = torch.stack(grad_hh_list)
    grad_ln = [
        torch.stack(g).sum(0) if len(g) > 0 else empty
        for g in [grad_ln_hh_w, grad_ln_c_w, grad_ln_c_b]
    ]
    return [grad_z_all, grad_h, grad_c, grad_hh_all] + grad_ln + [grad_h_new_all]


def _compile(fn):
    """TorchScript ``fn`` if possible (faster loop), else keep the Python function."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated, and still the fastest
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 (any failure means: run the Python version)
        return fn


@functools.cache
def _loops() -> tuple:
    """The compiled forward and backward loops, made on first use (not at import)."""
    return _compile(_sequence_forward), _compile(_sequence_backward)


@functools.cache
def _onednn_linear():
    """torch's oneDNN matmul (``mkldnn._linear_pointwise``, x @ w^T) if this build has it.

    On this project's CPUs (AMD EPYC) it multiplies the large float32 matrices of an LSTM
    1.5-2.5x faster than the default BLAS, which is what torch.nn.LSTM's own oneDNN kernel
    enjoys too. It is a private operator, so any failure of a first small call means: use
    torch.mm. The check's data is fixed, not drawn: a draw from the global generator here,
    at the first forward call, would shift every later draw (dropout masks, shuffling) and
    break same-seed reproducibility and bit-for-bit resumption.
    """
    try:
        linear = torch.ops.mkldnn._linear_pointwise
        a = torch.arange(12.0).reshape(3, 4).sin()
        w = torch.arange(20.0).reshape(5, 4).cos()
        if torch.allclose(linear(a, w, None, "none", [], ""), a @ w.t(), atol=1e-5):
            return linear
    except Exception:  # noqa: BLE001 (missing or broken in this build: use torch.mm)
        pass
    return None


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for 2-D tensors, through oneDNN for float32 on CPU when available.

    Not differentiable: for use inside the autograd Functions of this module.
    """
    if torch.compiler.is_compiling():  # compile and export: the operator they know
        return a @ b
    linear = _onednn_linear()
    if linear is None or a.device.type != "cpu" or a.dtype != torch.float32:
        return a @ b
    return linear(a, b.t(), None, "none", [], "")


class _Linear(torch.autograd.Function):
    """``x @ w^T + b`` for x [N, I] with its three matmuls through `_matmul`."""

    @staticmethod
    @forward_in_float32
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        output = _matmul(x, weight.t())
        return output if bias is None else output.add_(bias)

    @staticmethod
    @backward_like_forward
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = _matmul(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = _matmul(grad.t(), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear for x [..., I], with the faster matmuls of `_matmul`."""
    flat = _Linear.apply(x.reshape(-1, x.shape[-1]), weight, bias)
    return flat.reshape(*x.shape[:-1], weight.shape[0])


def _sum_rows(x: Tensor) -> Tensor:
    """Sum over time and batch: [T, B, N] -> [N]."""
    return x.reshape(-1, x.shape[-1]).sum(0)


def _matmul_over_steps(grad: Tensor, inputs: Tensor) -> Tensor:
    """sum_t grad_t^T @ inputs_t as one matmul: [T, B, N], [T, B, M] -> [N, M]."""
    return _matmul(grad.reshape(-1, grad.shape[-1]).t(), inputs.reshape(-1, inputs.shape[-1]))


class FusedLSTMSequence(torch.autograd.Function):
    """The recurrent part of an LSTM over a whole sequence as one autograd node.

    Takes the g gate's pre-activations doubled (in ``gx`` and ``w_hh`` or ``ln_hh_w``) and
    the cell layer norm's gain and shift doubled (see `fused_lstm_sequence`).
    """

    @staticmethod
    @forward_in_float32
    def forward(ctx, gx, h0, c0, mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr):
        w_cif = torch.stack([w_ci, w_cf]) if w_ci is not None else None
        results = _loops()[0](gx, h0, c0, mask, w_hh, ln_hh_w, w_cif, w_co, ln_c_w, ln_c_b, w_hr)
        outputs, h_states, c_states, *saved = results
        ctx.save_for_backward(
            mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr, h_states, c_states,
            *saved,
        )  # fmt: skip
        return outputs, h_states[-1].clone(), c_states[-1].clone()

    @staticmethod
    @backward_like_forward
    def backward(ctx, grad_outputs, grad_h_last, grad_c_last):
        (
            mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr, h_states, c_states,
            sigmoids, g, tanh_c, hh_raw, hh_mean, hh_rstd, c_mean, c_rstd, unprojected,
        ) = ctx.saved_tensors  # fmt: skip
        # Local derivatives of every step at once. The factors 1/2 undo the doubled
        # arguments of tanh(a) = 2 sigmoid(2a) - 1.
        i, f, _, o = sigmoids.chunk(4, -1)
        c_prev = c_states[:-1]
        d_ifg = sigmoids.new_empty(*g.shape[:2], 3, g.shape[2])
        torch.mul(g * i, 1 - i, out=d_ifg[:, :, 0])
        torch.mul(c_prev * f, 1 - f, out=d_ifg[:, :, 1])
        torch.mul(i * 0.5, 1 - g * g, out=d_ifg[:, :, 2])
        d_o = tanh_c * o * (1 - o)
        d_c_out = o * (1 - tanh_c * tanh_c) * (0.5 if ln_c_w is not None else 1.0)
        h_prev = h_states[:-1]
        grad_gx, grad_h0, grad_c0, grad_hh, *grad_ln, grad_h_new = _loops()[1](
            grad_outputs, grad_h_last, grad_c_last,
            mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr,
            c_states, f, d_ifg, d_o, d_c_out, hh_raw, hh_mean, hh_rstd, c_mean,
            c_rstd,
        )  # fmt: skip
        grads: dict[str, Tensor | None] = dict.fromkeys(
            ["w_hh", "ln_hh_w", "w_ci", "w_cf", "w_co", "ln_c_w", "ln_c_b", "w_hr"]
        )
        grads["w_hh"] = _matmul_over_steps(grad_hh, h_prev)
        if ln_hh_w is not None:
            grads["ln_hh_w"] = grad_ln[0]
        if w_ci is not None:
            grad_i, grad_f, _, grad_o = grad_gx.chunk(4, -1)
            grads["w_ci"] = _sum_rows(grad_i * c_prev)
            grads["w_cf"] = _sum_rows(grad_f * c_prev)
            grads["w_co"] = _sum_rows(grad_o * c_states[1:])
        if ln_c_w is not None:
            grads["ln_c_w"], grads["ln_c_b"] = grad_ln[1], grad_ln[2]
        if w_hr is not None:
            grads["w_hr"] = _matmul_over_steps(grad_h_new, unprojected)
        return (grad_gx, grad_h0, grad_c0, None, *grads.values())


# ---- the C++ kernel as a torch.library operator ------------------------------------------
#
# Registered with a schema, a fake (shape-only) implementation, an autograd formula and an
# autocast rule, so that torch.compile and torch.export see one opaque operator
# ``torch.ops.rnnkit.layer_norm_lstm`` (and its backward) instead of failing on a kernel
# they cannot look into. An exported program that contains it needs ``import rnnkit`` (and
# the kernel) to run; ONNX has no such operator: `rnnkit.core.export` traces the pure-torch
# step loop instead.

Tensors8 = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]
Tensors7 = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


@torch.library.custom_op("rnnkit::layer_norm_lstm", mutates_args=())
def layer_norm_lstm(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    mask: Tensor | None,
    w_hh: Tensor,
    ln_hh_w: Tensor,
    ln_c_w: Tensor,
    ln_c_b: Tensor,
    keep: bool,
) -> Tensors8:
    """The layer-norm LSTM recurrence over all steps (C++, `rnnkit.core.kernels`).

    Args:
        gx: [T, B, 4H] LN_ih(x W_ih^T) + b, contiguous; h0, c0: [B, H]; mask: [T, B] bool
            or None; w_hh: [4H, H]; ln_hh_w: [4H]; ln_c_w, ln_c_b: [H]; keep: keep every
            step's intermediate results for the backward pass (else only the last step's).

    Returns:
        outputs [T, B, H], h_states and c_states [T + 1, B, H] (the initial state first),
        and for the backward pass: gates [K, B, 4H], raw h W_hh^T [K, B, 4H], its mean and
        1/std [K, B, 2], the cell's [K, B, 2], tanh of the normalized cell [K, B, H], with
        K = T if keep else 1.
    """
    ops = kernels.layer_norm_lstm()
    return tuple(ops.layer_norm_lstm_forward(gx, h0, c0, mask, w_hh, ln_hh_w, ln_c_w, ln_c_b, keep))


@layer_norm_lstm.register_fake
def _(gx, h0, c0, mask, w_hh, ln_hh_w, ln_c_w, ln_c_b, keep):
    steps, batch, hidden = gx.shape[0], gx.shape[1], h0.shape[1]
    kept = steps if keep else 1
    return (
        gx.new_empty(steps, batch, hidden),
        gx.new_empty(steps + 1, batch, hidden),
        gx.new_empty(steps + 1, batch, hidden),
        gx.new_empty(kept, batch, 4 * hidden),
        gx.new_empty(kept, batch, 4 * hidden),
        gx.new_empty(kept, batch, 2),
        gx.new_empty(kept, batch, 2),
        gx.new_empty(kept, batch, hidden),
    )


@torch.library.custom_op("rnnkit::layer_norm_lstm_backward", mutates_args=())
def layer_norm_lstm_backward(
    grad_outputs: Tensor,
    grad_h_last: Tensor,
    grad_c_last: Tensor,
    mask: Tensor | None,
    w_hh: Tensor,
    ln_hh_w: Tensor,
    ln_c_w: Tensor,
    c_states: Tensor,
    gates: Tensor,
    raw: Tensor,
    raw_stats: Tensor,
    c_stats: Tensor,
    tanh_y: Tensor,
) -> Tensors7:
    """The kernel's backward pass: d gx [T, B, 4H], d h0, d c0 [B, H], d raw [T, B, 4H]
    (for W_hh's gradient), d ln_hh_w [4H], d ln_c_w, d ln_c_b [H]."""
    return tuple(
        kernels.layer_norm_lstm().layer_norm_lstm_backward(
            grad_outputs,
            grad_h_last,
            grad_c_last,
            mask,
            w_hh,
            ln_hh_w,
            ln_c_w,
            c_states,
            gates,
            raw,
            raw_stats,
            c_stats,
            tanh_y,
        )  # fmt: skip
    )


@layer_norm_lstm_backward.register_fake
def _(grad_outputs, grad_h_last, grad_c_last, mask, w_hh, ln_hh_w, ln_c_w, c_states, gates,
      raw, raw_stats, c_stats, tanh_y):  # fmt: skip
    return (
        torch.empty_like(gates),
        torch.empty_like(grad_h_last),
        torch.empty_like(grad_c_last),
        torch.empty_like(gates),
        torch.empty_like(ln_hh_w),
        torch.empty_like(ln_c_w),
        torch.empty_like(ln_c_w),
    )


def _layer_norm_lstm_setup_context(ctx, inputs, output) -> None:
    _, _, _, mask, w_hh, ln_hh_w, ln_c_w, _, keep = inputs
    if not keep:
        raise RuntimeError("rnnkit::layer_norm_lstm: keep=False keeps nothing to differentiate")
    _, h_states, c_states, *saved = output
    ctx.save_for_backward(mask, w_hh, ln_hh_w, ln_c_w, h_states, c_states, *saved)


def _layer_norm_lstm_backward(ctx, grad_outputs, grad_h_states, grad_c_states, *_):
    """Gradients reach the outputs and the last state only (`_layer_norm_lstm_kernel`
    exposes nothing else); the recurrent weight's is one matmul over all steps."""
    mask, w_hh, ln_hh_w, ln_c_w, h_states, c_states, *saved = ctx.saved_tensors
    zero_state = h_states.new_zeros(h_states.shape[1:])
    grad_outputs = torch.zeros_like(h_states[1:]) if grad_outputs is None else grad_outputs
    grad_h_last = zero_state if grad_h_states is None else grad_h_states[-1]
    grad_c_last = zero_state if grad_c_states is None else grad_c_states[-1]
    grads = layer_norm_lstm_backward(
        grad_outputs.contiguous(), grad_h_last.contiguous(), grad_c_last.contiguous(), mask,
        w_hh, ln_hh_w, ln_c_w, c_states, *saved,
    )  # fmt: skip
    grad_gx, grad_h0, grad_c0, grad_raw, grad_ln_hh_w, grad_ln_c_w, grad_ln_c_b = grads
    grad_w_hh = _matmul_over_steps(grad_raw, h_states[:-1])
    return (grad_gx, grad_h0, grad_c0, None, grad_w_hh, grad_ln_hh_w, grad_ln_c_w, grad_ln_c_b,
            None)  # fmt: skip


layer_norm_lstm.register_autograd(
    _layer_norm_lstm_backward, setup_context=_layer_norm_lstm_setup_context
)
# Under autocast the kernel (float32 and float64 only) takes float32, as the loops do.
for _device_type in AUTOCAST_DEVICES:
    torch.library.register_autocast(layer_norm_lstm, _device_type, torch.float32)


def _layer_norm_lstm_kernel(gx, h0, c0, mask, w_hh, ln_hh_w, ln_c_w, ln_c_b):
    """Run the kernel, keeping the steps only when a gradient is needed.
    Returns (outputs [T, B, H], h [B, H], c [B, H])."""
    inputs = (gx, h0, c0, w_hh, ln_hh_w, ln_c_w, ln_c_b)
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    outputs, h_states, c_states, *_ = layer_norm_lstm(
        gx, h0, c0, mask, w_hh, ln_hh_w, ln_c_w, ln_c_b, keep
    )
    return outputs, h_states[-1], c_states[-1]


def _kernel_applies(
    x: Tensor, mask: Tensor | None, layer_norm: bool, peephole: bool, projection: bool
) -> bool:
    """Whether the C++ kernel computes this configuration (and could be built)."""
    return (
        layer_norm
        and not peephole
        and not projection
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and (mask is None or mask.dtype == torch.bool)
        and kernels.layer_norm_lstm_available()
    )


_pure_torch = False  # see `pure_torch_recurrence`


@contextlib.contextmanager
def pure_torch_recurrence() -> Iterator[None]:
    """Inside: every rnnkit LSTM outside torch's fast path runs its plain step loop (torch
    operators only), for exporters that know neither the C++ operator nor TorchScript
    (ONNX). Used by `rnnkit.core.export`."""
    global _pure_torch
    previous, _pure_torch = _pure_torch, True
    try:
        yield
    finally:
        _pure_torch = previous


def pure_torch_active() -> bool:
    """Whether `pure_torch_recurrence` is in effect."""
    return _pure_torch


def runs_fused(
    x: Tensor, mask: Tensor | None, *, layer_norm: bool, peephole: bool, projection: bool
) -> bool:
    """Whether `fused_lstm_sequence` runs this LSTM; if not, the cell runs its step loop.

    Which path runs where:

    ============================  ===========================  ==========================
    LSTM configuration            eager                        compile / export (ONNX)
    ============================  ===========================  ==========================
    plain, torch's fast path      torch's kernel (layer.py)    the same (ONNX: aten.lstm)
    layer norm (CPU)              C++ kernel                   ``rnnkit::layer_norm_lstm``
                                                               (ONNX: step loop)
    peephole, projection, layer   TorchScript loop             step loop
    norm without the kernel
    ============================  ===========================  ==========================

    The TorchScript loops cannot be traced by torch.compile or torch.export; the C++
    kernel can (a registered operator) but has no ONNX equivalent.
    """
    if _pure_torch:
        return False
    if torch.compiler.is_compiling():
        return _kernel_applies(x, mask, layer_norm, peephole, projection)
    return True


def fused_lstm_sequence(
    x: Tensor,
    state: tuple[Tensor, Tensor],
    mask: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    bias: Tensor | None = None,
    ln_ih_w: Tensor | None = None,
    ln_hh_w: Tensor | None = None,
    peephole: tuple[Tensor, Tensor, Tensor] | None = None,
    ln_c: tuple[Tensor, Tensor] | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """An LSTM over all steps of ``x``: the input projection of all steps at once (autograd),
    then the recurrence as one `FusedLSTMSequence` node.

    Args:
        x: [T, B, I]; state: (h0 [B, P], c0 [B, H]).
        mask: [T, B] bool, False at padded steps (state kept, output zero), or None.
        w_ih: [4H, I]; w_hh: [4H, P]; bias: [4H] (b_ih + b_hh); ln_ih_w, ln_hh_w: [4H]
            gains of the input and recurrent layer norms; peephole: (w_ci, w_cf, w_co) each
            [H]; ln_c: (gain, shift) [H] of the cell's layer norm; w_hr: [P, H] projection.

    Returns:
        outputs [T, B, P] and the final state (h [B, P], c [B, H]).

    On CPU tanh costs several times a sigmoid, so tanh(a) is computed as 2 sigmoid(2a) - 1:
    the g rows of the weights (or layer-norm gains) and the cell layer norm are doubled
    here, once per call, and the loop then needs sigmoids only.
    """
    hidden = w_hh.shape[0] // 4
    h0, c0 = state
    if mask is not None:
        # Padded steps are never read, as in torch's packed kernels: a NaN there must not
        # reach the outputs or the gradients (0 * NaN is NaN), and their gradient is zero.
        x = torch.where(mask.unsqueeze(-1), x, 0.0)
    if _kernel_applies(x, mask, ln_c is not None, peephole is not None, w_hr is not None):
        gx = F.layer_norm(_linear(x, w_ih), (4 * hidden,), ln_ih_w, bias)
        outputs, h, c = _layer_norm_lstm_kernel(
            gx.contiguous(), h0, c0, mask, w_hh, ln_hh_w, ln_c[0], ln_c[1]
        )
        return outputs, (h, c)
    scale = torch.ones(4 * hidden, dtype=w_hh.dtype, device=w_hh.device)
    scale[2 * hidden : 3 * hidden] = 2.0
    bias = None if bias is None else bias * scale
    if ln_ih_w is None:
        gx = _linear(x, w_ih * scale.unsqueeze(1), bias)
    else:
        gx = F.layer_norm(_linear(x, w_ih), (4 * hidden,), ln_ih_w * scale, bias)
    if ln_hh_w is None:
        w_hh = w_hh * scale.unsqueeze(1)
    else:
        ln_hh_w = ln_hh_w * scale
    w_ci, w_cf, w_co = peephole if peephole is not None else (None, None, None)
    ln_c_w, ln_c_b = (2.0 * ln_c[0], 2.0 * ln_c[1]) if ln_c is not None else (None, None)
    outputs, h, c = FusedLSTMSequence.apply(
        gx.contiguous(), h0, c0, mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr
    )
    return outputs, (h, c)

"""A fused step loop for the LSTM variants torch has no kernel for (layer norm, peephole).

Autograd through a Python step loop records ~15 operations per step and replays ~25 in the
backward pass, which made the layer-norm LSTM 7x slower than ``torch.nn.LSTM``. Here the
whole sequence is one `torch.autograd.Function`: the forward loop runs without recording,
keeps what the backward pass needs, and the backward pass walks the steps in reverse with
hand-written derivatives; the weight gradients are then one large matmul over all steps
instead of one small one per step. Both loops are TorchScript when it is available (it
removes the Python interpreter from the loop) and plain Python otherwise.

Only the recurrent part is here: the input projection ``LN(W_ih x) + b_ih + b_hh`` of all
steps is computed beforehand by ordinary autograd operations (`LSTMCell.project_input`).

Equations, per step (gate order i, f, g, o as torch; optional parts in brackets)::

    z = gx_t + [LN_hh](h @ W_hh^T)
    i = σ(z_i [+ w_ci c]), f = σ(z_f [+ w_cf c]), g = tanh(z_g)
    c' = f c + i g
    o = σ(z_o [+ w_co c'])
    h' = [W_hr] (o tanh([LN_c](c')))
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


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
    """Run all steps without recording. Returns [outputs, h_states [T+1, B, P], c_states
    [T+1, B, H], sigmoids [T, B, 4H] (slot g unused), g [T, B, H], tanh(cell) [T, B, H],
    hh_mean, hh_rstd, c_mean, c_rstd [T, B, 1], unprojected h [T, B, H]] (unused: empty).

    Results are written into preallocated tensors with ``out=`` to save a copy per step.
    """
    steps, batch = gx.shape[0], gx.shape[1]
    hidden = c0.shape[-1]
    empty = gx.new_empty(0)
    h_states = gx.new_empty(steps + 1, batch, h0.shape[-1])
    c_states = gx.new_empty(steps + 1, batch, hidden)
    h_states[0] = h0
    c_states[0] = c0
    sigmoids = gx.new_empty(steps, batch, 4 * hidden)
    g_all = gx.new_empty(steps, batch, hidden)
    tanh_c_all = gx.new_empty(steps, batch, hidden)
    ln_hh = ln_hh_w is not None
    hh_raw = gx.new_empty(steps, batch, 4 * hidden) if ln_hh else empty
    # Layer-norm statistics [B, 1] per step, stacked at the end.
    hh_mean: list[Tensor] = []
    hh_rstd: list[Tensor] = []
    c_mean: list[Tensor] = []
    c_rstd: list[Tensor] = []
    unprojected = gx.new_empty(steps, batch, hidden) if w_hr is not None else empty
    outputs = gx.new_empty(steps, batch, h0.shape[-1]) if mask is not None else empty
    h = h0
    c = c0
    for t in range(steps):
        if ln_hh_w is not None:
            # The raw recurrent pre-activations are kept for the layer norm's backward pass.
            hh = torch.mm(h, w_hh.t(), out=hh_raw[t])
            hh, mean, rstd = torch.native_layer_norm(hh, [4 * hidden], ln_hh_w, None, 1e-5)
            hh_mean.append(mean)
            hh_rstd.append(rstd)
            z = gx[t] + hh
        else:
            z = torch.addmm(gx[t], h, w_hh.t())
        if w_cif is not None:
            z.view(batch, 4, hidden)[:, :2] += w_cif * c.unsqueeze(1)
        sig = torch.sigmoid(z, out=sigmoids[t])
        g = torch.tanh(z[:, 2 * hidden : 3 * hidden], out=g_all[t])
        # Each step's results go straight into the stacked tensors (out=), saving copies.
        c_new = sig[:, hidden : 2 * hidden] * c
        if mask is None:
            c_new = torch.addcmul(c_new, sig[:, :hidden], g, out=c_states[t + 1])
        else:
            c_new = torch.addcmul(c_new, sig[:, :hidden], g)
        o = sig[:, 3 * hidden :]
        if w_co is not None:
            o = torch.sigmoid(z[:, 3 * hidden :] + w_co * c_new, out=o)
        c_out = c_new
        if ln_c_w is not None:
            c_out, mean, rstd = torch.native_layer_norm(c_new, [hidden], ln_c_w, ln_c_b, 1e-5)
            c_mean.append(mean)
            c_rstd.append(rstd)
        tanh_c = torch.tanh(c_out, out=tanh_c_all[t])
        h_target = h_states[t + 1] if mask is None else empty
        if w_hr is not None:
            h_new = torch.mul(o, tanh_c, out=unprojected[t])
            h_new = torch.mm(h_new, w_hr.t(), out=h_target) if mask is None else h_new @ w_hr.t()
        else:
            h_new = torch.mul(o, tanh_c, out=h_target) if mask is None else o * tanh_c
        if mask is not None:
            valid = mask[t].unsqueeze(1)
            h_new = torch.where(valid, h_new, h, out=h_states[t + 1])
            c_new = torch.where(valid, c_new, c, out=c_states[t + 1])
            torch.mul(h_new, valid, out=outputs[t])
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
    at once beforehand: z_i, z_f, z_g by the cell gradient (d_ifg [T, B, 3, H]), z_o and the
    cell's tanh input by the h gradient (d_o, d_c_out). Returns [d gates [T, B, 4H], d h0,
    d c0, d (h @ W_hh^T) [T, B, 4H], d ln_hh_w, d ln_c_w, d ln_c_b, d unprojected h
    [T, B, P]] (empty when unused). The layer-norm gains get their gradient step by step,
    while the data is in cache, which is cheaper than large passes afterwards."""
    steps, batch = d_o.shape[0], d_o.shape[1]
    hidden = c_states.shape[-1]
    empty = d_o.new_empty(0)
    grad_z_all = d_o.new_empty(steps, batch, 4 * hidden)
    # Per-step results for the layer norms, stacked (and summed) once at the end.
    grad_hh_list: list[Tensor] = []
    grad_ln_hh_w: list[Tensor] = []
    grad_ln_c_w: list[Tensor] = []
    grad_ln_c_b: list[Tensor] = []
    grad_h_new_all = d_o.new_empty(grad_outputs.shape) if w_hr is not None else empty
    grad_h = grad_h_last
    grad_c = grad_c_last
    for t in range(steps - 1, -1, -1):
        # At padded steps the state passes through unchanged: its gradient skips the step.
        grad_h_keep = grad_h
        grad_c_keep = grad_c
        if mask is not None:
            valid = mask[t].unsqueeze(1).to(grad_h.dtype)
            grad_h_new = (grad_h + grad_outputs[t]) * valid
            grad_c = grad_c * valid
            grad_h_keep = grad_h - grad_h * valid
            grad_c_keep = grad_c_keep - grad_c
        else:
            grad_h_new = grad_h + grad_outputs[t]
        if w_hr is not None:
            grad_h_new_all[t] = grad_h_new
            grad_h_new = torch.mm(grad_h_new, w_hr)
        grad_z = grad_z_all[t]
        grad_gates = grad_z.view(batch, 4, hidden)
        grad_z_o = torch.mul(grad_h_new, d_o[t], out=grad_gates[:, 3])
        grad_c_out = grad_h_new * d_c_out[t]
        if ln_c_w is not None:
            grad_c_out, grad_w, grad_b = torch.ops.aten.native_layer_norm_backward(
                grad_c_out, c_states[t + 1], [hidden], c_mean[t], c_rstd[t], ln_c_w, ln_c_w,
                [True, True, True],
            )  # fmt: skip
            grad_ln_c_w.append(grad_w)
            grad_ln_c_b.append(grad_b)
        grad_c_total = grad_c + grad_c_out
        if w_co is not None:
            grad_c_total = torch.addcmul(grad_c_total, grad_z_o, w_co)
        torch.mul(grad_c_total.unsqueeze(1), d_ifg[t], out=grad_gates[:, :3])
        grad_c = grad_c_total * forget[t]
        if w_ci is not None and w_cf is not None:
            grad_c = torch.addcmul(grad_c, grad_gates[:, 0], w_ci)
            grad_c = torch.addcmul(grad_c, grad_gates[:, 1], w_cf)
        grad_hh = grad_z
        if ln_hh_w is not None:
            grad_hh, grad_w, _ = torch.ops.aten.native_layer_norm_backward(
                grad_z, hh_raw[t], [4 * hidden], hh_mean[t], hh_rstd[t], ln_hh_w, None,
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
            warnings.simplefilter("ignore")
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 (any failure means: run the Python version)
        return fn


_forward_loop = _compile(_sequence_forward)
_backward_loop = _compile(_sequence_backward)


def _sum_rows(x: Tensor) -> Tensor:
    """Sum over time and batch: [T, B, N] -> [N]."""
    return x.reshape(-1, x.shape[-1]).sum(0)


def _matmul_over_steps(grad: Tensor, inputs: Tensor) -> Tensor:
    """sum_t grad_t^T @ inputs_t as one matmul: [T, B, N], [T, B, M] -> [N, M]."""
    return grad.reshape(-1, grad.shape[-1]).t().mm(inputs.reshape(-1, inputs.shape[-1]))


class FusedLSTMSequence(torch.autograd.Function):
    """The recurrent part of an LSTM over a whole sequence as one autograd node."""

    @staticmethod
    def forward(ctx, gx, h0, c0, mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr):
        w_cif = torch.stack([w_ci, w_cf]) if w_ci is not None else None
        results = _forward_loop(gx, h0, c0, mask, w_hh, ln_hh_w, w_cif, w_co, ln_c_w, ln_c_b, w_hr)
        outputs, h_states, c_states, *saved = results
        ctx.save_for_backward(
            mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr, h_states, c_states,
            *saved,
        )  # fmt: skip
        return outputs, h_states[-1].clone(), c_states[-1].clone()

    @staticmethod
    def backward(ctx, grad_outputs, grad_h_last, grad_c_last):
        (
            mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr, h_states, c_states,
            sigmoids, g, tanh_c, hh_raw, hh_mean, hh_rstd, c_mean, c_rstd, unprojected,
        ) = ctx.saved_tensors  # fmt: skip
        # Local derivatives of every step at once (large elementwise operations are cheap;
        # many small ones inside the loop are not).
        i, f, _, o = sigmoids.chunk(4, -1)
        c_prev = c_states[:-1]
        d_ifg = torch.stack([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], dim=2)
        d_o = tanh_c * o * (1 - o)
        d_c_out = o * (1 - tanh_c * tanh_c)
        h_prev = h_states[:-1]
        grad_gx, grad_h0, grad_c0, grad_hh, *grad_ln, grad_h_new = _backward_loop(
            grad_outputs.contiguous(), grad_h_last.contiguous(), grad_c_last.contiguous(),
            mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, w_hr,
            c_states, f.contiguous(), d_ifg, d_o, d_c_out, hh_raw, hh_mean, hh_rstd, c_mean,
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


def fused_lstm_sequence(
    gx: Tensor,
    state: tuple[Tensor, Tensor],
    mask: Tensor | None,
    w_hh: Tensor,
    ln_hh_w: Tensor | None = None,
    peephole: tuple[Tensor, Tensor, Tensor] | None = None,
    ln_c: tuple[Tensor, Tensor] | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run the recurrent part of an LSTM over all steps.

    Args:
        gx: [T, B, 4H] the input's contribution to the gates, biases included.
        state: (h0 [B, P], c0 [B, H]).
        mask: [T, B] bool, False at padded steps (state kept, output zero), or None.
        w_hh: [4H, P]; ln_hh_w: [4H] gain of the recurrent layer norm; peephole:
            (w_ci, w_cf, w_co) each [H]; ln_c: (gain, bias) [H] of the cell's layer norm;
            w_hr: [P, H] projection.

    Returns:
        outputs [T, B, P] and the final state (h [B, P], c [B, H]).
    """
    w_ci, w_cf, w_co = peephole if peephole is not None else (None, None, None)
    ln_c_w, ln_c_b = ln_c if ln_c is not None else (None, None)
    h0, c0 = state
    outputs, h, c = FusedLSTMSequence.apply(
        gx.contiguous(), h0, c0, mask, w_hh, ln_hh_w, w_ci, w_cf, w_co, ln_c_w, ln_c_b, w_hr
    )
    return outputs, (h, c)

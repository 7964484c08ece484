"""Parallel-scan cells: minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

Their gates depend on the input only, never on the previous state, so a whole sequence is
one *linear recurrence* per channel::

    h_t = a_t ⊙ h_{t-1} + b_t        (a_t in (0, 1), computed from x_t alone)

which can be evaluated for all steps at once instead of step by step. The usual way is a
log-space scan (Heinsen 2023): ``h = exp(A* + logcumsumexp(log b - A*))`` with
``A* = cumsum(log a)``. It is short, but in float32 ``A*`` reaches thousands at T = 8192 and
its rounding error (about 1e-3 in ``h``) exceeds what a step loop gives; it also needs
``b > 0``.

`linear_scan` uses a blocked scan instead, in linear space: cut the sequence into chunks of
about ``sqrt(T)`` steps, run the recurrence inside every chunk at once (a loop over the
chunk's steps, vectorized over chunks), then carry the state across chunks (a loop over
chunks). That is ``2 sqrt(T)`` vectorized steps instead of ``T``, it has only the
multiplications and additions of the step loop (no logs, no divisions, any sign of ``b``),
and it agrees with the step loop to a few float32 roundings (about 3e-7 at T = 8192). Its
backward pass is the same scan run backwards in time.

Example:
    >>> import torch
    >>> cell = MinGRUCell(input_size=3, hidden_size=4)
    >>> x = torch.randn(100, 2, 3)                                  # [T, B, input]
    >>> outputs, (h,) = cell.forward_sequence(x, cell.initial_state(2))
    >>> step_h = cell.initial_state(2)
    >>> for x_t in x:                                               # step by step, e.g. to generate
    ...     _, step_h = cell(x_t, step_h)
    >>> torch.allclose(h, step_h[0], atol=1e-6)
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.core.cells import Cell, State
from rnnkit.core.fused_lstm import backward_like_forward, forward_in_float32, pure_torch_active


def linear_scan(coefficients: Tensor, values: Tensor, initial: Tensor) -> Tensor:
    """Every state of ``h_t = coefficients_t * h_{t-1} + values_t`` (h_{-1} = ``initial``).

    Args:
        coefficients: ``a`` [T, *shape], usually in [0, 1].
        values: ``b`` [T, *shape].
        initial: ``h_{-1}`` [*shape].

    Returns:
        ``h`` [T, *shape]; differentiable with respect to all three inputs.

    Example:
        >>> a, b = torch.full((3, 1), 0.5), torch.ones(3, 1)
        >>> linear_scan(a, b, torch.zeros(1)).flatten().tolist()
        [1.0, 1.5, 1.75]
    """
    if coefficients.shape != values.shape or values.shape[1:] != initial.shape:
        raise ValueError(
            f"linear_scan: expected coefficients and values [T, *S] and initial [*S], got "
            f"{tuple(coefficients.shape)}, {tuple(values.shape)}, {tuple(initial.shape)}"
        )
    return _LinearScan.apply(coefficients, values, initial)


class _LinearScan(torch.autograd.Function):
    """`linear_scan` with a hand-written backward: the same scan, backwards in time.

    With ``G_t = dL/dh_t`` (through every later step), ``G_t = grad_t + a_{t+1} G_{t+1}`` is
    again a linear recurrence, run from the end; then ``dL/db_t = G_t``,
    ``dL/da_t = G_t h_{t-1}`` and ``dL/dh_{-1} = a_0 G_0``. Only ``a`` and ``h`` are kept
    for backward, instead of every intermediate of an autograd graph over the scan.
    """

    @staticmethod
    @forward_in_float32  # the scan accumulates in float32 under autocast
    def forward(ctx, coefficients: Tensor, values: Tensor, initial: Tensor) -> Tensor:
        states = _blocked_scan(coefficients, values, initial)
        ctx.save_for_backward(coefficients, initial, states)
        return states

    @staticmethod
    @backward_like_forward
    def backward(ctx, grad_states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        coefficients, initial, states = ctx.saved_tensors
        if states.shape[0] == 0:
            return (
                torch.zeros_like(coefficients),
                torch.zeros_like(states),
                torch.zeros_like(initial),
            )
        # a_{t+1}, with nothing after the last step.
        next_coefficients = torch.cat([coefficients[1:], torch.zeros_like(coefficients[:1])])
        total_grad = _blocked_scan(
            next_coefficients.flip(0), grad_states.contiguous().flip(0), torch.zeros_like(initial)
        ).flip(0)
        previous_states = torch.cat([initial.unsqueeze(0), states[:-1]])
        grad_coefficients = total_grad * previous_states
        grad_initial = coefficients[0] * total_grad[0]
        return grad_coefficients, total_grad, grad_initial


def _blocked_scan(a: Tensor, b: Tensor, h0: Tensor, chunk_size: int | None = None) -> Tensor:
    """The forward computation of `linear_scan`, without autograd (see the module docstring)."""
    steps, shape = a.shape[0], a.shape[1:]
    if steps == 0:
        return b.clone()
    length = chunk_size or max(1, math.isqrt(steps))  # ~sqrt(T): as many chunks as steps each
    chunks = -(-steps // length)
    padding = chunks * length - steps
    if padding:  # a = 1, b = 0 leaves the state as it is
        a = torch.cat([a, a.new_ones(padding, *shape)])
        b = torch.cat([b, b.new_zeros(padding, *shape)])
    a = a.reshape(chunks, length, *shape)
    b = b.reshape(chunks, length, *shape)

    # 1. Inside every chunk at once, from a zero state: `local`; and the product of the
    #    chunk's coefficients so far: `decay` (how much of the chunk's start state survives).
    #    (Lists and a stack rather than writes into one tensor with out=: torch.compile and
    #    torch.export cannot trace out= into a strided view.)
    local_steps = [b[:, 0]]
    for j in range(1, length):
        local_steps.append(torch.addcmul(b[:, j], a[:, j], local_steps[-1]))
    local = torch.stack(local_steps, dim=1)
    decay = torch.cumprod(a, dim=1)

    # 2. Across chunks: the state each chunk starts from.
    carry = h0.to(b.dtype)
    chunk_starts = []
    for c in range(chunks):
        chunk_starts.append(carry)
        carry = torch.addcmul(local[c, -1], decay[c, -1], carry)
    starts = torch.stack(chunk_starts)

    # 3. Every state = its chunk's local part + what survives of the chunk's start state.
    states = torch.addcmul(local, decay, starts.unsqueeze(1))
    return states.reshape(chunks * length, *shape)[:steps]


def _float32_under_autocast(projected: Tensor) -> Tensor:
    """The input projection, in float32 inside a ``torch.autocast`` region (where the matmul
    returns bfloat16/float16). The gates must be computed in float32: near 1, bfloat16 steps
    by 0.4%, and a coefficient ``a`` rounded by that much changes how long the state lasts
    (at T = 2048 the error doubled). Outside autocast: unchanged."""
    if torch.is_autocast_enabled(projected.device.type) and projected.dtype != torch.float64:
        return projected.float()
    return projected


class _ScanCell(Cell):
    """A cell whose step is ``h = a(x) ⊙ h + b(x)``: subclasses write `coefficients`.

    The parameters are ``weight_ih`` [gates * hidden, input] and ``bias_ih`` (torch's names,
    so that inside the layer they become ``weight_ih_l0`` and so on).
    """

    gates: int = 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, state_sizes=(hidden_size,))
        self.weight_ih = nn.Parameter(torch.empty(self.gates * hidden_size, input_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(self.gates * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's RNN initialization: U(-1/sqrt(hidden), 1/sqrt(hidden))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` of the step ``h = a ⊙ h + b`` for ``x`` [..., input] -> [..., hidden]."""
        raise NotImplementedError

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One step (generation): ``x_t`` [B, input] -> (h [B, hidden], (h,))."""
        (h,) = state
        a, b = self.coefficients(x_t)
        h = torch.addcmul(b, a, h)  # the same arithmetic as inside the scan's chunks
        return h, (h,)

    def forward_sequence(
        self, x: Tensor, state: State, mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """All steps at once by `linear_scan`: ``x`` [T, B, input] -> (outputs [T, B, hidden],
        (h_last,)). Where ``mask`` [T, B] is False the state is kept and the output is zero."""
        if pure_torch_active():  # ONNX export: the step loop (the scan's chunking is in Python)
            return super().forward_sequence(x, state, mask)
        (h0,) = state
        if mask is not None:
            # Padded steps are never read, as in torch's packed kernels: a NaN there must
            # not reach the gradients through a, b (0 * NaN is NaN).
            x = torch.where(mask.unsqueeze(-1), x, 0.0)
        a, b = self.coefficients(x)
        if mask is not None:
            keep = mask.unsqueeze(-1)
            a = torch.where(keep, a, torch.ones_like(a))  # a = 1, b = 0: the state stays
            b = torch.where(keep, b, torch.zeros_like(b))
        states = linear_scan(a, b, h0)
        final = states[-1] if states.shape[0] else h0
        outputs = states if mask is None else states.masked_fill(~keep, 0.0)
        return outputs, (final,)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class MinGRUCell(_ScanCell):
    """minGRU (Feng et al. 2024): a GRU whose gate and candidate see only the input::

        z = σ(W_z x + b_z)        h̃ = W_h x + b_h
        h' = (1 - z) ⊙ h + z ⊙ h̃

    ``weight_ih`` stacks ``[W_z; W_h]``. Trained over whole sequences with `linear_scan`.

    Args:
        input_size: features per step.
        hidden_size: width of the state.
        bias: learn ``b_z`` and ``b_h``.

    Example:
        >>> cell = MinGRUCell(8, 16)
        >>> outputs, (h,) = cell.forward_sequence(torch.randn(50, 4, 8), cell.initial_state(4))
        >>> outputs.shape, h.shape
        (torch.Size([50, 4, 16]), torch.Size([4, 16]))
    """

    gates = 2

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        projected = _float32_under_autocast(F.linear(x, self.weight_ih, self.bias_ih))
        gate, candidate = projected.chunk(2, dim=-1)
        # σ(-k) rather than 1 - σ(k): exact when z is close to 1.
        return torch.sigmoid(-gate), torch.sigmoid(gate) * candidate


class MinLSTMCell(_ScanCell):
    """minLSTM (Feng et al. 2024): forget and input gates from the input only, normalized::

        f = σ(W_f x + b_f)    i = σ(W_i x + b_i)    h̃ = W_h x + b_h
        h' = f / (f + i) ⊙ h + i / (f + i) ⊙ h̃

    ``weight_ih`` stacks ``[W_f; W_i; W_h]``. The normalized gates are computed as
    ``σ(log f - log i)`` and ``σ(log i - log f)``, which stay exact when both gates are tiny.

    Example:
        >>> cell = MinLSTMCell(8, 16)
        >>> outputs, (h,) = cell.forward_sequence(torch.randn(50, 4, 8), cell.initial_state(4))
    """

    gates = 3

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        projected = _float32_under_autocast(F.linear(x, self.weight_ih, self.bias_ih))
        forget, input_gate, candidate = projected.chunk(3, -1)
        log_ratio = F.logsigmoid(forget) - F.logsigmoid(input_gate)
        return torch.sigmoid(log_ratio), torch.sigmoid(-log_ratio) * candidate

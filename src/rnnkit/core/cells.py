"""Recurrent cells: one step of a recurrence, and the protocol every cell follows.

A *cell* computes one time step; the layer (`rnnkit.core.layer.Recurrent`) runs it over a
sequence, handles lengths, directions, stacking and regularization. This is the split of
Keras's ``SimpleRNNCell``/``RNN`` and of ``torch.nn.LSTMCell``/``torch.nn.LSTM``.

The built-in cells follow torch's equations, gate order and parameter names exactly
(``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``, ``weight_hr``), so a
``torch.nn.LSTMCell`` state dict loads into `LSTMCell` unchanged, and inside a layer the
parameters become torch's ``weight_ih_l0`` etc.

A user cell is a few lines: subclass `Cell`, set the sizes, write ``forward``::

    >>> import torch
    >>> from rnnkit.core.cells import Cell
    >>> class LeakyCell(Cell):
    ...     def __init__(self, input_size, hidden_size):
    ...         super().__init__(input_size, hidden_size, state_sizes=(hidden_size,))
    ...         self.linear = torch.nn.Linear(input_size + hidden_size, hidden_size)
    ...     def forward(self, x_t, state):
    ...         (h,) = state
    ...         h = 0.5 * h + 0.5 * torch.tanh(self.linear(torch.cat([x_t, h], dim=-1)))
    ...         return h, (h,)
    >>> cell = LeakyCell(3, 4)
    >>> out, state = cell.forward_sequence(torch.randn(7, 2, 3), cell.initial_state(2))
    >>> out.shape
    torch.Size([7, 2, 4])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.core.fused_lstm import fused_lstm_sequence, runs_fused

State = tuple[Tensor, ...]


class Cell(nn.Module):
    """One step of a recurrence. Subclasses set the sizes and write `forward`.

    Args:
        input_size: features of the input at one step.
        hidden_size: the cell's width (torch's ``hidden_size``).
        state_sizes: the width of each state tensor, e.g. ``(hidden,)`` for a GRU,
            ``(proj_or_hidden, hidden)`` for an LSTM's ``(h, c)``.
        output_size: features of the output at one step (default ``state_sizes[0]``).

    Shapes: ``x_t`` is [B, input_size]; each state tensor is [B, state_sizes[i]]; the
    output is [B, output_size].

    Optional: override `forward_sequence` to compute a whole sequence at once (a parallel
    scan, or a fused loop); the layer calls it whenever no per-step regularization
    (zoneout, recurrent dropout) is active.
    """

    #: True when ``forward`` accepts ``recurrent_mask=`` (a [B, state_sizes[0]] tensor that
    #: multiplies the previous hidden state where it enters the recurrent weights), which the
    #: layer uses for variational recurrent dropout (Gal & Ghahramani 2016).
    supports_recurrent_dropout: bool = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        state_sizes: tuple[int, ...],
        output_size: int | None = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_sizes = tuple(state_sizes)
        self.output_size = self.state_sizes[0] if output_size is None else output_size

    def initial_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> State:
        """Zeros for every state tensor, on the cell's device and dtype unless given."""
        reference = next(self.parameters(), None)
        if reference is not None:
            device = reference.device if device is None else device
            dtype = reference.dtype if dtype is None else dtype
        return tuple(
            torch.zeros(batch_size, size, device=device, dtype=dtype) for size in self.state_sizes
        )

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One step: ``x_t`` [B, input_size] and the state -> (output [B, out], new state)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x_t, state)")

    def forward_sequence(
        self, x: Tensor, state: State, mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """Run the whole sequence ``x`` [T, B, input_size] from ``state``.

        Args:
            mask: [T, B] bool, False at padded steps: there the state stays unchanged and
                the output is zero.

        Returns:
            outputs [T, B, output_size] and the final state.
        """
        outputs = []
        for t in range(x.shape[0]):
            output, new_state = self(x[t], state)
            if mask is not None:
                output, new_state = keep_where_padded(mask[t], output, new_state, state)
            outputs.append(output)
            state = new_state
        return torch.stack(outputs), state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


def keep_where_padded(
    step_mask: Tensor, output: Tensor, new_state: State, old_state: State
) -> tuple[Tensor, State]:
    """At rows where ``step_mask`` [B] is False: output zero, state unchanged."""
    valid = step_mask.unsqueeze(-1)
    output = output.masked_fill(~valid, 0.0)
    state = tuple(
        torch.where(valid, new, old) for new, old in zip(new_state, old_state, strict=True)
    )
    return output, state


def _uniform_(parameters: list[Tensor], hidden_size: int) -> None:
    """torch's RNN initialization: U(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for parameter in parameters:
        nn.init.uniform_(parameter, -bound, bound)


# Options the built-in cells show in their repr when they differ from these defaults.
_REPR_DEFAULTS = {
    "bias": True,
    "nonlinearity": "tanh",
    "proj_size": 0,
    "peephole": False,
    "layer_norm": False,
}


class _TorchLayoutCell(Cell):
    """Shared parts of the built-in cells: torch's parameters for ``gates`` gates."""

    supports_recurrent_dropout = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        gates: int,
        recurrent_size: int,
        state_sizes: tuple[int, ...],
        bias: bool,
    ) -> None:
        super().__init__(input_size, hidden_size, state_sizes)
        self.bias = bias
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, recurrent_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        """torch's initialization for the torch-named weights."""
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        _uniform_([p for p in weights if p is not None], self.hidden_size)

    def extra_repr(self) -> str:
        options = {
            name: getattr(self, name)
            for name, default in _REPR_DEFAULTS.items()
            if getattr(self, name, default) != default
        }
        return ", ".join([super().extra_repr(), *(f"{k}={v!r}" for k, v in options.items())])

    def project_input(self, x: Tensor) -> Tensor:
        """The input's contribution to the gates, for one step or all steps at once."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def forward(
        self, x_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        return self.step(self.project_input(x_t), state, recurrent_mask)

    def step(
        self, projected_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        """One step from the already projected input (`project_input`)."""
        raise NotImplementedError

    def forward_sequence(
        self, x: Tensor, state: State, mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        # One big matmul for the input projection of every step, then only the
        # recurrent part inside the loop.
        projected = self.project_input(x)
        outputs = []
        for t in range(x.shape[0]):
            output, new_state = self.step(projected[t], state)
            if mask is not None:
                output, new_state = keep_where_padded(mask[t], output, new_state, state)
            outputs.append(output)
            state = new_state
        return torch.stack(outputs), state


class RNNCell(_TorchLayoutCell):
    """Elman RNN step as `torch.nn.RNNCell`: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    Args:
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Example:
        >>> cell = RNNCell(3, 5)
        >>> h, (h_again,) = cell(torch.randn(2, 3), cell.initial_state(2))
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, 1, hidden_size, (hidden_size,), bias)
        self.nonlinearity = nonlinearity
        self.reset_parameters()

    def step(
        self, projected_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        (h,) = state
        h_in = h if recurrent_mask is None else h * recurrent_mask
        pre = projected_t + F.linear(h_in, self.weight_hh, self.bias_hh)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, (h,)


class GRUCell(_TorchLayoutCell):
    """GRU step as `torch.nn.GRUCell` (gate order r, z, n)::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)
        z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 - z) ⊙ n + z ⊙ h

    With a recurrent mask, the mask multiplies ``h`` only inside the matmuls, never in the
    last line, so dropout does not erase memory (Gal & Ghahramani 2016).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, 3, hidden_size, (hidden_size,), bias)
        self.reset_parameters()

    def step(
        self, projected_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        (h,) = state
        h_in = h if recurrent_mask is None else h * recurrent_mask
        hidden_gates = F.linear(h_in, self.weight_hh, self.bias_hh)
        x_r, x_z, x_n = projected_t.chunk(3, dim=-1)
        h_r, h_z, h_n = hidden_gates.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        return h, (h,)


class LSTMCell(_TorchLayoutCell):
    """LSTM step as `torch.nn.LSTM`'s (gate order i, f, g, o), with options.

    Args:
        proj_size: if > 0, ``h = W_hr (o ⊙ tanh(c))`` has this size (torch's ``proj_size``).
        peephole: the gates see the cell (Gers & Schmidhuber 2000): ``i`` and ``f`` add
            ``w_ci ⊙ c_{t-1}``, ``w_cf ⊙ c_{t-1}``; ``o`` adds ``w_co ⊙ c_t``. Parameters
            ``weight_ci``, ``weight_cf``, ``weight_co`` [hidden].
        layer_norm: layer normalization (Ba et al. 2016): the input and recurrent gate
            pre-activations are normalized separately (gains ``ln_ih_weight``,
            ``ln_hh_weight`` [4*hidden]; the gate biases play the role of the shift) and the
            cell before its tanh (``ln_cell_weight``, ``ln_cell_bias`` [hidden]).

    State: ``(h [B, proj_size or hidden], c [B, hidden])``.

    Example:
        >>> cell = LSTMCell(3, 5, layer_norm=True, peephole=True)
        >>> h, (h, c) = cell(torch.randn(2, 3), cell.initial_state(2))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        proj_size: int = 0,
        peephole: bool = False,
        layer_norm: bool = False,
    ) -> None:
        if isinstance(proj_size, bool) or not hasattr(proj_size, "__index__"):
            kind = type(proj_size).__name__
            raise TypeError(f"proj_size must be an int, got {kind} {proj_size!r}")
        proj_size = int(proj_size)
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"proj_size must be 0 or in [1, hidden_size), got {proj_size}")
        out_size = proj_size or hidden_size
        super().__init__(input_size, hidden_size, 4, out_size, (out_size, hidden_size), bias)
        self.proj_size = proj_size
        self.peephole = peephole
        self.layer_norm = layer_norm
        if proj_size:
            self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size))
        if peephole:
            self.weight_ci = nn.Parameter(torch.empty(hidden_size))
            self.weight_cf = nn.Parameter(torch.empty(hidden_size))
            self.weight_co = nn.Parameter(torch.empty(hidden_size))
        if layer_norm:
            self.ln_ih_weight = nn.Parameter(torch.empty(4 * hidden_size))
            self.ln_hh_weight = nn.Parameter(torch.empty(4 * hidden_size))
            self.ln_cell_weight = nn.Parameter(torch.empty(hidden_size))
            self.ln_cell_bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        extra = [self.weight_hr] if self.proj_size else []
        if self.peephole:
            extra += [self.weight_ci, self.weight_cf, self.weight_co]
        _uniform_(extra, self.hidden_size)
        if self.layer_norm:
            for gain in (self.ln_ih_weight, self.ln_hh_weight, self.ln_cell_weight):
                nn.init.ones_(gain)
            nn.init.zeros_(self.ln_cell_bias)

    def project_input(self, x: Tensor) -> Tensor:
        if not self.layer_norm:
            return F.linear(x, self.weight_ih, self.bias_ih)
        # LN(W_ih x) depends on one step only, so it is computed for all steps at once.
        gates = F.layer_norm(
            F.linear(x, self.weight_ih), (4 * self.hidden_size,), self.ln_ih_weight
        )
        return gates if self.bias_ih is None else gates + self.bias_ih

    def forward_sequence(
        self, x: Tensor, state: State, mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        # The whole recurrence is one autograd node with a hand-written backward pass
        # (`rnnkit.core.fused_lstm`): several times faster than a step loop under autograd.
        # Under torch.compile/export and for ONNX, the step loop where that cannot be traced.
        projection = bool(self.proj_size)
        options = {"layer_norm": self.layer_norm, "peephole": self.peephole}
        if not runs_fused(x, mask, projection=projection, **options):
            return super().forward_sequence(x, state, mask)
        return fused_lstm_sequence(
            x,
            (state[0], state[1]),
            mask,
            self.weight_ih,
            self.weight_hh,
            bias=None if self.bias_ih is None else self.bias_ih + self.bias_hh,
            ln_ih_w=self.ln_ih_weight if self.layer_norm else None,
            ln_hh_w=self.ln_hh_weight if self.layer_norm else None,
            peephole=(self.weight_ci, self.weight_cf, self.weight_co) if self.peephole else None,
            ln_c=(self.ln_cell_weight, self.ln_cell_bias) if self.layer_norm else None,
            w_hr=self.weight_hr if self.proj_size else None,
        )

    def step(
        self, projected_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        h, c = state
        h_in = h if recurrent_mask is None else h * recurrent_mask
        if self.layer_norm:
            hidden_gates = F.layer_norm(
                F.linear(h_in, self.weight_hh), (4 * self.hidden_size,), self.ln_hh_weight
            )
            if self.bias_hh is not None:
                hidden_gates = hidden_gates + self.bias_hh
        else:
            hidden_gates = F.linear(h_in, self.weight_hh, self.bias_hh)
        i, f, g, o = (projected_t + hidden_gates).chunk(4, dim=-1)
        if self.peephole:
            i = i + self.weight_ci * c
            f = f + self.weight_cf * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peephole:
            o = o + self.weight_co * c
        c_out = c
        if self.layer_norm:
            c_out = F.layer_norm(c, (self.hidden_size,), self.ln_cell_weight, self.ln_cell_bias)
        h = torch.sigmoid(o) * torch.tanh(c_out)
        if self.proj_size:
            h = F.linear(h, self.weight_hr)
        return h, (h, c)

"""The recurrent layer: runs any `Cell` over variable-length sequences.

`Recurrent` stacks cells into layers and directions, like ``torch.nn.LSTM`` does, and adds:

- ``lengths=``: outputs at padded steps are zero; the final state is each sequence's state
  at its last real step (PackedSequence input works as in torch);
- ``stateful=True`` for truncated backpropagation through time: the final state, detached,
  is the next call's initial state until `Recurrent.reset_state`;
- ``recurrent_dropout`` (one mask per sequence, Gal & Ghahramani 2016), ``zoneout``
  (Krueger et al. 2016), ``dropout`` between layers;
- the fast path: when the configuration is one torch's fused kernels compute (a plain
  LSTM/GRU/RNN without per-step regularization), the layer calls ``torch._VF.lstm/gru/rnn_*``
  on its own parameters, exactly as ``torch.nn.LSTM`` does, so it costs nothing over torch.

`LSTM`, `GRU` and `RNN` take torch's constructor arguments and return what torch returns.
Parameters are named as torch names them: parameter ``weight_ih`` of the cell at layer 1,
backward direction, is the layer's ``weight_ih_l1_reverse``, so a state dict moves between
``torch.nn.LSTM`` and `LSTM` unchanged in both directions.

Example:
    >>> import torch, rnnkit
    >>> lstm = rnnkit.LSTM(8, 16, num_layers=2, batch_first=True, layer_norm=True)
    >>> out, (h, c) = lstm(torch.randn(3, 5, 8), lengths=torch.tensor([5, 2, 4]))
    >>> out.shape, h.shape
    (torch.Size([3, 5, 16]), torch.Size([2, 3, 16]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.core.cells import Cell, GRUCell, LSTMCell, RNNCell, State, keep_where_padded

#: What the layer returns as a state: one tensor [layers*directions, B, size] for a cell with
#: one state tensor (GRU, RNN), a tuple of them otherwise (LSTM's ``(h, c)``).
LayerState = Tensor | tuple[Tensor, ...]
CellFactory = Callable[..., Cell]


def detach_state(state: Any) -> Any:
    """The same (nested) state with every tensor detached from the autograd graph.

    Carry a final state into the next batch for truncated backpropagation through time::

        out, state = lstm(batch_1)
        out, state = lstm(batch_2, rnnkit.detach_state(state))
    """
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, dict):
        return {key: detach_state(value) for key, value in state.items()}
    return state


def _scan_cell(name: str) -> type[Cell]:
    # Imported lazily: the parallel-scan cells live in their own module.
    from rnnkit.core import scan

    return {"mingru": scan.MinGRUCell, "minlstm": scan.MinLSTMCell}[name]


class Recurrent(nn.Module):
    """Any cell over sequences: layers, directions, lengths, regularization.

    Args:
        cell: a `Cell` subclass (or any callable returning a Cell), called as
            ``cell(input_size, hidden_size, **cell_options)`` for each layer and direction.
        input_size: features per step of the input.
        hidden_size: the cells' width.
        num_layers: stacked layers; layer ``l > 0`` reads the outputs of layer ``l - 1``.
        batch_first: input and output are [B, T, F] instead of [T, B, F].
        dropout: dropout on the outputs of every layer but the last (training only).
        bidirectional: add a layer reading each sequence backwards; outputs are concatenated.
        recurrent_dropout: probability of dropping a unit of the hidden state where it enters
            the recurrent weights, with one mask per sequence for all steps (Gal & Ghahramani
            2016). Needs a cell with ``supports_recurrent_dropout``. Off in ``eval()``.
        zoneout: probability that a state unit keeps its previous value at a step (Krueger
            et al. 2016). In ``eval()`` the expectation is used, as in the paper:
            ``state = p * old + (1 - p) * new``, deterministic.
        stateful: carry the final state (detached) into the next call when ``hx`` is None;
            `reset_state` forgets it (e.g. at the start of each epoch).
        cell_options: passed to the cell's constructor.

    Shapes: input [T, B, input_size] (or [B, T, ...] with batch_first, or [T, input_size]
    unbatched, or a PackedSequence); output [T, B, directions * output_size]; state: see
    `LayerState`, each [num_layers * directions, B, size].

    Example:
        >>> layer = Recurrent(GRUCell, 4, 8, num_layers=2, bidirectional=True)
        >>> out, h = layer(torch.randn(6, 3, 4), lengths=torch.tensor([6, 1, 3]))
        >>> out.shape, h.shape
        (torch.Size([6, 3, 16]), torch.Size([4, 3, 8]))
    """

    #: False forces the cell path even where torch's fused kernels could run (tests use it).
    fast_path: bool = True

    def __init__(
        self,
        cell: CellFactory,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        stateful: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        for name, p in (
            ("dropout", dropout),
            ("recurrent_dropout", recurrent_dropout),
            ("zoneout", zoneout),
        ):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.recurrent_dropout = float(recurrent_dropout)
        self.zoneout = float(zoneout)
        self.stateful = stateful
        self.carried_state: LayerState | None = None

        # The cells are kept in a plain list, not as submodules: the layer itself owns their
        # parameters under torch's names, and hands them back to the cells before each run.
        cells: list[Cell] = []
        self._bindings: list[tuple[Cell, str, str]] = []  # (cell, name in cell, name here)
        self._buffer_bindings: list[tuple[Cell, str, str]] = []
        layer_input = input_size
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                new_cell = cell(layer_input, hidden_size, **cell_options)
                if not isinstance(new_cell, Cell):
                    raise TypeError(f"cell must build a rnnkit Cell, got {type(new_cell)}")
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for name, parameter in new_cell.named_parameters():
                    own_name = name.replace(".", "_") + suffix
                    self.register_parameter(own_name, parameter)
                    self._bindings.append((new_cell, name, own_name))
                for name, buffer in new_cell.named_buffers():
                    own_name = name.replace(".", "_") + suffix
                    self.register_buffer(own_name, buffer)
                    self._buffer_bindings.append((new_cell, name, own_name))
                cells.append(new_cell)
            layer_input = cells[-1].output_size * self.num_directions
        if recurrent_dropout and not cells[0].supports_recurrent_dropout:
            raise ValueError(f"{type(cells[0]).__name__} does not support recurrent_dropout")
        self.__dict__["cells"] = cells
        self._torch_mode = self._find_torch_mode(cells[0])
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @staticmethod
    def _find_torch_mode(cell: Cell) -> str | None:
        """The name of torch's fused kernel that computes this cell, if there is one."""
        if type(cell) is LSTMCell and not (cell.peephole or cell.layer_norm):
            return "LSTM"
        if type(cell) is GRUCell:
            return "GRU"
        if type(cell) is RNNCell:
            return "RNN_TANH" if cell.nonlinearity == "tanh" else "RNN_RELU"
        return None

    def _bind_cells(self) -> None:
        """Give each cell the layer's current parameters (which .to(), load_state_dict or
        functional_call may have replaced) and the layer's training mode."""
        for cell, name, own_name in self._bindings:
            module_path, _, leaf = name.rpartition(".")
            module = cell.get_submodule(module_path) if module_path else cell
            module._parameters[leaf] = getattr(self, own_name)
        for cell, name, own_name in self._buffer_bindings:
            module_path, _, leaf = name.rpartition(".")
            module = cell.get_submodule(module_path) if module_path else cell
            module._buffers[leaf] = getattr(self, own_name)
        for cell in self.cells:
            if cell.training != self.training:
                cell.train(self.training)

    def reset_state(self) -> None:
        """Forget the state carried between calls by ``stateful=True``."""
        self.carried_state = None

    def flatten_parameters(self) -> None:
        """Accepted for compatibility with torch's RNN modules; nothing to do here."""

    def uses_fast_path(self) -> bool:
        """Whether the next forward call runs torch's fused kernel."""
        regularized = self.zoneout > 0 or (self.training and self.recurrent_dropout > 0)
        return self.fast_path and self._torch_mode is not None and not regularized

    def forward(
        self,
        input: Tensor | PackedSequence,  # noqa: A002 (torch's name)
        hx: LayerState | None = None,
        lengths: Tensor | list[int] | None = None,
    ) -> tuple[Tensor | PackedSequence, LayerState]:
        """Run the layer. Returns (output, final state) as torch's module of the same kind.

        Args:
            input: see the class docstring for shapes.
            hx: initial state as torch takes it (zeros if None, or the carried state when
                stateful).
            lengths: [B] real length of each sequence of a padded batch.
        """
        self._bind_cells()
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("give lengths or a PackedSequence, not both")
            output, state = self._forward_packed(input, hx)
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"input must be 2-D or 3-D, got shape {tuple(input.shape)}")
            unbatched = input.dim() == 2
            if unbatched:
                input = input.unsqueeze(0 if self.batch_first else 1)
                hx = None if hx is None else _map_state(hx, lambda s: s.unsqueeze(1))
            output, state = self._forward_padded(input, hx, lengths)
            if unbatched:
                output = output.squeeze(0 if self.batch_first else 1)
                state = _map_state(state, lambda s: s.squeeze(1))
        if self.stateful:
            self.carried_state = detach_state(state)
        return output, _as_layer_state(state)

    def _forward_padded(
        self,
        input: Tensor,
        hx: LayerState | None,
        lengths: Tensor | list[int] | None,  # noqa: A002
    ) -> tuple[Tensor, State]:
        batch_axis = 0 if self.batch_first else 1
        hx = self._initial_state(input, input.shape[batch_axis], hx)
        if lengths is not None:
            lengths = _checked_lengths(
                lengths, input.shape[batch_axis], input.shape[1 - batch_axis]
            )
        if not self.uses_fast_path():
            return self._forward_cells(input, hx, lengths)
        if lengths is None:
            return self._run_fused(input, None, hx)
        packed = pack_padded_sequence(
            input, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False
        )
        output, state = self._forward_packed(packed, hx)
        output, _ = pad_packed_sequence(
            output, batch_first=self.batch_first, total_length=input.shape[1 - batch_axis]
        )
        return output, state

    def _forward_packed(
        self, packed: PackedSequence, hx: LayerState | State | None
    ) -> tuple[PackedSequence, State]:
        hx = self._initial_state(packed.data, int(packed.batch_sizes[0]), hx)
        if not self.uses_fast_path():
            padded, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)
            output, state = self._forward_cells(padded, hx, lengths)
            return _repack_like(output, lengths, packed, self.batch_first), state
        # torch's kernels take the batch sorted by decreasing length.
        if packed.sorted_indices is not None:
            hx = tuple(s.index_select(1, packed.sorted_indices) for s in hx)
        output, state = self._run_fused(packed.data, packed.batch_sizes, hx)
        if packed.unsorted_indices is not None:
            state = tuple(s.index_select(1, packed.unsorted_indices) for s in state)
        output = PackedSequence(
            output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        return output, state

    def _initial_state(
        self, reference: Tensor, batch_size: int, hx: LayerState | State | None
    ) -> State:
        """hx as a tuple of [layers*directions, B, size] tensors: the given one, the carried
        one (stateful) or zeros."""
        if hx is None and self.stateful and self.carried_state is not None:
            hx = self.carried_state
            carried_batch = _state_tensors(hx)[0].shape[1]
            if carried_batch != batch_size:
                raise ValueError(
                    f"stateful layer carries a state for batch size {carried_batch}, got a "
                    f"batch of {batch_size}; call reset_state() first"
                )
        rows = self.num_layers * self.num_directions
        expected = [(rows, batch_size, size) for size in self.cells[0].state_sizes]
        if hx is None:
            return tuple(reference.new_zeros(shape) for shape in expected)
        state = _state_tensors(hx)
        if [tuple(s.shape) for s in state] != expected:
            raise ValueError(
                f"hx must be {len(expected)} tensor(s) of shapes {expected}, "
                f"got {[tuple(s.shape) for s in state]}"
            )
        return state

    # ---- fast path: torch's fused kernels on our parameters --------------------------------

    def _run_fused(
        self,
        input: Tensor,
        batch_sizes: Tensor | None,
        hx: State,  # noqa: A002
    ) -> tuple[Tensor, State]:
        """Call torch's fused kernel, as torch.nn.LSTM/GRU/RNN.forward does."""
        kernel = {
            "LSTM": _VF.lstm,
            "GRU": _VF.gru,
            "RNN_TANH": _VF.rnn_tanh,
            "RNN_RELU": _VF.rnn_relu,
        }[self._torch_mode]
        kernel_state: Any = hx if self._torch_mode == "LSTM" else hx[0]
        weights = [getattr(self, own_name) for _, _, own_name in self._bindings]
        options = (
            self.cells[0].bias,
            self.num_layers,
            self.dropout,
            self.training,
            self.bidirectional,
        )
        if batch_sizes is None:
            result = kernel(input, kernel_state, weights, *options, self.batch_first)
        else:
            result = kernel(input, batch_sizes, kernel_state, weights, *options)
        return result[0], tuple(result[1:])

    # ---- cell path ---------------------------------------------------------------------------

    def _forward_cells(
        self,
        input: Tensor,
        hx: State,
        lengths: Tensor | None,  # noqa: A002
    ) -> tuple[Tensor, State]:
        """Run the cells layer by layer, direction by direction."""
        x = input.transpose(0, 1) if self.batch_first else input
        steps = x.shape[0]
        mask = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            mask = torch.arange(steps, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
        final_states: list[State] = []
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                cell = self.cells[index]
                state = tuple(s[index] for s in hx)
                sequence = x if direction == 0 else _reverse_padded(x, lengths)
                output, state = self._run_cell(cell, sequence, state, mask)
                if direction == 1:
                    output = _reverse_padded(output, lengths)
                direction_outputs.append(output)
                final_states.append(state)
            x = torch.cat(direction_outputs, dim=-1) if self.bidirectional else output
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        state = tuple(torch.stack(parts) for parts in zip(*final_states, strict=True))
        return (x.transpose(0, 1) if self.batch_first else x), state

    def _run_cell(
        self, cell: Cell, x: Tensor, state: State, mask: Tensor | None
    ) -> tuple[Tensor, State]:
        """One direction of one layer over the whole sequence [T, B, F]."""
        if self.zoneout == 0 and not (self.training and self.recurrent_dropout > 0):
            return cell.forward_sequence(x, state, mask)
        return self._run_regularized(cell, x, state, mask)

    def _run_regularized(
        self, cell: Cell, x: Tensor, state: State, mask: Tensor | None
    ) -> tuple[Tensor, State]:
        """The step loop with recurrent dropout and zoneout."""
        step_options = {}
        if self.training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            # One mask per sequence, the same at every step (variational dropout).
            recurrent_mask = torch.bernoulli(torch.full_like(state[0], keep)) / keep
            step_options["recurrent_mask"] = recurrent_mask
        # Built-in cells project the inputs of all steps with one matmul beforehand.
        projected = hasattr(cell, "project_input") and hasattr(cell, "step")
        inputs = cell.project_input(x) if projected else x
        step = cell.step if projected else cell
        outputs = []
        for t in range(x.shape[0]):
            output, new_state = step(inputs[t], state, **step_options)
            if self.zoneout > 0:
                zoned = tuple(
                    self._zoneout(new, old) for new, old in zip(new_state, state, strict=True)
                )
                # Built-in cells output their hidden state: then the output is zoned too.
                if output is new_state[0]:
                    output = zoned[0]
                new_state = zoned
            if mask is not None:
                output, new_state = keep_where_padded(mask[t], output, new_state, state)
            outputs.append(output)
            state = new_state
        return torch.stack(outputs), state

    def _zoneout(self, new: Tensor, old: Tensor) -> Tensor:
        if self.training:
            keep_old = torch.bernoulli(torch.full_like(new, self.zoneout)).bool()
            return torch.where(keep_old, old, new)
        return self.zoneout * old + (1.0 - self.zoneout) * new

    def extra_repr(self) -> str:
        cell = self.cells[0]
        text = f"{type(cell).__name__}, {self.input_size}, {self.hidden_size}"
        for name, default in (
            ("num_layers", 1),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("recurrent_dropout", 0.0),
            ("zoneout", 0.0),
            ("stateful", False),
        ):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text


def _checked_lengths(lengths: Tensor | list[int], batch_size: int, steps: int) -> Tensor:
    """``lengths`` as a LongTensor [B], each in [1, steps], or a clear error."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if lengths.shape != (batch_size,):
        raise ValueError(f"lengths must have shape ({batch_size},), got {tuple(lengths.shape)}")
    if len(lengths) and (lengths.min() < 1 or lengths.max() > steps):
        raise ValueError(f"lengths must be between 1 and {steps} (the padded length), got "
                         f"{lengths.tolist()}")  # fmt: skip
    return lengths


def _state_tensors(state: LayerState) -> tuple[Tensor, ...]:
    return (state,) if isinstance(state, Tensor) else tuple(state)


def _as_layer_state(state: tuple[Tensor, ...]) -> LayerState:
    return state[0] if len(state) == 1 else state


def _map_state(state: LayerState, fn: Callable[[Tensor], Tensor]) -> LayerState:
    return fn(state) if isinstance(state, Tensor) else tuple(fn(s) for s in state)


def _reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x`` [T, B, F] within its length; padding stays in place.

    Its own inverse, so it also turns the backward direction's outputs around.
    """
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


def _repack_like(
    output: Tensor, lengths: Tensor, packed: PackedSequence, batch_first: bool
) -> PackedSequence:
    """Pack the padded ``output`` with the same order and batch sizes as ``packed``."""
    order = packed.sorted_indices
    if order is not None:
        output = output.index_select(0 if batch_first else 1, order.to(output.device))
        lengths = lengths.index_select(0, order.to(lengths.device))
    repacked = pack_padded_sequence(output, lengths.cpu(), batch_first=batch_first)
    return PackedSequence(
        repacked.data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
    )


_OPTION_DEFAULTS = {"proj_size": 0, "peephole": False, "layer_norm": False, "nonlinearity": "tanh"}
_OPTIONS_TAKEN = {"lstm": ("proj_size", "peephole", "layer_norm"), "rnn": ("nonlinearity",)}


def _resolve_cell(
    cell: str | CellFactory, bias: bool, **options: Any
) -> tuple[CellFactory, dict[str, Any]]:
    """The ``cell=`` option as a factory, and the constructor options for that cell.

    An option the cell does not take is an error unless it has its default value.
    """
    if isinstance(cell, str):
        name = cell.lower()
        builtins = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}
        if name in builtins:
            factory = builtins[name]
        elif name in ("mingru", "minlstm"):
            factory = _scan_cell(name)
        else:
            raise ValueError(
                f"cell must be 'lstm', 'gru', 'rnn', 'mingru', 'minlstm' or a Cell class, "
                f"got {cell!r}"
            )
    else:
        name, factory = "custom", cell
    taken = _OPTIONS_TAKEN.get(name, ())
    ignored = [k for k, v in options.items() if k not in taken and v != _OPTION_DEFAULTS[k]]
    if ignored or (name == "custom" and not bias):
        raise ValueError(f"cell {name!r} does not take {ignored or ['bias=False']}")
    cell_options = {key: options[key] for key in taken}
    if name != "custom":
        cell_options["bias"] = bias
    return factory, cell_options


class LSTM(Recurrent):
    """``torch.nn.LSTM`` (same arguments, parameters and results) with rnnkit's additions.

    Args (beyond torch's): peephole, layer_norm (see `LSTMCell`), recurrent_dropout,
    zoneout, stateful (see `Recurrent`), cell: ``"lstm"``, ``"gru"``, ``"rnn"``,
    ``"mingru"``, ``"minlstm"`` or a `Cell` class.

    Example:
        >>> lstm = LSTM(4, 8, num_layers=2, proj_size=3, bidirectional=True)
        >>> out, (h, c) = lstm(torch.randn(5, 2, 4))
        >>> out.shape, h.shape, c.shape
        (torch.Size([5, 2, 6]), torch.Size([4, 2, 3]), torch.Size([4, 2, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        stateful: bool = False,
        cell: str | CellFactory = "lstm",
    ) -> None:
        factory, options = _resolve_cell(
            cell, bias, proj_size=proj_size, peephole=peephole, layer_norm=layer_norm
        )
        super().__init__(
            factory,
            input_size,
            hidden_size,
            num_layers,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            stateful=stateful,
            device=device,
            dtype=dtype,
            **options,
        )
        self.bias = bias
        self.proj_size = proj_size
        self.mode = "LSTM"


class GRU(Recurrent):
    """``torch.nn.GRU`` (same arguments, parameters and results) with rnnkit's additions.

    Args (beyond torch's): recurrent_dropout, zoneout, stateful (see `Recurrent`), cell
    (``"gru"`` by default; ``"mingru"`` for the parallel-scan minGRU, or a `Cell` class).

    Example:
        >>> gru = GRU(4, 8, batch_first=True, recurrent_dropout=0.25)
        >>> out, h = gru(torch.randn(2, 5, 4), lengths=[5, 3])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        stateful: bool = False,
        cell: str | CellFactory = "gru",
    ) -> None:
        factory, options = _resolve_cell(cell, bias)
        super().__init__(
            factory,
            input_size,
            hidden_size,
            num_layers,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            stateful=stateful,
            device=device,
            dtype=dtype,
            **options,
        )
        self.bias = bias
        self.proj_size = 0
        self.mode = "GRU"


class RNN(Recurrent):
    """``torch.nn.RNN`` (Elman, tanh or relu) with rnnkit's additions (see `GRU`)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        stateful: bool = False,
        cell: str | CellFactory = "rnn",
    ) -> None:
        factory, options = _resolve_cell(cell, bias, nonlinearity=nonlinearity)
        super().__init__(
            factory,
            input_size,
            hidden_size,
            num_layers,
            batch_first,
            dropout,
            bidirectional,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            stateful=stateful,
            device=device,
            dtype=dtype,
            **options,
        )
        self.bias = bias
        self.nonlinearity = nonlinearity
        self.proj_size = 0
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

"""The recurrent layer: runs any `Cell` over variable-length sequences.

`Recurrent` stacks cells into layers and directions, like ``torch.nn.LSTM`` does, and adds:

- ``lengths=``: outputs at padded steps are zero; the final state is each sequence's state
  at its last real step (PackedSequence input works as in torch);
- ``stateful=True`` for truncated backpropagation through time: the final state, detached,
  is the next call's initial state until `Recurrent.reset_state`;
- ``recurrent_dropout`` (one mask per sequence, Gal & Ghahramani 2016), ``zoneout``
  (Krueger et al. 2016), ``dropout`` between layers.

`LSTM`, `GRU` and `RNN` take torch's constructor arguments and return what torch returns.

Parameters and state dict: the cells are ordinary submodules (``layer.cells[i]``, layer
``i // directions``, direction ``i % directions``), so ``named_modules``, ``apply``, hooks and
``torch.func.functional_call`` see them. The layer registers the same parameter objects under
torch's names (parameter ``weight_ih`` of the cell at layer 1, backward direction, is the
layer's ``weight_ih_l1_reverse``); ``named_parameters()`` and ``state_dict()`` list only these
names, so a state dict moves between ``torch.nn.LSTM`` and `LSTM` unchanged in both directions,
and ``functional_call(layer, {"weight_ih_l0": w, ...})`` reaches the cells (tied names).

Which code runs (this is the one place; the README's core section repeats it):

- LSTM / GRU / RNN (tanh, relu) with any ``num_layers``, ``bidirectional``, ``proj_size``,
  ``bias``, ``dropout``, ``lengths`` or a PackedSequence: torch's fused kernel
  (``torch._VF.lstm/gru/rnn_*``, cuDNN on CUDA) on the layer's flat weight buffer, the
  *fast path*;
- LSTM with ``layer_norm`` (no peephole, no projection) on CPU in float32/float64: rnnkit's
  C++ kernel (`rnnkit.core.kernels`);
- any other LSTM (peephole, layer norm with projection, layer norm on a GPU, or a plain LSTM
  with ``fast_path = False``): `rnnkit.core.fused_lstm`, one autograd node with TorchScript
  forward and backward loops;
- minGRU / minLSTM (``cell="mingru"``, ``"minlstm"``): a parallel scan (`rnnkit.core.scan`);
- GRU / RNN with ``fast_path = False``, or a user `Cell`: the cell's ``forward_sequence`` (a
  step loop unless the cell overrides it);
- ``zoneout``, ``recurrent_dropout`` in training, a hook on a cell, or an empty batch: a step
  loop calling the cell once per step (so a cell's hooks see every step).

Under ``torch.compile`` and ``torch.export`` the TorchScript loops, which cannot be traced,
give way to the step loop (see `rnnkit.core.fused_lstm`).

The LSTM equations therefore live in torch's kernels, in `rnnkit.core.fused_lstm` (with the
C++ kernel as its faster twin for the layer-norm LSTM) and in `LSTMCell.step` (one step, for
the step loop); the tests check the three against each other and against ``torch.nn.LSTM``.

Inputs are checked before any path runs, with the same error on every path: the feature
size, dtype (the layer's, except under autocast) and device, at least one time step
(``T = 0`` is an error, as in torch), ``lengths`` (integers in [1, T], one per sequence) and
the ``hx`` shapes. A batch of 0 sequences gives empty outputs, as torch does.

Example:
    >>> import torch, rnnkit
    >>> lstm = rnnkit.LSTM(8, 16, num_layers=2, batch_first=True, layer_norm=True)
    >>> out, (h, c) = lstm(torch.randn(3, 5, 8), lengths=torch.tensor([5, 2, 4]))
    >>> out.shape, h.shape
    (torch.Size([3, 5, 16]), torch.Size([2, 3, 16]))
"""

from __future__ import annotations

import operator
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

_UNTRACED_LSTM = torch.compiler.disable(_VF.lstm)


def _lstm(*args: Any) -> Any:
    """torch's LSTM kernel. torch.compile cannot trace its oneDNN version (nn.LSTM is not
    traced either: a graph break), so inside a compiled model it runs eagerly; torch.export
    traces it. (Only then: the disabled wrapper costs ~0.1 ms a call.)"""
    if torch.compiler.is_compiling():
        return _UNTRACED_LSTM(*args)
    return _VF.lstm(*args)


_KERNELS = {
    "LSTM": _lstm,
    "GRU": _VF.gru,
    "RNN_TANH": _VF.rnn_tanh,
    "RNN_RELU": _VF.rnn_relu,
}


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


def _positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a TypeError/ValueError naming the argument."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {number}")
    return number


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
            `reset_state` forgets it (e.g. at the start of each epoch). Not with
            ``bidirectional``: the backward direction reads each chunk from its end, so there
            is no state of it to carry into the next chunk.
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
        input_size = _positive_int("input_size", input_size)
        hidden_size = _positive_int("hidden_size", hidden_size)
        num_layers = _positive_int("num_layers", num_layers)
        for name, p in (
            ("dropout", dropout),
            ("recurrent_dropout", recurrent_dropout),
            ("zoneout", zoneout),
        ):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if stateful and bidirectional:
            raise ValueError(
                "stateful=True does not go with bidirectional=True: the backward direction "
                "reads each chunk from its end, so it has no state to carry into the next "
                "chunk; pass hx yourself or use a unidirectional layer"
            )
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

        cells: list[Cell] = []
        layer_input = input_size
        for _ in range(num_layers):
            for _ in range(self.num_directions):
                new_cell = cell(layer_input, hidden_size, **cell_options)
                if not isinstance(new_cell, Cell):
                    raise TypeError(f"cell must build a rnnkit Cell, got {type(new_cell)}")
                cells.append(new_cell)
            layer_input = cells[-1].output_size * self.num_directions
        if recurrent_dropout and not cells[0].supports_recurrent_dropout:
            raise ValueError(f"{type(cells[0]).__name__} does not support recurrent_dropout")
        self.cells = nn.ModuleList(cells)
        self._register_torch_names()
        self._torch_mode = self._find_torch_mode(cells[0])
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)  # flattens the weights, as below
        else:
            self.flatten_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    # ---- torch's names for the cells' parameters -------------------------------------------

    def _register_torch_names(self) -> None:
        """Register every cell parameter (and buffer) on the layer under torch's name too.

        Parameter ``weight_ih`` of cell ``i`` becomes ``weight_ih_l{layer}[_reverse]``; a
        dotted name (a user cell's ``linear.weight``) becomes ``linear_weight_l0``. The layer
        and the cell hold the *same* object, so every optimizer, ``.to()``,
        ``load_state_dict`` and ``functional_call`` (which unties and reties tied names)
        reaches both; the state dict keeps only the layer's names (see the hooks below).
        """
        # (name on the layer, cell index, dotted name in the cell, is a parameter)
        self._aliases: list[tuple[str, int, str, bool]] = []
        for index, cell in enumerate(self.cells):
            layer, direction = divmod(index, self.num_directions)
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name, parameter in cell.named_parameters():
                own_name = name.replace(".", "_") + suffix
                self.register_parameter(own_name, parameter)
                self._aliases.append((own_name, index, name, True))
            for name, buffer in cell.named_buffers():
                own_name = name.replace(".", "_") + suffix
                self.register_buffer(own_name, buffer)
                self._aliases.append((own_name, index, name, False))
        self._flat_weights_names = [name for name, _, _, is_param in self._aliases if is_param]
        self.register_state_dict_post_hook(_drop_cell_keys)
        self.register_load_state_dict_pre_hook(_alias_cell_keys)
        self.register_load_state_dict_post_hook(_after_load)

    def _cell_slot(self, index: int, name: str, is_param: bool) -> tuple[dict, str]:
        """The dict (``_parameters`` or ``_buffers``) and key that hold a cell's tensor."""
        module_path, _, leaf = name.rpartition(".")
        module = self.cells[index].get_submodule(module_path)
        return (module._parameters if is_param else module._buffers), leaf

    def _tie_cells(self) -> None:
        """Make each cell hold the layer's own parameter and buffer objects again (after a
        ``.to()`` or ``load_state_dict(assign=True)`` that replaced some of them)."""
        for own_name, index, name, is_param in self._aliases:
            own = (self._parameters if is_param else self._buffers).get(own_name)
            if own is not None:  # (a parametrized weight is computed: see _bind_cells)
                table, leaf = self._cell_slot(index, name, is_param)
                table[leaf] = own

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        """As torch's; assigning a parameter under torch's name (``layer.weight_hh_l0 =
        nn.Parameter(...)``) gives it to the cell too."""
        super().register_parameter(name, param)
        for own_name, index, cell_name, is_param in getattr(self, "_aliases", ()):
            if own_name == name and is_param:
                table, leaf = self._cell_slot(index, cell_name, is_param)
                table[leaf] = param

    def _bind_cells(self) -> list[tuple[dict, str, Tensor | None]]:
        """Let every cell use the tensor under the layer's name, where something replaced one
        side only: ``functional_call(..., tie_weights=False)`` with torch's names, or a
        parametrization of the layer's weight (``weight_norm(layer, "weight_hh_l0")``, whose
        value is computed at each access). Returns what to put back after the run; nothing
        to do (and nothing returned) normally."""
        replaced = []
        for own_name, index, name, is_param in self._aliases:
            table, leaf = self._cell_slot(index, name, is_param)
            own = getattr(self, own_name)
            if table[leaf] is not own:
                replaced.append((table, leaf, table[leaf]))
                table[leaf] = own
        return replaced

    def _apply(self, fn: Callable, recurse: bool = True) -> Recurrent:
        result = super()._apply(fn, recurse)
        self._tie_cells()
        self.flatten_parameters()
        return result

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.flatten_parameters()  # deepcopy and unpickling copy each parameter apart

    # ---- the flat weight buffer ------------------------------------------------------------

    def _flat_weights(self) -> list[Tensor]:
        """The fast path's weights in torch's order (current values: functional_call's too)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def flatten_parameters(self) -> None:
        """Keep the fast path's weights in one contiguous buffer, as torch's RNNs do on cuDNN.

        Every parameter stays a parameter with torch's name, but becomes a view of one flat
        buffer: in cuDNN's layout on a CUDA device (``torch._cudnn_rnn_flatten_weight``, so
        cuDNN does not repack the weights at every call), in torch's order elsewhere. Called
        on construction and after ``.to()``, ``load_state_dict(assign=True)``, deepcopy and
        unpickling. Nothing to do for cells without a fused kernel (layer norm, minGRU,
        user cells). As with torch's RNNs on a GPU, safetensors' own ``save_model`` refuses
        such shared storage; `rnnkit.engine.save_model` (and ``save_file(state_dict)``) work.
        """
        if self._torch_mode is None:
            return
        weights = self._flat_weights()
        if not all(isinstance(w, nn.Parameter) for w in weights):
            return  # inside functional_call: the temporary tensors are not ours to move
        first = weights[0]
        if any(w.dtype != first.dtype or w.device != first.device for w in weights):
            return
        if len({w.data_ptr() for w in weights}) != len(weights):
            return  # aliased parameters (tied by the user): leave them as they are
        with torch.no_grad():
            if first.is_cuda and torch.backends.cudnn.is_acceptable(first):
                self._flatten_for_cudnn(weights)
            elif not _is_flat(weights):
                flat = torch.cat([w.reshape(-1) for w in weights])
                offset = 0
                for w in weights:
                    w.set_(flat[offset : offset + w.numel()].view(w.shape))
                    offset += w.numel()

    def _flatten_for_cudnn(self, weights: list[Tensor]) -> None:
        import torch.backends.cudnn.rnn as cudnn_rnn

        if not torch._use_cudnn_rnn_flatten_weight():
            return
        cell = self.cells[0]
        proj_size = getattr(cell, "proj_size", 0)
        with torch.cuda.device_of(weights[0]):
            torch._cudnn_rnn_flatten_weight(
                weights,
                (4 if cell.bias else 2) + (1 if proj_size else 0),
                self.input_size,
                cudnn_rnn.get_cudnn_mode(self._torch_mode),
                self.hidden_size,
                proj_size,
                self.num_layers,
                self.batch_first,
                self.bidirectional,
            )

    # ---- choosing the path -----------------------------------------------------------------

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

    def reset_parameters(self) -> None:
        """Initialize every cell's parameters afresh, in place (as torch's RNN modules do:
        the flat buffer and the torch names stay)."""
        for cell in self.cells:
            if hasattr(cell, "reset_parameters"):
                cell.reset_parameters()

    def reset_state(self) -> None:
        """Forget the state carried between calls by ``stateful=True``."""
        self.carried_state = None

    def _runs_step_loop(self) -> bool:
        """Whether the cells must run one call per step: zoneout, recurrent dropout in
        training, or a hook on a cell (which then sees every step)."""
        regularized = self.zoneout > 0 or (self.training and self.recurrent_dropout > 0)
        return regularized or any(_has_hooks(cell) for cell in self.cells)

    def uses_fast_path(self) -> bool:
        """Whether the next forward call runs torch's fused kernel."""
        return self.fast_path and self._torch_mode is not None and not self._runs_step_loop()

    # ---- forward ---------------------------------------------------------------------------

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
            lengths: [B] real length (an integer in [1, T]) of each sequence of a padded
                batch.

        Raises:
            TypeError, ValueError: a message naming the argument and what was expected.
        """
        unbatched = False
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("give lengths or a PackedSequence, not both")
            self._check_features(input.data, "input.data")
            hx = self._checked_hx(hx, input.data, int(input.batch_sizes[0]))
            output, state = self._forward_packed(input, hx)
        elif isinstance(input, Tensor):
            if input.dim() not in (2, 3):
                raise ValueError(
                    f"input must be 2-D (unbatched) or 3-D, got shape {tuple(input.shape)}"
                )
            self._check_features(input, "input")
            unbatched = input.dim() == 2
            time_axis = 1 if self.batch_first and not unbatched else 0
            if input.shape[time_axis] == 0:
                raise ValueError(
                    f"input has 0 time steps (shape {tuple(input.shape)}); expected at least 1"
                )
            batch_size = None if unbatched else input.shape[1 - time_axis]
            hx = self._checked_hx(hx, input, batch_size)
            if unbatched:
                input = input.unsqueeze(0 if self.batch_first else 1)
                if lengths is not None:
                    lengths = torch.as_tensor(lengths).reshape(-1)
            output, state = self._forward_padded(input, hx, lengths)
            if unbatched:
                output = output.squeeze(0 if self.batch_first else 1)
        else:
            raise TypeError(f"input must be a Tensor or a PackedSequence, got {type(input)}")
        if self.stateful:  # batched, even for unbatched input: the next call expects that
            self.carried_state = _as_layer_state(detach_state(state))
        if unbatched:
            state = tuple(s.squeeze(1) for s in state)
        return output, _as_layer_state(state)

    def _check_features(self, input: Tensor, name: str) -> None:
        """The input's feature size and dtype must be the layer's."""
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}.size(-1) must be equal to input_size: expected {self.input_size}, "
                f"got {input.shape[-1]} (shape {tuple(input.shape)})"
            )
        if not input.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {input.dtype}")
        reference = next(iter(self._parameters.values()), None)
        if reference is not None and input.device != reference.device:
            raise ValueError(
                f"{name} is on {input.device} but the layer's parameters are on "
                f"{reference.device}: move one of them (input.to(...) or layer.to(...))"
            )
        if (
            reference is not None
            and input.dtype != reference.dtype
            and not torch._C._is_any_autocast_enabled()
        ):
            raise TypeError(
                f"{name} has dtype {input.dtype} but the layer's parameters are "
                f"{reference.dtype}: convert the input (input.to({reference.dtype})) or the "
                f"layer (layer.to({input.dtype}))"
            )

    def _checked_hx(
        self, hx: LayerState | None, input: Tensor, batch_size: int | None
    ) -> State | None:
        """``hx`` as a tuple of batched tensors [layers*directions, B, size], or a clear
        error; None stays None. ``batch_size`` is None for unbatched input (then ``hx`` is
        2-D, as in torch)."""
        if hx is None:
            return None
        sizes = self.cells[0].state_sizes
        kind = "a tensor" if len(sizes) == 1 else f"a tuple of {len(sizes)} tensors"
        state = (hx,) if isinstance(hx, Tensor) and len(sizes) == 1 else hx
        if not isinstance(state, (tuple, list)) or not all(isinstance(s, Tensor) for s in state):
            raise TypeError(f"hx must be {kind}, got {type(hx).__name__}")
        if len(state) != len(sizes):
            raise ValueError(f"hx must be {kind}, got {len(state)}")
        rows = self.num_layers * self.num_directions
        batch = () if batch_size is None else (batch_size,)
        expected = [(rows, *batch, size) for size in sizes]
        shapes = [tuple(s.shape) for s in state]
        if shapes != expected:
            what = "unbatched (2-D) input" if batch_size is None else f"a batch of {batch_size}"
            raise ValueError(f"hx must be {kind} of shapes {expected} for {what}, got {shapes}")
        for s in state:
            if s.dtype != input.dtype and not torch._C._is_any_autocast_enabled():
                raise TypeError(f"hx has dtype {s.dtype}, expected the input's {input.dtype}")
            if s.device != input.device:
                raise ValueError(f"hx is on {s.device}, expected the input's {input.device}")
        return tuple(s.unsqueeze(1) for s in state) if batch_size is None else tuple(state)

    def _forward_padded(
        self,
        input: Tensor,
        hx: State | None,
        lengths: Tensor | list[int] | None,  # noqa: A002
    ) -> tuple[Tensor, State]:
        batch_axis = 0 if self.batch_first else 1
        batch_size = input.shape[batch_axis]
        hx = self._initial_state(input, batch_size, hx)
        if lengths is not None:
            lengths = _checked_lengths(lengths, batch_size, input.shape[1 - batch_axis])
            if batch_size == 0:
                lengths = None  # no sequence, nothing to mask (and nothing to pack)
        # torch.export cannot pack (the packed shapes depend on the lengths' values): there,
        # lengths take the cell path, which masks instead.
        exporting_lengths = lengths is not None and torch.compiler.is_exporting()
        if not self.uses_fast_path() or exporting_lengths:
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
        self, packed: PackedSequence, hx: State | None
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

    def _initial_state(self, reference: Tensor, batch_size: int, hx: State | None) -> State:
        """hx as a tuple of [layers*directions, B, size] tensors: the given one, the carried
        one (stateful) or zeros."""
        if hx is None and self.stateful and self.carried_state is not None:
            hx = _state_tensors(self.carried_state)
            carried_batch = hx[0].shape[1]
            if carried_batch != batch_size:
                raise ValueError(
                    f"stateful layer carries a state for batch size {carried_batch}, got a "
                    f"batch of {batch_size}; call reset_state() first"
                )
        rows = self.num_layers * self.num_directions
        expected = [(rows, batch_size, size) for size in self.cells[0].state_sizes]
        if hx is None:
            return tuple(reference.new_zeros(shape) for shape in expected)
        if [tuple(s.shape) for s in hx] != expected:
            raise ValueError(
                f"hx must be {len(expected)} tensor(s) of shapes {expected}, "
                f"got {[tuple(s.shape) for s in hx]}"
            )
        return hx

    # ---- fast path: torch's fused kernels on our parameters --------------------------------

    def _run_fused(
        self,
        input: Tensor,
        batch_sizes: Tensor | None,
        hx: State,  # noqa: A002
    ) -> tuple[Tensor, State]:
        """Call torch's fused kernel, as torch.nn.LSTM/GRU/RNN.forward does."""
        kernel = _KERNELS[self._torch_mode]
        kernel_state: Any = hx if self._torch_mode == "LSTM" else hx[0]
        options = (
            self.cells[0].bias,
            self.num_layers,
            self.dropout,
            self.training,
            self.bidirectional,
        )
        weights = self._flat_weights()
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
        replaced = self._bind_cells()
        try:
            return self._forward_bound_cells(input, hx, lengths)
        finally:
            for table, leaf, tensor in replaced:
                table[leaf] = tensor

    def _forward_bound_cells(
        self,
        input: Tensor,
        hx: State,
        lengths: Tensor | None,  # noqa: A002
    ) -> tuple[Tensor, State]:
        x = input.transpose(0, 1) if self.batch_first else input
        steps = x.shape[0]
        mask = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            mask = torch.arange(steps, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)
            # Padding is never read, whatever it holds: a NaN there must not reach the
            # gradients through a masked product in some cell's step.
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
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
        # An empty batch takes the step loop too: the fused kernels' matmuls need rows.
        if not self._runs_step_loop() and x.shape[1] > 0:
            return cell.forward_sequence(x, state, mask)
        return self._run_steps(cell, x, state, mask)

    def _run_steps(
        self, cell: Cell, x: Tensor, state: State, mask: Tensor | None
    ) -> tuple[Tensor, State]:
        """The step loop, with recurrent dropout and zoneout when they are on."""
        step_options = {}
        if self.training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            # One mask per sequence, the same at every step (variational dropout).
            recurrent_mask = torch.bernoulli(torch.full_like(state[0], keep)) / keep
            step_options["recurrent_mask"] = recurrent_mask
        # Built-in cells project the inputs of all steps with one matmul beforehand; a cell
        # with hooks is called as a module at every step, so that the hooks see each step.
        projected = hasattr(cell, "project_input") and hasattr(cell, "step")
        projected = projected and not _has_hooks(cell)
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


# ---- state-dict hooks: torch's names only ----------------------------------------------------


def _cell_key(index: int, name: str) -> str:
    return f"cells.{index}.{name}"


def _drop_cell_keys(layer: Recurrent, state_dict: dict, prefix: str, metadata: Any) -> None:
    """state_dict() lists each tied tensor once, under torch's name (``weight_ih_l0``)."""
    for key in [k for k in state_dict if k.startswith(prefix + "cells.")]:
        del state_dict[key]


def _alias_cell_keys(
    layer: Recurrent, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
) -> None:
    """load_state_dict: give each cell the value stored under the layer's name."""
    for own_name, index, name, _ in layer._aliases:
        if prefix + own_name in state_dict:
            state_dict.setdefault(prefix + _cell_key(index, name), state_dict[
                prefix + own_name])  # fmt: skip


def _after_load(layer: Recurrent, incompatible: Any) -> None:
    """After load_state_dict: report a missing tensor once (under torch's name), and re-tie
    and re-flatten the weights (``assign=True`` replaces the parameters)."""
    missing = incompatible.missing_keys
    own = {own_name: _cell_key(index, name) for own_name, index, name, _ in layer._aliases}
    doubles = set()
    for key in missing:
        for own_name, cell_key in own.items():
            if key.endswith(own_name) and key[: -len(own_name)] + cell_key in missing:
                doubles.add(key[: -len(own_name)] + cell_key)
    missing[:] = [key for key in missing if key not in doubles]
    layer._tie_cells()
    layer.flatten_parameters()


def _has_hooks(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _is_flat(weights: list[Tensor]) -> bool:
    """Whether the weights are consecutive contiguous views of one storage, in order."""
    storage = weights[0].untyped_storage().data_ptr()
    offset = weights[0].storage_offset()
    for w in weights:
        if (
            w.untyped_storage().data_ptr() != storage
            or w.storage_offset() != offset
            or not w.is_contiguous()
        ):
            return False
        offset += w.numel()
    return True


def _checked_lengths(lengths: Tensor | list[int], batch_size: int, steps: int) -> Tensor:
    """``lengths`` as a LongTensor [B], each in [1, steps], or a clear error."""
    lengths = torch.as_tensor(lengths)
    if lengths.dtype == torch.bool or lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(
            f"lengths must hold integers, got {lengths.dtype} (a float length would be "
            "truncated; round it yourself)"
        )
    lengths = lengths.to(torch.long)
    if lengths.shape != (batch_size,):
        raise ValueError(
            f"lengths must have shape ({batch_size},) (one per sequence), "
            f"got {tuple(lengths.shape)}"
        )
    # The range needs the values: skipped while torch.compile or torch.export trace.
    if (
        len(lengths)
        and not torch.compiler.is_compiling()
        and (lengths.min() < 1 or lengths.max() > steps)
    ):
        raise ValueError(f"lengths must be between 1 and {steps} (the padded length), got "
                         f"{lengths.tolist()}")  # fmt: skip
    return lengths


def _state_tensors(state: LayerState) -> tuple[Tensor, ...]:
    return (state,) if isinstance(state, Tensor) else tuple(state)


def _as_layer_state(state: tuple[Tensor, ...]) -> LayerState:
    return state[0] if len(state) == 1 else state


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

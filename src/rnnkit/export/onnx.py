"""A network to an ONNX file, checked against PyTorch with onnxruntime; sessions to run it.

The graph is traced on a small example (batch 2, 6 steps) with the batch and step axes
dynamic, then run by onnxruntime on random inputs of other batch sizes and lengths
(`CHECKS`) and compared with PyTorch: a file is accepted only if every output agrees to
`TOLERANCE`.

Tracing is `rnnkit.core.export.export_onnx`'s: rnnkit's LSTM, GRU and RNN layers on torch's
fused-kernel path become ONNX's own recurrent operators (with ``lengths``: ``sequence_lens``,
so onnxruntime skips the padding the way PyTorch does). Layers on rnnkit's own cells (layer
norm, peephole, minGRU, minLSTM) export only with the example's number of steps fixed, so
they are refused up front: an exported application network takes any length.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.core.export import export_onnx, fixed_length_layers
from rnnkit.errors import UserError
from rnnkit.export.apps import GraphSpec

# Largest difference accepted between onnxruntime and PyTorch in float32: absolute for outputs
# up to 1 in magnitude, relative beyond (float32 carries about 7 digits, so logits of 50 cannot
# agree to 1e-5 absolute when the two runtimes sum in a different order).
TOLERANCE = 1e-5
EXAMPLE = (2, 6)  # (batch, steps) of the example the graph is traced with
# (batch, steps) of the random inputs checked: other batch sizes, one step, longer and shorter.
CHECKS = ((2, 6), (1, 1), (1, 9), (3, 1), (5, 13), (8, 4))


@dataclass
class Check:
    """How an exported graph compared with PyTorch on random inputs."""

    # largest |onnxruntime - PyTorch| / max(1, |PyTorch|) over every output and input
    max_difference: float
    shapes: list[tuple[int, int]]  # (batch, steps) of the inputs compared

    def to_dict(self) -> dict:
        return {
            "max_difference": self.max_difference,
            "difference": "|onnxruntime - PyTorch| / max(1, |PyTorch|)",
            "tolerance": TOLERANCE,
            "checked_batch_steps": [list(s) for s in self.shapes],
        }


def refuse_fixed_lengths(net: nn.Module) -> None:
    """A one-line UserError if a recurrent layer of ``net`` would export with the example's
    number of steps fixed (it runs rnnkit's own cells, off torch's fused kernels)."""
    fixed = fixed_length_layers(net)
    if fixed:
        layer = net.get_submodule(fixed[0])
        raise UserError(
            f"layer {fixed[0] or 'of the network'} ({type(layer).__name__}("
            f"{layer.extra_repr()})) runs rnnkit's own cells, which export to ONNX with a fixed "
            "number of steps only; layers on torch's fused kernels (plain LSTM, GRU, RNN) take "
            "any length"
        )


def export_graph(
    graph: nn.Module, example: tuple[Tensor, ...], spec: GraphSpec, path: Path
) -> None:
    """Write ``graph`` traced on ``example`` to the ONNX file ``path``."""
    with _native_warnings_held():
        try:
            export_onnx(
                graph,
                example,
                path,
                input_names=spec.inputs,
                output_names=spec.outputs,
                dynamic_axes=spec.dynamic_axes,
            )
        except torch.onnx.errors.OnnxExporterError as error:
            # e.g. "Unsupported: ONNX export of operator LSTM, LSTMs with projections. ..."
            reason = str(error).split("[Caused by")[0].split(". Please")[0].strip()
            raise UserError(f"the ONNX exporter refused the network: {reason[:300]}") from None


@contextlib.contextmanager
def _native_warnings_held() -> Iterator[None]:
    """Hold back what C++ code writes to file descriptor 2 (the exporter's shape-inference
    warnings about packed sequences, which the onnxruntime check makes moot); replay it if the
    block fails unexpectedly (a UserError already says what went wrong)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except UserError:
            raise
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of the ONNX file ``path``.

    Args:
        threads: intra-op threads; default: torch's, so both runtimes use the same cores.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; a failed run raises anyway
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(graph: nn.Module, session: Any, spec: GraphSpec, inputs: tuple[Tensor, ...]) -> float:
    """Largest |onnxruntime - PyTorch| / max(1, |PyTorch|) over the outputs of one input (the
    absolute difference where outputs are at most 1 in magnitude); inf if shapes differ."""
    with torch.no_grad():
        expected = graph(*inputs)
    got = session.run(None, {name: x.numpy() for name, x in zip(spec.inputs, inputs, strict=True)})
    worst = 0.0
    for want, have in zip(expected, got, strict=True):
        have = torch.from_numpy(have)
        if have.shape != want.shape:
            return float("inf")
        if want.numel():
            want = want.double()
            scale = want.abs().clamp(min=1.0)
            worst = max(worst, float(((have.double() - want).abs() / scale).max()))
    return worst


def check(graph: nn.Module, session: Any, spec: GraphSpec, random_inputs, seed: int = 0) -> Check:
    """Compare onnxruntime with PyTorch on random inputs of every shape in `CHECKS`.

    Args:
        random_inputs: ``(batch, steps, generator) -> inputs`` of the graph.

    Raises:
        UserError: an output differs by more than `TOLERANCE` (or has another shape).
    """
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch, steps in CHECKS:
        inputs = random_inputs(batch, steps, generator)
        try:
            difference = compare(graph, session, spec, inputs)
        except Exception as error:  # onnxruntime refuses the input: a shape fixed in the graph
            reason = str(error).strip().splitlines()[-1]
            raise UserError(
                f"onnxruntime failed on a batch of {batch} with {steps} steps ({reason}); "
                "nothing written"
            ) from None
        if not difference <= TOLERANCE:  # also catches NaN
            raise UserError(
                f"onnxruntime differs from PyTorch by {difference:.3g} (tolerance "
                f"{TOLERANCE:g}) on a batch of {batch} with {steps} steps; nothing written"
            )
        worst = max(worst, difference)
    return Check(worst, list(CHECKS))


def export_checked(
    module: nn.Module,
    spec: GraphSpec,
    random_inputs: Callable[[int, int, torch.Generator], tuple[Tensor, ...]],
    path: str | os.PathLike,
) -> Check:
    """Export any module of plain tensors in and out to ``path``, checked: what
    ``rnnkit export`` does for each network, and the way to export a model of your own.

    The module is traced on ``random_inputs(*EXAMPLE)`` and the file compared with PyTorch on
    ``random_inputs`` of every shape in `CHECKS`; on a mismatch the file is removed.

    Args:
        module: in eval mode; its forward takes the tensors named by ``spec.inputs`` (in order)
            and returns a tuple of the tensors named by ``spec.outputs``.
        random_inputs: ``(batch, steps, generator) -> inputs``.

    Example:
        >>> import rnnkit
        >>> class Layer(nn.Module):  # an rnnkit.LSTM with lengths, as plain tensors
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.lstm = rnnkit.LSTM(4, 8, batch_first=True, bidirectional=True)
        ...     def forward(self, x, lengths):
        ...         out, (h, c) = self.lstm(x, lengths=lengths)
        ...         return out, h, c
        >>> spec = GraphSpec(["x", "lengths"], ["out", "h", "c"], {"x": {0: "batch", 1: "steps"},
        ...     "lengths": {0: "batch"}, "out": {0: "batch", 1: "steps"}, "h": {1: "batch"},
        ...     "c": {1: "batch"}})
        >>> def random_inputs(batch, steps, generator):
        ...     lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
        ...     return torch.randn(batch, steps, 4, generator=generator), lengths
        >>> export_checked(Layer().eval(), spec, random_inputs, "lstm.onnx").max_difference < 1e-5
        True
    """
    path = Path(path)
    example = random_inputs(*EXAMPLE, torch.Generator().manual_seed(0))
    export_graph(module, example, spec, path)
    try:
        return check(module, session(path), spec, random_inputs)
    except BaseException:
        path.unlink(missing_ok=True)
        raise

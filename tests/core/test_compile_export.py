"""torch.compile, torch.export and ONNX give the eager numbers, for every layer configuration.

Which path runs under each is tabled in `rnnkit.core.fused_lstm.runs_fused` and
`rnnkit.core.export`. Compiling is the slow part (seconds per configuration with inductor on
CPU): plain, layer norm and minGRU compile in the fast suite, the rest under ``-m slow``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.core import fused_lstm, kernels
from rnnkit.core.export import export_onnx

CONFIGS = {
    "plain": lambda: rnnkit.LSTM(4, 6),
    "lengths": lambda: rnnkit.LSTM(4, 6),
    "bidirectional": lambda: rnnkit.LSTM(4, 6, num_layers=2, bidirectional=True),
    "layer_norm": lambda: rnnkit.LSTM(4, 6, layer_norm=True),
    "layer_norm_lengths_bidirectional": lambda: rnnkit.LSTM(
        4, 6, layer_norm=True, bidirectional=True
    ),
    "peephole": lambda: rnnkit.LSTM(4, 6, peephole=True),
    "proj_size": lambda: rnnkit.LSTM(4, 6, proj_size=3),
    "mingru": lambda: rnnkit.GRU(4, 6, cell="mingru"),
    "mingru_lengths": lambda: rnnkit.GRU(4, 6, cell="mingru"),
    "gru": lambda: rnnkit.GRU(4, 6),
}
FAST_COMPILE = ["plain", "layer_norm", "mingru"]


class Net(torch.nn.Module):
    """A layer and what reads it, as an application has it: outputs [T, B, F]."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.layer(x, None, lengths)[0]


def make(config: str) -> tuple[Net, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    x = torch.randn(7, 3, 4)
    args = (x, torch.tensor([7, 2, 5])) if "lengths" in config else (x,)
    return Net(CONFIGS[config]()), args


def outputs_and_gradients(net: torch.nn.Module, args) -> list[torch.Tensor]:
    x = args[0].clone().requires_grad_()
    output = net(x, *args[1:])
    weights = torch.linspace(-1, 1, output.numel()).view_as(output)
    return [output, *torch.autograd.grad((output * weights).sum(), [x, *net.parameters()])]


@pytest.mark.parametrize(
    "config",
    [c if c in FAST_COMPILE else pytest.param(c, marks=pytest.mark.slow) for c in CONFIGS],
)
def test_torch_compile_gives_the_eager_outputs_and_gradients(config):
    net, args = make(config)
    expected = outputs_and_gradients(net, args)
    torch._dynamo.reset()
    # fullgraph for rnnkit's own paths. torch's fused kernels run eagerly inside a compiled
    # model (graph breaks), as for nn.LSTM: compile does not trace its oneDNN LSTM kernel
    # nor packing.
    fullgraph = not net.layer.uses_fast_path()
    compiled = torch.compile(net, fullgraph=fullgraph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = outputs_and_gradients(compiled, args)
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=1e-5)
    # Compiled, peephole and projection run the step loop where eager runs the fused loop:
    # their weight gradients differ by float32 rounding (up to 4e-5, see test_cells).
    for a, b in zip(got[1:], expected[1:], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("config", CONFIGS)
def test_torch_export_gives_the_eager_outputs(config):
    net, args = make(config)
    program = torch.export.export(net, args)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*args), net(*args), atol=1e-6, rtol=1e-6)
        if "lengths" in config:  # the lengths are an input of the graph, not a constant
            other = (args[0], torch.tensor([3, 7, 1]))
            torch.testing.assert_close(program.module()(*other), net(*other), atol=1e-6, rtol=0)


def test_the_layer_norm_kernel_is_one_registered_operator_in_exported_programs():
    if not kernels.layer_norm_lstm_available():
        pytest.skip("the C++ kernel could not be built here")
    net, args = make("layer_norm")
    graph = str(torch.export.export(net, args).graph)
    assert "rnnkit.layer_norm_lstm" in graph
    assert "aten.sigmoid" not in graph  # not the step loop


def test_layer_norm_operator_passes_torch_library_opcheck():
    """Schema, fake (meta) implementation, autograd registration: torch's own checks."""
    if not kernels.layer_norm_lstm_available():
        pytest.skip("the C++ kernel could not be built here")
    generator = torch.Generator().manual_seed(0)

    def randn(*shape, grad=True):
        return torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=grad)

    mask = torch.arange(5)[:, None] < torch.tensor([5, 3])
    args = (randn(5, 2, 12), randn(2, 3), randn(2, 3), mask, randn(12, 3), randn(12),
            randn(3), randn(3), True)  # fmt: skip
    torch.library.opcheck(fused_lstm.layer_norm_lstm, args)


# ---- ONNX ------------------------------------------------------------------------------------


def onnx_outputs(path, x: torch.Tensor, lengths: torch.Tensor | None) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()} | ({} if lengths is None else {"lengths": lengths.numpy()})
    return session.run(None, feed)[0]


ONNX_CONFIGS = [c for c in CONFIGS if c != "proj_size"]  # see the test below


@pytest.mark.parametrize("config", ONNX_CONFIGS)
def test_onnx_export_matches_onnxruntime_on_other_batches_and_lengths(config, tmp_path):
    net, args = make(config)
    with_lengths = len(args) == 2
    names = ["x", "lengths"] if with_lengths else ["x"]
    axes = {"x": {0: "steps", 1: "batch"}, "lengths": {0: "batch"}, "y": {0: "steps", 1: "batch"}}
    fixed = export_onnx(
        net, args, tmp_path / "net.onnx", input_names=names, output_names=["y"],
        dynamic_axes={name: axes[name] for name in [*names, "y"]},
    )  # fmt: skip
    assert (fixed == ["layer"]) == (not net.layer.eval().uses_fast_path())
    generator = torch.Generator().manual_seed(1)
    # Other batch sizes and lengths; other step counts only where the graph allows them.
    shapes = [(7, 3), (7, 5), (7, 1)] + ([] if fixed else [(12, 2), (1, 4)])
    for steps, batch in shapes:
        x = torch.randn(steps, batch, 4, generator=generator)
        lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
        lengths[0] = steps
        lengths = lengths if with_lengths else None
        with torch.no_grad():
            expected = net(x, lengths).numpy()
        got = onnx_outputs(tmp_path / "net.onnx", x, lengths)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5, err_msg=str((steps, batch)))


def test_onnx_export_of_an_lstm_with_projection_is_refused_by_torch(tmp_path):
    # torch's exporter has no rule for LSTMs with projections (neither for nn.LSTM): an
    # error, never a wrong graph.
    net, args = make("proj_size")
    with pytest.raises(torch.onnx.errors.OnnxExporterError, match="projections"):
        export_onnx(net, args, tmp_path / "net.onnx", input_names=["x"], output_names=["y"])

"""Cells: torch's single-step cells as the reference, and the fused LSTM loop against the
cell's own step loop."""

import doctest

import pytest
import torch

import rnnkit.core.cells
import rnnkit.core.layer
from rnnkit.core import fused_lstm
from rnnkit.core.cells import Cell, GRUCell, LSTMCell, RNNCell


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: RNNCell(3, 5), lambda: torch.nn.RNNCell(3, 5)),
        (lambda: RNNCell(3, 5, nonlinearity="relu"),
         lambda: torch.nn.RNNCell(3, 5, nonlinearity="relu")),
        (lambda: GRUCell(3, 5), lambda: torch.nn.GRUCell(3, 5)),
        (lambda: LSTMCell(3, 5), lambda: torch.nn.LSTMCell(3, 5)),
        (lambda: LSTMCell(3, 5, bias=False), lambda: torch.nn.LSTMCell(3, 5, bias=False)),
    ],
    ids=["rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_no_bias"],
)  # fmt: skip
def test_cells_match_torch_cells_with_the_same_state_dict(ours, theirs):
    reference, cell = theirs().double(), ours().double()
    cell.load_state_dict(reference.state_dict())
    x = torch.randn(4, 3, dtype=torch.float64)
    state = tuple(torch.randn(4, n, dtype=torch.float64) for n in cell.state_sizes)
    output, new_state = cell(x, state)
    expected = reference(x, state if len(state) > 1 else state[0])
    expected = expected if isinstance(expected, tuple) else (expected,)
    for a, b in zip(new_state, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert output is new_state[0]


LSTM_OPTIONS = [
    {},
    {"layer_norm": True},
    {"peephole": True},
    {"proj_size": 2},
    {"bias": False, "layer_norm": True},
    {"layer_norm": True, "peephole": True, "proj_size": 3},
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("options", LSTM_OPTIONS, ids=str)
def test_fused_lstm_sequence_equals_the_step_loop(options, with_mask, dtype):
    """LSTMCell.forward_sequence (one fused autograd node) against the generic loop over
    LSTMCell.forward: outputs, final state and every gradient."""
    torch.manual_seed(0)
    cell = LSTMCell(4, 5, **options).to(dtype)
    x = torch.randn(7, 3, 4, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(3, n, dtype=dtype, requires_grad=True) for n in cell.state_sizes)
    mask = torch.arange(7)[:, None] < torch.tensor([7, 2, 5]) if with_mask else None
    weights = torch.Generator().manual_seed(1)

    def outputs_and_gradients(forward_sequence):
        output, (h, c) = forward_sequence(cell, x, state, mask)
        loss = sum((t * torch.randn(t.shape, generator=weights, dtype=dtype).to(t.dtype)).sum()
                   for t in (output, h, c))  # fmt: skip
        inputs = [x, *state, *cell.parameters()]
        return [output, h, c], torch.autograd.grad(loss, inputs)

    fused = outputs_and_gradients(LSTMCell.forward_sequence)
    # The reference is the step loop in float64 on the same values: the float32 step loop
    # rounds too (3e-5 from float64 in the weight gradients with layer norm + peephole +
    # projection, where the fused result is 1e-5 from it), so it cannot referee 1e-5.
    cell, x = cell.double(), x.detach().double().requires_grad_()
    state = tuple(s.detach().double().requires_grad_() for s in state)
    weights.manual_seed(1)
    loop = outputs_and_gradients(Cell.forward_sequence)
    # float32: layer-norm gradients sum many rounded terms, hence a relative part.
    atol, rtol = (1e-10, 0.0) if dtype == torch.float64 else (1e-5, 1e-4)
    for a, b in zip(fused[0] + list(fused[1]), loop[0] + list(loop[1]), strict=True):
        torch.testing.assert_close(a, b.to(dtype), atol=atol, rtol=rtol)


def test_fused_lstm_python_fallback_equals_torchscript(monkeypatch):
    """Where TorchScript is unavailable the same loops run as Python: same numbers."""
    torch.manual_seed(0)
    cell = LSTMCell(3, 4, layer_norm=True, peephole=True, proj_size=2).double()
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(6)[:, None] < torch.tensor([6, 4])

    def run():
        output, (h, c) = cell.forward_sequence(x, cell.initial_state(2), mask)
        return [output, h, c, *torch.autograd.grad(output.square().sum() + c.sum(), x)]

    scripted = run()
    python_loops = (fused_lstm._sequence_forward, fused_lstm._sequence_backward)
    monkeypatch.setattr(fused_lstm, "_loops", lambda: python_loops)
    for a, b in zip(run(), scripted, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [3, 20], ids=["mkl", "onednn"])  # the kernel's two matmuls
def test_layer_norm_kernel_equals_the_torchscript_loop(batch, dtype):
    """The C++ kernel against the loops it replaces: outputs, final state, every gradient,
    with lengths; and its no-gradient (inference) mode."""
    if fused_lstm.kernels.layer_norm_lstm() is None:
        pytest.skip("the C++ kernel could not be built here (no compiler)")
    torch.manual_seed(0)
    cell = LSTMCell(4, 6, layer_norm=True).to(dtype)
    x = torch.randn(9, batch, 4, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(batch, 6, dtype=dtype, requires_grad=True) for _ in range(2))
    mask = torch.arange(9)[:, None] < torch.randint(1, 10, (batch,))

    def run():
        output, (h, c) = cell.forward_sequence(x, state, mask)
        loss = (output * torch.linspace(-1, 1, 6, dtype=dtype)).sum() + h.sum() - c.square().sum()
        grads = torch.autograd.grad(loss, [x, *state, *cell.parameters()])
        with torch.no_grad():
            inference = cell.forward_sequence(x, state, mask)[0]
        return [output, h, c, inference, *grads]

    kernel = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_lstm.kernels, "layer_norm_lstm", lambda: None)
        loop = run()
    atol, rtol = (1e-10, 0.0) if dtype == torch.float64 else (1e-5, 1e-4)
    for a, b in zip(kernel, loop, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def test_layer_norm_lstm_cell_normalizes_as_ba_et_al():
    """With unit gains and zero shifts, the gates see standardized pre-activations: scaling
    the recurrent weights or the inputs changes nothing (layer norm is scale invariant)."""
    torch.manual_seed(0)
    cell = LSTMCell(3, 6, layer_norm=True, bias=False).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    state = (torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64))
    expected = cell(x, state)[1]
    with torch.no_grad():
        cell.weight_hh.mul_(7.0)
    actual = cell(3.0 * x, state)[1]
    for a, b in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=0)  # up to the norm's epsilon


def test_peephole_connections_change_the_gates():
    torch.manual_seed(0)
    cell = LSTMCell(3, 4, peephole=True).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    state = (torch.zeros(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64))
    with_peepholes = cell(x, state)[1]
    with torch.no_grad():
        for weight in (cell.weight_ci, cell.weight_cf, cell.weight_co):
            weight.zero_()
    plain = LSTMCell(3, 4).double()
    plain.load_state_dict(cell.state_dict(), strict=False)
    without = plain(x, state)[1]
    torch.testing.assert_close(cell(x, state)[1][1], without[1])
    assert not torch.allclose(with_peepholes[1], without[1])


def test_initial_state_follows_the_cell_dtype():
    cell = LSTMCell(3, 5, proj_size=2).double()
    h, c = cell.initial_state(4)
    assert h.shape == (4, 2) and c.shape == (4, 5) and h.dtype == torch.float64
    assert torch.all(h == 0) and torch.all(c == 0)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("module", [rnnkit.core.cells, rnnkit.core.layer])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0

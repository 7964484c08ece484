"""Exactness of every layer path: the global random generator is left alone (same seed, same
weights), and NaN/Inf propagate as in the step loop, forward and backward.

The paths: torch's fused kernels (fast path), the C++ layer-norm LSTM kernel, the
TorchScript loops of `rnnkit.core.fused_lstm` (with the kernel switched off), the parallel
scan of minGRU/minLSTM, and the generic step loop `Cell.forward_sequence` (the reference).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import rnnkit
from rnnkit.core import fused_lstm, kernels
from rnnkit.core.cells import Cell

#: Layers whose forward pass leaves the fast path (torch's kernels draw nothing either).
LAYERS = {
    "layer_norm": lambda: rnnkit.LSTM(3, 6, num_layers=2, dropout=0.3, layer_norm=True),
    "peephole": lambda: rnnkit.LSTM(3, 6, num_layers=2, dropout=0.3, peephole=True),
    "proj_size": lambda: rnnkit.LSTM(3, 6, num_layers=2, dropout=0.3, proj_size=2),
    "mingru": lambda: rnnkit.GRU(3, 6, num_layers=2, dropout=0.3, cell="mingru"),
    "minlstm": lambda: rnnkit.LSTM(3, 6, num_layers=2, dropout=0.3, cell="minlstm"),
}


def forget_first_use_checks() -> None:
    """Make the next forward call a 'first use' again: the checks cached per process
    (oneDNN's availability, the C++ kernel) run anew, as in a fresh or resumed process."""
    fused_lstm._onednn_linear.cache_clear()
    kernels.layer_norm_lstm.cache_clear()


@pytest.mark.parametrize("name", LAYERS)
def test_forward_and_backward_draw_nothing_from_the_global_generator(name):
    layer = LAYERS[name]().eval()  # eval: no dropout, so nothing may draw at all
    x = torch.linspace(-2, 2, 5 * 2 * 3).reshape(5, 2, 3)
    forget_first_use_checks()
    before = torch.get_rng_state()
    output, _ = layer(x)
    output.sum().backward()
    assert torch.equal(torch.get_rng_state(), before)


def train_a_few_steps(make_layer) -> dict[str, torch.Tensor]:
    """Seed, build, then 4 Adam steps with dropout and input noise (both from the global
    generator): the weights after them."""
    torch.manual_seed(0)
    layer = make_layer()
    head = torch.nn.Linear(layer.hidden_size, 1)
    optimizer = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=1e-2)
    x = torch.linspace(-1, 1, 7 * 4 * 3).reshape(7, 4, 3)
    for _ in range(4):
        noisy = x + 0.1 * torch.randn_like(x)
        output, _ = layer(noisy)
        loss = head(output[-1]).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.clone() for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("name", ["layer_norm", "peephole", "mingru"])
def test_same_seed_twice_in_one_process_gives_the_same_weights(name):
    forget_first_use_checks()  # the first run pays the first-use checks, the second not
    first = train_a_few_steps(LAYERS[name])
    second = train_a_few_steps(LAYERS[name])
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


# ---- non-finite values -----------------------------------------------------------------------


def poisoned_input(kind: str, dtype: torch.dtype) -> torch.Tensor:
    """[T=6, B=3, 4] smooth values with one NaN (or +Inf and -Inf) in sequences 0 and 2;
    sequence 1 stays finite."""
    x = torch.linspace(-1.5, 1.5, 6 * 3 * 4, dtype=dtype).reshape(6, 3, 4).sin()
    if kind == "nan":
        x[2, 0, 1] = math.nan
        x[4, 2, 3] = math.nan
    else:
        x[2, 0, 1] = math.inf
        x[3, 2, 0] = -math.inf
    return x


def assert_same_non_finite(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """NaN, +Inf and -Inf at the same positions, the finite rest close."""
    for test in (torch.isnan, torch.isposinf, torch.isneginf):
        assert torch.equal(test(a), test(b)), f"{what}: {test.__name__} positions differ"
    finite = torch.isfinite(a)
    tolerance = 1e-10 if a.dtype == torch.float64 else 1e-5
    torch.testing.assert_close(a[finite], b[finite], atol=tolerance, rtol=tolerance, msg=what)


def outputs_and_gradients(run, cell: Cell, x: torch.Tensor, mask, parameters=None) -> list:
    """Outputs and final state of ``run(cell, x, state, mask)``, and the gradients of a
    weighted sum of them for the input, the initial state and every parameter (the cell's,
    unless ``parameters`` are given)."""
    x = x.clone().requires_grad_()
    state = tuple(
        torch.full((x.shape[1], n), 0.1, dtype=x.dtype, requires_grad=True)
        for n in cell.state_sizes
    )
    output, final = run(cell, x, state, mask)
    results = [output, *final]
    loss = sum((r * torch.linspace(-1, 1, r.numel(), dtype=r.dtype).view_as(r)).sum()
               for r in results)  # fmt: skip
    parameters = list(cell.parameters() if parameters is None else parameters)
    return results + list(torch.autograd.grad(loss, [x, *state, *parameters]))


def sequence_path(cell, x, state, mask):
    return cell.forward_sequence(x, state, mask)  # fused loop, C++ kernel or parallel scan


def step_loop(cell, x, state, mask):
    return Cell.forward_sequence(cell, x, state, mask)  # the cell's step T times: reference


CELL_PATHS = {
    "kernel": lambda: rnnkit.core.LSTMCell(4, 5, layer_norm=True),
    "torchscript_layer_norm": lambda: rnnkit.core.LSTMCell(4, 5, layer_norm=True),
    "torchscript_peephole": lambda: rnnkit.core.LSTMCell(4, 5, peephole=True, proj_size=3),
    "torchscript_plain": lambda: rnnkit.core.LSTMCell(4, 5),  # the layer's fast path
    "scan_mingru": lambda: rnnkit.core.MinGRUCell(4, 5),
    "scan_minlstm": lambda: rnnkit.core.MinLSTMCell(4, 5),
}


@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", ["nan", "inf"])
@pytest.mark.parametrize("path", CELL_PATHS)
def test_non_finite_inputs_propagate_as_in_the_step_loop(path, kind, dtype, masked, monkeypatch):
    if path == "kernel" and kernels.layer_norm_lstm() is None:
        pytest.skip("the C++ kernel could not be built here")
    if path.startswith("torchscript"):
        monkeypatch.setattr(kernels, "layer_norm_lstm", lambda: None)
    torch.manual_seed(0)
    cell = CELL_PATHS[path]().to(dtype)
    x = poisoned_input(kind, dtype)
    mask = torch.arange(6)[:, None] < torch.tensor([6, 4, 5]) if masked else None
    got = outputs_and_gradients(sequence_path, cell, x, mask)
    expected = outputs_and_gradients(step_loop, cell, x, mask)
    if masked:
        # Padded steps are never read (as in torch's packed kernels): zero gradient. The
        # step loop computes them and then multiplies by zero, which gives NaN after an Inf.
        grad_x = 1 + len(cell.state_sizes)
        assert (got[grad_x][~mask] == 0).all()
        expected[grad_x] = expected[grad_x].masked_fill(~mask.unsqueeze(-1), 0.0)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_same_non_finite(a, b, f"result {index}")
    assert torch.isfinite(got[0][:, 1]).all()  # the clean sequence stays clean
    assert not torch.isfinite(got[0]).all() or kind == "inf"


@pytest.mark.parametrize("kind", ["nan", "inf"])
@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_non_finite_inputs_on_the_fast_path_propagate_as_in_the_step_loop(mode, kind):
    torch.manual_seed(0)
    layer = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}[mode](4, 5).double()
    assert layer.uses_fast_path()
    cell = {"LSTM": rnnkit.core.LSTMCell, "GRU": rnnkit.core.GRUCell}[mode](4, 5).double()
    cell.load_state_dict(
        {name: getattr(layer, f"{name}_l0") for name, _ in cell.named_parameters()}
    )

    def fast_path(cell, x, state, mask):
        hx = tuple(s.unsqueeze(0) for s in state)
        output, final = layer(x, hx if mode == "LSTM" else hx[0])
        final = final if isinstance(final, tuple) else (final,)
        return output, tuple(s[0] for s in final)

    x = poisoned_input(kind, torch.float64)
    got = outputs_and_gradients(fast_path, cell, x, None, layer.parameters())
    expected = outputs_and_gradients(step_loop, cell, x, None)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_same_non_finite(a, b, f"result {index}")


@pytest.mark.parametrize("kind", ["nan", "inf"])
@pytest.mark.parametrize("path", [*CELL_PATHS, "fast_path"])
def test_non_finite_values_in_the_padding_change_nothing(path, kind, monkeypatch):
    """As with torch's packed sequences, whatever fills the padding is never read: outputs,
    final state and every gradient are those of zero padding, bit for bit."""
    if path == "kernel" and kernels.layer_norm_lstm() is None:
        pytest.skip("the C++ kernel could not be built here")
    if path.startswith("torchscript"):
        monkeypatch.setattr(kernels, "layer_norm_lstm", lambda: None)
    torch.manual_seed(0)
    if path == "fast_path":
        layer = rnnkit.LSTM(4, 5)
        cell = rnnkit.core.LSTMCell(4, 5)  # for its state sizes only

        def run(cell, x, state, mask):
            output, (h, c) = layer(x, tuple(s.unsqueeze(0) for s in state), lengths=lengths)
            return output, (h[0], c[0])

        parameters = list(layer.parameters())
    else:
        cell, run, parameters = CELL_PATHS[path](), sequence_path, None
    lengths = torch.tensor([6, 4, 5])
    mask = torch.arange(6)[:, None] < lengths
    clean = poisoned_input("nan", torch.float32).nan_to_num().masked_fill(~mask[..., None], 0)
    poisoned = clean.masked_fill(~mask[..., None], math.nan if kind == "nan" else -math.inf)
    expected = outputs_and_gradients(run, cell, clean, mask, parameters)
    got = outputs_and_gradients(run, cell, poisoned, mask, parameters)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert torch.equal(a, b), f"result {index}"


# ---- autocast --------------------------------------------------------------------------------


def max_error_under_bfloat16_autocast(layer: torch.nn.Module, x: torch.Tensor) -> float:
    """Largest output error of ``layer`` under CPU bfloat16 autocast against the same layer
    in float64."""
    reference = copy.deepcopy(layer).double()
    with torch.no_grad():
        exact = reference(x.double())[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = layer(x)[0]
    return (output.double() - exact).abs().max().item()


def test_min_gru_under_autocast_is_as_accurate_as_torch_gru_at_2048_steps():
    # The scan accumulates in float32 and the gates are computed in float32 from the
    # bfloat16 projection. In bfloat16 throughout the error was 1e-2, nn.GRU's 4e-3.
    torch.manual_seed(0)
    x = torch.randn(2048, 4, 8)
    min_gru = max_error_under_bfloat16_autocast(rnnkit.GRU(8, 64, cell="mingru"), x)
    min_lstm = max_error_under_bfloat16_autocast(rnnkit.LSTM(8, 64, cell="minlstm"), x)
    torch_gru = max_error_under_bfloat16_autocast(torch.nn.GRU(8, 64), x)
    assert min_gru <= torch_gru
    assert min_lstm <= torch_gru


AUTOCAST_LAYERS = {
    "layer_norm_kernel": lambda: rnnkit.LSTM(4, 8, layer_norm=True),
    "peephole_loop": lambda: rnnkit.LSTM(4, 8, peephole=True, proj_size=3),
    "mingru_scan": lambda: rnnkit.GRU(4, 8, cell="mingru"),
}


@pytest.mark.parametrize("name", AUTOCAST_LAYERS)
def test_rnnkit_recurrences_run_in_float32_under_autocast(name):
    """The custom autograd Functions cast their inputs to float32 under autocast (and the C++
    kernel, which has no bfloat16 version, is never handed bfloat16): training and inference
    run, in float32, close to the result without autocast."""
    torch.manual_seed(0)
    layer = AUTOCAST_LAYERS[name]()
    x = torch.randn(12, 3, 4, requires_grad=True)
    expected = layer(x)[0]
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = layer(x)[0]
        with torch.no_grad():
            inference = layer(x)[0]
    (grad,) = torch.autograd.grad(output.sum(), x)
    assert output.dtype == inference.dtype == grad.dtype == torch.float32
    for got, want in ((output, expected), (inference, expected), (grad, expected_grad)):
        torch.testing.assert_close(got, want, atol=3e-2, rtol=3e-2)  # bfloat16 projections


def test_every_custom_autograd_function_declares_its_autocast_behaviour():
    functions = [
        fused_lstm._Linear,
        fused_lstm.FusedLSTMSequence,
        rnnkit.core.scan._LinearScan,
    ]
    for function in functions:  # torch.amp.custom_fwd/custom_bwd wrap them (functools.wraps)
        assert hasattr(function.forward, "__wrapped__"), function.__name__
        assert hasattr(function.backward, "__wrapped__"), function.__name__
    found = {
        cls
        for module in (fused_lstm, rnnkit.core.scan)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, torch.autograd.Function)
    }
    assert found <= set(functions), "a new autograd Function: declare its autocast behaviour"
    # The C++ kernel is a torch.library operator with an autocast rule (float32).
    for key in ("AutocastCPU", "AutocastCUDA"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key("rnnkit::layer_norm_lstm", key)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(4, 5, zoneout=0.2),
        lambda: rnnkit.LSTM(4, 5, recurrent_dropout=0.2),
        lambda: rnnkit.GRU(4, 5, zoneout=0.2, num_layers=2),
        lambda: rnnkit.LSTM(4, 5, peephole=True, bidirectional=True),
        lambda: rnnkit.GRU(4, 5, cell="mingru"),
    ],
    ids=["lstm-zoneout", "lstm-recurrent-dropout", "gru-zoneout-2-layers", "peephole-bi", "mingru"],
)
def test_the_layer_never_reads_its_padding_on_any_path(make):
    """The step loops of zoneout and recurrent dropout too: a NaN in the padding changes no
    output and no gradient (training mode, the same random masks for both runs)."""
    torch.manual_seed(0)
    layer = make().train()
    lengths = torch.tensor([6, 4, 5])
    mask = torch.arange(6)[:, None] < lengths
    clean = torch.randn(6, 3, 4).masked_fill(~mask[..., None], 0)

    def run(x):
        x = x.clone().requires_grad_(True)
        torch.manual_seed(1)
        output, _ = layer(x, lengths=lengths)
        grads = torch.autograd.grad(output.sum(), [x, *layer.parameters()])
        return [output, *grads]

    expected = run(clean)
    got = run(clean.masked_fill(~mask[..., None], math.nan))
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert torch.equal(a, b), f"result {index}"

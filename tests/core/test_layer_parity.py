"""rnnkit.LSTM/GRU/RNN against torch.nn.LSTM/GRU/RNN loaded with the same state dict.

Both of rnnkit's paths are checked: the fast path (torch's fused kernels) and the cell path
(rnnkit's own cells, forced with ``layer.fast_path = False``).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
KINDS = {
    "lstm": (rnnkit.LSTM, torch.nn.LSTM, {}),
    "gru": (rnnkit.GRU, torch.nn.GRU, {}),
    "rnn_tanh": (rnnkit.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
}


@st.composite
def configurations(draw):
    kind = draw(st.sampled_from(sorted(KINDS)))
    hidden = draw(st.integers(2, 5))
    return {
        "kind": kind,
        "input_size": draw(st.integers(1, 4)),
        "hidden_size": hidden,
        "num_layers": draw(st.integers(1, 3)),
        "bidirectional": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "proj_size": draw(st.integers(0, hidden - 1)) if kind == "lstm" else 0,
        "bias": draw(st.booleans()),
        "steps": draw(st.integers(1, 6)),
        "batch": draw(st.integers(1, 4)),
        "with_lengths": draw(st.booleans()),
        "with_state": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def build_pair(config, dtype):
    """A torch module and an rnnkit module with the same weights (copied torch -> rnnkit)."""
    ours_class, torch_class, extra = KINDS[config["kind"]]
    args = {k: config[k] for k in ("input_size", "hidden_size", "num_layers", "bidirectional",
                                   "batch_first", "bias")}  # fmt: skip
    if config["kind"] == "lstm":
        args["proj_size"] = config["proj_size"]
    torch.manual_seed(config["seed"])
    reference = torch_class(**args, **extra).to(dtype)
    ours = ours_class(**args, **extra).to(dtype)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def make_inputs(config, dtype):
    generator = torch.Generator().manual_seed(config["seed"] + 1)
    steps, batch = config["steps"], config["batch"]
    shape = (batch, steps) if config["batch_first"] else (steps, batch)
    x = torch.randn(*shape, config["input_size"], dtype=dtype, generator=generator)
    lengths = None
    if config["with_lengths"]:
        lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
        lengths[0] = steps  # the padded length is the longest sequence, as torch requires
    hx = None
    if config["with_state"]:
        rows = config["num_layers"] * (2 if config["bidirectional"] else 1)
        out_size = config["proj_size"] or config["hidden_size"]
        hx = torch.randn(rows, batch, out_size, dtype=dtype, generator=generator)
        if config["kind"] == "lstm":
            c = torch.randn(rows, batch, config["hidden_size"], dtype=dtype, generator=generator)
            hx = (hx, c)
    return x, lengths, hx


def run_torch(module, x, lengths, hx, batch_first):
    """torch's module on a padded batch: packed when there are lengths."""
    if lengths is None:
        return module(x, hx)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    output, state = module(packed, hx)
    output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=x.shape[
        1 if batch_first else 0])  # fmt: skip
    return output, state


def flat(state):
    return [state] if isinstance(state, torch.Tensor) else list(state)


def results_and_gradients(module, runner, x, hx):
    """Outputs, final states and the gradients of a fixed random loss wrt every input."""
    x = x.clone().requires_grad_()
    hx_leaves = None if hx is None else [s.clone().requires_grad_() for s in flat(hx)]
    hx_arg = None if hx is None else (hx_leaves[0] if len(hx_leaves) == 1 else tuple(hx_leaves))
    output, state = runner(module, x, hx_arg)
    tensors = [output, *flat(state)]
    generator = torch.Generator().manual_seed(0)
    loss = sum((t * torch.randn(t.shape, generator=generator, dtype=t.dtype)).sum()
               for t in tensors)  # fmt: skip
    leaves = [x, *(hx_leaves or []), *module.parameters()]
    gradients = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [t.detach() for t in tensors], gradients


def assert_all_close(ours, theirs, tolerance):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        if a is None or b is None:
            assert a is None and b is None
            continue
        torch.testing.assert_close(a, b, atol=tolerance, rtol=0)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "cell_path"])
@settings(max_examples=20, deadline=None, derandomize=True)
@given(config=configurations())
def test_matches_torch(config, fast_path, dtype):
    reference, ours = build_pair(config, dtype)
    ours.fast_path = fast_path
    assert ours.uses_fast_path() == fast_path
    x, lengths, hx = make_inputs(config, dtype)
    batch_first = config["batch_first"]
    expected = results_and_gradients(
        reference, lambda m, x_, h_: run_torch(m, x_, lengths, h_, batch_first), x, hx
    )
    actual = results_and_gradients(ours, lambda m, x_, h_: m(x_, h_, lengths=lengths), x, hx)
    assert_all_close(actual[0], expected[0], TOLERANCE[dtype])
    assert_all_close(actual[1], expected[1], TOLERANCE[dtype])


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "cell_path"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_packed_sequence_input_as_torch(kind, fast_path):
    config = {"kind": kind, "input_size": 3, "hidden_size": 4, "num_layers": 2,
              "bidirectional": True, "batch_first": False, "bias": True, "seed": 3,
              "proj_size": 2 if kind == "lstm" else 0}  # fmt: skip
    reference, ours = build_pair(config, torch.float64)
    ours.fast_path = fast_path
    x = torch.randn(5, 4, 3, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([3, 5, 1, 5]), enforce_sorted=False)
    expected_output, expected_state = reference(packed)
    output, state = ours(packed)
    assert isinstance(output, torch.nn.utils.rnn.PackedSequence)
    torch.testing.assert_close(output.data, expected_output.data, atol=1e-12, rtol=0)
    assert torch.equal(output.batch_sizes, expected_output.batch_sizes)
    assert torch.equal(output.unsorted_indices, expected_output.unsorted_indices)
    assert_all_close(flat(state), flat(expected_state), 1e-12)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "cell_path"])
def test_unbatched_input_as_torch(fast_path):
    torch.manual_seed(0)
    reference = torch.nn.LSTM(3, 4, num_layers=2).double()
    ours = rnnkit.LSTM(3, 4, num_layers=2).double()
    ours.load_state_dict(reference.state_dict())
    ours.fast_path = fast_path
    x = torch.randn(6, 3, dtype=torch.float64)
    expected_output, expected_state = reference(x)
    output, state = ours(x)
    assert_all_close([output, *state], [expected_output, *expected_state], 1e-12)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_state_dict_moves_both_ways_unchanged(kind):
    ours_class, torch_class, extra = KINDS[kind]
    options = {"num_layers": 3, "bidirectional": True, **extra}
    if kind == "lstm":
        options["proj_size"] = 3
    ours = ours_class(5, 6, **options)
    reference = torch_class(5, 6, **options)
    # Same names in the same order, same shapes.
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in reference.named_parameters()
    ]
    reference.load_state_dict(ours.state_dict())  # rnnkit -> torch
    for name, value in ours.state_dict().items():
        assert torch.equal(reference.state_dict()[name], value)
    fresh = ours_class(5, 6, **options)
    fresh.load_state_dict(reference.state_dict())  # torch -> rnnkit
    for name, value in reference.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value)
    assert hasattr(fresh, "weight_ih_l2_reverse")


def test_cell_path_follows_parameters_moved_by_to():
    """After .double() the cells see the layer's new parameters (no stale copies)."""
    torch.manual_seed(0)
    reference = torch.nn.GRU(3, 4).double()
    ours = rnnkit.GRU(3, 4)
    ours.load_state_dict(reference.state_dict())
    ours = ours.double()
    ours.fast_path = False
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], reference(x)[0], atol=1e-12, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "cell_path"])
def test_cuda_matches_cpu(fast_path):
    torch.manual_seed(0)
    cpu = rnnkit.LSTM(3, 8, num_layers=2, bidirectional=True, batch_first=True).double()
    gpu = rnnkit.LSTM(3, 8, num_layers=2, bidirectional=True, batch_first=True).double()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    gpu.fast_path = cpu.fast_path = fast_path
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1])
    expected_output, (expected_h, expected_c) = cpu(x, lengths=lengths)
    output, (h, c) = gpu(x.cuda(), lengths=lengths.cuda())
    for a, b in ((output, expected_output), (h, expected_h), (c, expected_c)):
        torch.testing.assert_close(a.cpu(), b, atol=1e-10, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_layer_norm_lstm_matches_cpu():
    torch.manual_seed(0)
    cpu = rnnkit.LSTM(3, 8, layer_norm=True, peephole=True).double()
    gpu = rnnkit.LSTM(3, 8, layer_norm=True, peephole=True).double()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.cuda()
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    expected = cpu(x)[0]
    torch.testing.assert_close(gpu(x.cuda())[0].cpu(), expected, atol=1e-10, rtol=0)

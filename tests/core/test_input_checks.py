"""Bad input gets one clear error naming the argument, the same on every path of the layer.

The paths: torch's fused kernel (fast path), the cell path forced with ``fast_path = False``,
the layer-norm LSTM (C++ kernel or TorchScript loop) and the minGRU parallel scan. Each check
runs on all four; none may return a result for a wrong input.
"""

from __future__ import annotations

import pytest
import torch

import rnnkit


def fast() -> rnnkit.LSTM:
    return rnnkit.LSTM(4, 8, num_layers=2)


def cell_path() -> rnnkit.LSTM:
    layer = rnnkit.LSTM(4, 8, num_layers=2)
    layer.fast_path = False
    return layer


def layer_norm() -> rnnkit.LSTM:
    return rnnkit.LSTM(4, 8, num_layers=2, layer_norm=True)


def mingru() -> rnnkit.GRU:
    return rnnkit.GRU(4, 8, num_layers=2, cell="mingru")


PATHS = {"fast": fast, "cell": cell_path, "layer_norm": layer_norm, "mingru": mingru}
paths = pytest.mark.parametrize("make", PATHS.values(), ids=PATHS.keys())


def state_like(layer, batch: int, dtype=torch.float32, rows: int | None = None):
    """A correct hx for ``layer`` (a tensor or a tuple), optionally with other rows/dtype."""
    rows = rows or layer.num_layers * layer.num_directions
    parts = [torch.zeros(rows, batch, size, dtype=dtype) for size in layer.cells[0].state_sizes]
    return parts[0] if len(parts) == 1 else tuple(parts)


@paths
def test_wrong_feature_size_raises_instead_of_running(make):
    layer = make()
    with pytest.raises(ValueError, match=r"input.size\(-1\) must be equal to input_size: "
                       r"expected 4, got 7"):  # fmt: skip
        layer(torch.randn(5, 2, 7))
    with pytest.raises(ValueError, match="expected 4, got 3"):
        layer(torch.randn(5, 3))  # unbatched


@paths
def test_wrong_feature_size_of_a_packed_sequence_raises(make):
    packed = torch.nn.utils.rnn.pack_sequence([torch.randn(3, 7), torch.randn(2, 7)])
    with pytest.raises(ValueError, match=r"input.data.size\(-1\) must be equal to input_size"):
        make()(packed)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "hidden_size must be at least 1, got 0"),
        (-4, ValueError, "hidden_size must be at least 1, got -4"),
        (4.5, TypeError, "hidden_size must be an int, got float 4.5"),
        (True, TypeError, "hidden_size must be an int, got True"),
    ],
)
@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_bad_hidden_size_is_refused_at_construction(value, error, message, cell):
    with pytest.raises(error, match=message):
        rnnkit.LSTM(4, value, cell=cell)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"input_size": 0}, ValueError, "input_size must be at least 1"),
        ({"input_size": "4"}, TypeError, "input_size must be an int"),
        ({"num_layers": 0}, ValueError, "num_layers must be at least 1"),
        ({"num_layers": 2.0}, TypeError, "num_layers must be an int"),
    ],
)
def test_bad_sizes_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        rnnkit.GRU(**{"input_size": 4, "hidden_size": 8, **kwargs})


@pytest.mark.parametrize(("value", "error"), [(1.5, TypeError), (-1, ValueError), (8, ValueError)])
def test_bad_proj_size_is_refused_at_construction(value, error):
    with pytest.raises(error, match="proj_size must be"):
        rnnkit.LSTM(4, 8, proj_size=value)


def test_numpy_integers_are_sizes_too():
    numpy = pytest.importorskip("numpy")
    layer = rnnkit.GRU(numpy.int64(4), numpy.int32(8))
    assert layer(torch.randn(3, 2, 4))[0].shape == (3, 2, 8)
    assert type(layer.hidden_size) is int


@paths
def test_input_dtype_other_than_the_layers_is_a_type_error(make):
    with pytest.raises(TypeError, match=r"input has dtype torch.float64 but the layer's "
                       r"parameters are torch.float32"):  # fmt: skip
        make()(torch.randn(5, 2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="must be a floating-point tensor, got torch.int64"):
        make()(torch.ones(5, 2, 4, dtype=torch.long))


@paths
def test_input_on_another_device_than_the_layer_is_refused(make):
    with pytest.raises(ValueError, match="input is on meta but the layer's parameters are on cpu"):
        make()(torch.randn(5, 2, 4, device="meta"))


@paths
def test_hx_dtype_other_than_the_inputs_is_a_type_error(make):
    layer = make()
    with pytest.raises(TypeError, match="hx has dtype torch.float64, expected the input's"):
        layer(torch.randn(5, 2, 4), state_like(layer, 2, dtype=torch.float64))


@paths
def test_an_empty_batch_gives_empty_results_with_or_without_lengths(make):
    layer = make()
    for lengths in (None, torch.zeros(0, dtype=torch.long)):
        x = torch.randn(5, 0, 4, requires_grad=True)
        output, state = layer(x, lengths=lengths)
        assert output.shape == (5, 0, 8)
        for part in state if isinstance(state, tuple) else (state,):
            assert part.shape == (2, 0, 8)
        output.sum().backward()  # a graph, though an empty one
        assert x.grad.shape == x.shape


@paths
def test_zero_time_steps_is_an_error_on_every_path(make):
    """torch's nn.LSTM raises for T = 0 on its fused kernel; every path does the same."""
    layer = make()
    for x in (torch.randn(0, 2, 4), torch.randn(0, 4)):
        with pytest.raises(ValueError, match="input has 0 time steps"):
            layer(x)
    layer.batch_first = True
    with pytest.raises(ValueError, match="input has 0 time steps"):
        layer(torch.randn(2, 0, 4))


@paths
@pytest.mark.parametrize(
    "lengths",
    [torch.tensor([4.0, 2.5]), torch.tensor([4.0, 2.0]), [4.0, 2.0], torch.tensor([True, True])],
    ids=["float_fraction", "float_whole", "float_list", "bool"],
)
def test_non_integer_lengths_are_refused_not_truncated(make, lengths):
    with pytest.raises(TypeError, match="lengths must hold integers"):
        make()(torch.randn(5, 2, 4), lengths=lengths)


@paths
@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([5, 0], "between 1 and 5"),
        ([6, 2], "between 1 and 5"),
        ([-1, 2], "between 1 and 5"),
        ([5, 2, 1], r"shape \(2,\)"),
    ],
)
def test_lengths_out_of_range_or_of_the_wrong_shape(make, lengths, message):
    with pytest.raises(ValueError, match=f"lengths must .*{message}"):
        make()(torch.randn(5, 2, 4), lengths=lengths)


@paths
def test_wrong_hx_shapes_are_refused(make):
    layer = make()
    x = torch.randn(5, 2, 4)
    with pytest.raises(ValueError, match=r"hx must be .* for a batch of 2"):
        layer(x, state_like(layer, 3))  # batch 3 for a batch of 2
    with pytest.raises(ValueError, match=r"hx must be .* for a batch of 2"):
        layer(x, state_like(layer, 2, rows=1))  # 1 row for 2 layers
    with pytest.raises(ValueError, match=r"hx must be .* for unbatched \(2-D\) input"):
        layer(torch.randn(5, 4), state_like(layer, 1))  # 3-D hx for 2-D input
    with pytest.raises(TypeError, match="hx must be"):
        layer(x, [[1.0]])


def test_lstm_hx_must_be_a_pair():
    layer = rnnkit.LSTM(4, 8)
    with pytest.raises(ValueError, match="hx must be a tuple of 2 tensors, got 1"):
        layer(torch.randn(5, 2, 4), (torch.zeros(1, 2, 8),))
    with pytest.raises(TypeError, match="hx must be a tuple of 2 tensors, got Tensor"):
        layer(torch.randn(5, 2, 4), torch.zeros(1, 2, 8))


@paths
def test_unbatched_hx_and_lengths_work(make):
    layer = make()
    x = torch.randn(5, 4)
    hx = state_like(layer, 1)
    hx = tuple(h.squeeze(1) for h in hx) if isinstance(hx, tuple) else hx.squeeze(1)
    output, _ = layer(x, hx, lengths=[3])
    batched, _ = layer(x.unsqueeze(1), lengths=[3])
    torch.testing.assert_close(output, batched.squeeze(1))
    assert torch.all(output[3:] == 0)


def test_stateful_unbatched_input_carries_its_state_across_calls():
    torch.manual_seed(0)
    layer = rnnkit.GRU(4, 8, stateful=True)
    x = torch.randn(9, 4)
    whole, h_whole = layer(x)
    layer.reset_state()
    first, _ = layer(x[:4])
    second, h = layer(x[4:])
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(h, h_whole)
    assert h.shape == (1, 8)


def test_stateful_with_bidirectional_is_refused_at_construction():
    with pytest.raises(ValueError, match="stateful=True does not go with bidirectional=True"):
        rnnkit.LSTM(4, 8, bidirectional=True, stateful=True)


def test_input_of_the_wrong_type_or_rank():
    layer = rnnkit.GRU(4, 8)
    with pytest.raises(TypeError, match="input must be a Tensor or a PackedSequence"):
        layer([[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match="input must be 2-D"):
        layer(torch.randn(2, 3, 5, 4))


def test_autocast_input_of_another_dtype_is_allowed():
    """As torch: under autocast the kernels cast, so a bfloat16 input is not an error."""
    layer = rnnkit.GRU(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = layer(torch.randn(5, 2, 4, dtype=torch.bfloat16))
    assert output.shape == (5, 2, 8)

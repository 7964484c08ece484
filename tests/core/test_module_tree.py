"""The layer as an ordinary module tree: cells are submodules (hooks, ``named_modules``,
``apply``, ``functional_call`` see them) while the layer keeps torch's parameter names, and
the fast path's weights live in one flat buffer as torch keeps them for cuDNN."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.func import functional_call

import rnnkit
from rnnkit.core.cells import LSTMCell
from rnnkit.engine import load_model_state, save_model

PATHS = {
    "fast": lambda: rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2),
    "cell": lambda: rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2),
    "layer_norm": lambda: rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, layer_norm=True),
    "mingru": lambda: rnnkit.GRU(3, 5, num_layers=2, bidirectional=True, cell="mingru"),
}


def make(name: str) -> rnnkit.Recurrent:
    layer = PATHS[name]().double()
    layer.fast_path = name != "cell"
    return layer


def fast_weights(layer) -> list[torch.Tensor]:
    return [getattr(layer, name) for name in layer._flat_weights_names]


def assert_flat(layer) -> None:
    """Every fast-path weight is a parameter and a contiguous view of one buffer, in
    torch's order."""
    weights = fast_weights(layer)
    assert all(isinstance(w, torch.nn.Parameter) for w in weights)
    storage = weights[0].untyped_storage()
    assert all(w.untyped_storage().data_ptr() == storage.data_ptr() for w in weights)
    offsets = [w.storage_offset() for w in weights]
    sizes = [w.numel() for w in weights]
    assert offsets == [sum(sizes[:i]) + offsets[0] for i in range(len(sizes))]
    assert storage.nbytes() == sum(sizes) * weights[0].element_size()


def assert_tied(layer) -> None:
    """Each cell holds the layer's own parameter objects."""
    for own_name, index, name, is_param in layer._aliases:
        if is_param:
            assert layer.cells[index].get_parameter(name) is getattr(layer, own_name)


# ---- cells in the module tree ----------------------------------------------------------------


def test_cells_are_submodules_and_parameters_keep_torchs_names():
    layer = rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    reference = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    names = [name for name, _ in layer.named_modules()]
    assert names == ["", "cells", "cells.0", "cells.1", "cells.2", "cells.3"]
    visited = []
    layer.apply(lambda m: visited.append(type(m).__name__))
    assert visited.count("LSTMCell") == 4
    assert [n for n, _ in layer.named_parameters()] == [n for n, _ in reference.named_parameters()]
    assert list(layer.state_dict()) == list(reference.state_dict())
    assert len(list(layer.parameters())) == len(list(reference.parameters()))
    assert layer.cells[3].weight_hr is layer.weight_hr_l1_reverse
    assert_tied(layer)


def test_apply_reaches_the_cells_parameters():
    layer = rnnkit.LSTM(3, 5, num_layers=2)

    def orthogonal_recurrent_weights(module):
        if isinstance(module, LSTMCell):
            torch.nn.init.orthogonal_(module.weight_hh)

    layer.apply(orthogonal_recurrent_weights)
    w = layer.weight_hh_l1.detach()
    torch.testing.assert_close(w.T @ w, torch.eye(5), atol=1e-5, rtol=0)


def test_a_missing_key_is_reported_once_under_torchs_name():
    state = rnnkit.LSTM(3, 5).state_dict()
    del state["weight_hh_l0"]
    with pytest.raises(RuntimeError, match="Missing key") as error:
        rnnkit.LSTM(3, 5).load_state_dict(state)
    assert "weight_hh_l0" in str(error.value) and "cells." not in str(error.value)


def test_nested_layers_load_and_save_with_torch_names():
    model = torch.nn.Sequential(rnnkit.GRU(3, 4), torch.nn.Linear(4, 1))
    keys = list(model.state_dict())
    assert keys == ["0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0",
                    "1.weight", "1.bias"]  # fmt: skip
    other = torch.nn.Sequential(rnnkit.GRU(3, 4), torch.nn.Linear(4, 1))
    other.load_state_dict(model.state_dict())
    assert torch.equal(other[0].cells[0].weight_hh, model[0].weight_hh_l0)


# ---- functional_call -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PATHS)
def test_functional_call_equals_a_loaded_layer_and_leaves_no_stale_tensors(name):
    torch.manual_seed(0)
    layer = make(name)
    original = {k: v.clone() for k, v in layer.state_dict().items()}
    new = {k: torch.randn_like(v, requires_grad=True) for k, v in layer.named_parameters()}
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 4])

    output, _ = functional_call(layer, new, (x,), {"lengths": lengths})
    loaded = make(name)
    loaded.load_state_dict({k: v.detach() for k, v in new.items()})
    expected, _ = loaded(x, lengths=lengths)
    torch.testing.assert_close(output, expected, atol=1e-12, rtol=0)
    output.sum().backward()  # the gradient reaches the given tensors
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in new.values())

    # Afterwards the layer and its cells hold their own parameters again.
    assert_tied(layer)
    for key, value in layer.state_dict().items():
        assert torch.equal(value, original[key])
    for cell in layer.cells:
        for parameter in cell.parameters():
            assert isinstance(parameter, torch.nn.Parameter) and parameter.grad is None
    unchanged, _ = layer(x, lengths=lengths)
    fresh = make(name)
    fresh.load_state_dict(original)
    torch.testing.assert_close(unchanged, fresh(x, lengths=lengths)[0], atol=0, rtol=0)


@pytest.mark.parametrize("name", ["cell", "layer_norm"])
def test_functional_call_without_tying_still_reaches_the_cells(name):
    """With ``tie_weights=False`` only the layer's names get the new tensors; the cell path
    must use them all the same, and put nothing stale in the cells."""
    torch.manual_seed(0)
    layer = make(name)
    new = {k: torch.randn_like(v) for k, v in layer.named_parameters()}
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    output, _ = functional_call(layer, new, (x,), tie_weights=False)
    loaded = make(name)
    loaded.load_state_dict(new)
    torch.testing.assert_close(output, loaded(x)[0], atol=1e-12, rtol=0)
    assert_tied(layer)


def test_assigning_a_parameter_under_torchs_name_reaches_the_cell():
    layer = rnnkit.GRU(3, 4)
    layer.fast_path = False
    layer.weight_hh_l0 = torch.nn.Parameter(torch.zeros(12, 4))
    assert layer.cells[0].weight_hh is layer.weight_hh_l0
    reference = torch.nn.GRU(3, 4)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(layer(x)[0], reference(x)[0])


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "cell_path"])
def test_weight_norm_on_a_torch_named_weight_works_as_on_torchs_module(fast_path):
    torch.manual_seed(0)
    reference = torch.nn.LSTM(3, 4, num_layers=2).double()
    layer = rnnkit.LSTM(3, 4, num_layers=2).double()
    layer.load_state_dict(reference.state_dict())
    layer.fast_path = fast_path
    for module in (reference, layer):
        torch.nn.utils.parametrizations.weight_norm(module, "weight_hh_l1")
        with torch.no_grad():  # a gain that changes the weight
            module.parametrizations.weight_hh_l1.original0.mul_(0.5)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[0], reference(x)[0], atol=1e-12, rtol=0)
    # The run left no computed tensor in the cell.
    assert isinstance(layer.cells[1].weight_hh, torch.nn.Parameter)


# ---- hooks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fast", "cell", "layer_norm"])
def test_a_forward_hook_on_a_cell_sees_every_step(name):
    torch.manual_seed(0)
    layer = make(name)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 3])
    expected, expected_state = layer(x, lengths=lengths)
    seen = []
    handle = layer.cells[1].register_forward_hook(
        lambda cell, args, output: seen.append((args[0].shape, output[0].shape))
    )
    assert not layer.uses_fast_path()  # a hooked cell runs step by step
    output, state = layer(x, lengths=lengths)
    # The backward direction of layer 0, at every step.
    assert seen == [((2, 3), (2, layer.cells[1].output_size))] * 6
    torch.testing.assert_close(output, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(state, expected_state, atol=1e-12, rtol=0)
    handle.remove()
    assert layer.uses_fast_path() == (name == "fast")


def test_a_forward_hook_can_change_what_a_cell_computes():
    layer = rnnkit.GRU(3, 4, zoneout=0.0)
    x = torch.randn(5, 2, 3)
    layer.cells[0].register_forward_hook(
        lambda cell, args, output: (output[0] * 0, (output[0] * 0,))
    )
    output, h = layer(x)
    assert torch.all(output == 0) and torch.all(h == 0)


# ---- the flat weight buffer ------------------------------------------------------------------

FLAT_KINDS = {
    "lstm_proj": lambda: rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2),
    "lstm_no_bias": lambda: rnnkit.LSTM(3, 5, num_layers=2, bias=False),
    "gru": lambda: rnnkit.GRU(3, 5, num_layers=3, bidirectional=True),
    "rnn_relu": lambda: rnnkit.RNN(3, 5, nonlinearity="relu"),
}


@pytest.mark.parametrize("kind", FLAT_KINDS)
def test_fast_path_weights_are_views_of_one_buffer(kind):
    layer = FLAT_KINDS[kind]()
    assert_flat(layer)
    assert_tied(layer)


def test_cells_without_a_fused_kernel_keep_separate_weights():
    layer = rnnkit.LSTM(3, 5, layer_norm=True)
    layer.flatten_parameters()  # accepted, and nothing to do
    storages = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    assert len(storages) == len(list(layer.parameters()))


def test_optimizer_steps_keep_the_views_and_match_torch():
    torch.manual_seed(0)
    reference = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True).double()
    layer = rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True).double()
    layer.load_state_dict(reference.state_dict())
    optimizers = [torch.optim.Adam(m.parameters(), lr=0.1) for m in (reference, layer)]
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    for _ in range(3):
        for module, optimizer in zip((reference, layer), optimizers, strict=True):
            optimizer.zero_grad()
            module(x)[0].square().sum().backward()
            optimizer.step()
    assert_flat(layer)
    assert_tied(layer)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(layer.state_dict()[key], value, atol=1e-12, rtol=0)


def test_to_load_state_dict_deepcopy_and_assign_keep_the_buffer():
    layer = rnnkit.LSTM(3, 5, num_layers=2, proj_size=2)
    layer = layer.double()
    assert_flat(layer)
    assert_tied(layer)
    assert layer.cells[0].weight_ih.dtype == torch.float64
    reference = torch.nn.LSTM(3, 5, num_layers=2, proj_size=2).double()
    layer.load_state_dict(reference.state_dict())
    assert_flat(layer)
    layer.load_state_dict(reference.state_dict(), assign=True)  # new parameter objects
    assert_flat(layer)
    assert_tied(layer)
    assert torch.equal(layer.weight_hr_l1, reference.weight_hr_l1)
    copied = copy.deepcopy(layer)
    assert_flat(copied)
    assert_tied(copied)
    assert copied.weight_ih_l0.data_ptr() != layer.weight_ih_l0.data_ptr()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(copied(x)[0], reference(x)[0], atol=1e-12, rtol=0)


def test_reset_parameters_draws_new_weights_in_place():
    layer = rnnkit.LSTM(3, 5, num_layers=2, bidirectional=True)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.reset_parameters()
    assert_flat(layer)
    assert_tied(layer)
    for key, value in layer.state_dict().items():
        assert not torch.equal(value, before[key])
        assert value.abs().max() <= 1 / 5**0.5  # torch's U(-1/sqrt(H), 1/sqrt(H))


def test_state_dict_round_trip_through_a_model_folder(tmp_path):
    layer = rnnkit.GRU(3, 5, num_layers=2)
    save_model(tmp_path / "model", layer, {"hidden_size": 5})
    weights, _ = load_model_state(tmp_path / "model")
    fresh = rnnkit.GRU(3, 5, num_layers=2)
    fresh.load_state_dict(weights)
    assert_flat(fresh)
    for key, value in layer.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    reference = torch.nn.GRU(3, 5, num_layers=2)
    reference.load_state_dict(weights)  # and into torch's module


def test_flatten_parameters_puts_separated_weights_back_together():
    layer = rnnkit.GRU(3, 5, num_layers=2)
    with torch.no_grad():
        for weight in fast_weights(layer):
            weight.set_(weight.clone())  # each its own storage now
    expected = layer(torch.ones(2, 1, 3))[0]
    layer.flatten_parameters()
    assert_flat(layer)
    torch.testing.assert_close(layer(torch.ones(2, 1, 3))[0], expected, atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_weights_are_in_cudnns_buffer_and_match_torch():
    torch.manual_seed(0)
    reference = torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True, proj_size=4).cuda()
    layer = rnnkit.LSTM(3, 8, num_layers=2, bidirectional=True, proj_size=4)
    layer.load_state_dict(reference.state_dict())
    layer = layer.cuda()
    weights = fast_weights(layer)
    assert len({w.untyped_storage().data_ptr() for w in weights}) == 1
    assert_tied(layer)
    x = torch.randn(7, 4, 3, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "weights are not part of single contiguous chunk"
        output, (h, c) = layer(x)
    expected, (expected_h, expected_c) = reference(x)
    for a, b in ((output, expected), (h, expected_h), (c, expected_c)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

"""The layer's own features: cells and options under gradcheck, lengths, regularization,
stateful use, user cells, and clear errors."""

import pytest
import torch

import rnnkit
from rnnkit.core.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnkit.core.layer import Recurrent

CELL_OPTIONS = {
    "rnn_tanh": (RNNCell, {}),
    "rnn_relu": (RNNCell, {"nonlinearity": "relu"}),
    "gru": (GRUCell, {}),
    "lstm": (LSTMCell, {}),
    "lstm_peephole": (LSTMCell, {"peephole": True}),
    "lstm_layer_norm": (LSTMCell, {"layer_norm": True}),
    "lstm_proj": (LSTMCell, {"proj_size": 2}),
    "lstm_all_options": (LSTMCell, {"layer_norm": True, "peephole": True, "proj_size": 2}),
}


class LeakyCell(Cell):
    """The user cell of the documentation: a leaky tanh unit."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size, state_sizes=(hidden_size,))
        self.linear = torch.nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t, state):
        (h,) = state
        h = 0.5 * h + 0.5 * torch.tanh(self.linear(torch.cat([x_t, h], dim=-1)))
        return h, (h,)


def layer_function(layer, lengths, seed=None):
    """(x, *hx) -> (output, *final state) for gradcheck; reseeds if the layer is random."""

    def run(x, *hx):
        if seed is not None:
            torch.manual_seed(seed)
        output, state = layer(x, hx[0] if len(hx) == 1 else tuple(hx), lengths=lengths)
        return (output, *(state if isinstance(state, tuple) else (state,)))

    return run


def gradcheck_layer(layer, seed=None):
    """gradcheck in float64 with respect to the input, the initial state and every parameter."""
    layer = layer.double()
    x = torch.randn(4, 3, layer.input_size, dtype=torch.float64, requires_grad=True)
    rows = layer.num_layers * layer.num_directions
    hx = [torch.randn(rows, 3, size, dtype=torch.float64, requires_grad=True)
          for size in layer.cells[0].state_sizes]  # fmt: skip
    lengths = torch.tensor([4, 2, 3])
    assert torch.autograd.gradcheck(layer_function(layer, lengths, seed), (x, *hx))
    names = [name for name, _ in layer.named_parameters()]

    def of_parameters(*values):
        if seed is not None:
            torch.manual_seed(seed)
        parameters = dict(zip(names, values, strict=True))
        output, _ = torch.func.functional_call(
            layer, parameters, (x.detach(),), {"lengths": lengths}
        )
        return output

    values = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    # fast_mode checks random projections of the Jacobian: seconds instead of a minute.
    assert torch.autograd.gradcheck(of_parameters, values, fast_mode=True)


@pytest.mark.parametrize("name", sorted(CELL_OPTIONS))
def test_gradcheck_every_cell_and_option(name):
    cell, options = CELL_OPTIONS[name]
    torch.manual_seed(0)
    layer = Recurrent(cell, 2, 3, num_layers=2, bidirectional=True, **options)
    gradcheck_layer(layer)
    layer.fast_path = False  # the cell path too, where the fast path would run
    gradcheck_layer(layer)


def test_gradcheck_zoneout_in_eval():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(2, 3, zoneout=0.3, layer_norm=True).eval()
    gradcheck_layer(layer)


def test_gradcheck_zoneout_and_recurrent_dropout_in_training_with_fixed_masks():
    torch.manual_seed(0)
    layer = rnnkit.GRU(2, 3, zoneout=0.2, recurrent_dropout=0.3).train()
    gradcheck_layer(layer, seed=7)


def test_gradcheck_user_cell():
    torch.manual_seed(0)
    gradcheck_layer(Recurrent(LeakyCell, 2, 3, bidirectional=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2),
        lambda: rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, layer_norm=True),
        lambda: rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, zoneout=0.3).eval(),
        lambda: rnnkit.RNN(3, 4, bidirectional=True, cell=LeakyCell),
    ],
    ids=["lstm_fast", "lstm_layer_norm", "gru_zoneout_eval", "user_cell"],
)
def test_padded_batch_equals_each_sequence_alone(make):
    torch.manual_seed(0)
    layer = make().double()
    lengths = [6, 2, 4, 1]
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    output, state = layer(x, lengths=torch.tensor(lengths))
    states = state if isinstance(state, tuple) else (state,)
    for b, length in enumerate(lengths):
        alone_output, alone_state = layer(x[:length, b : b + 1])
        alone_states = alone_state if isinstance(alone_state, tuple) else (alone_state,)
        torch.testing.assert_close(output[:length, b : b + 1], alone_output, atol=1e-12, rtol=0)
        assert torch.all(output[length:, b] == 0)
        for s, alone in zip(states, alone_states, strict=True):
            torch.testing.assert_close(s[:, b : b + 1], alone, atol=1e-12, rtol=0)


def identity_relu_rnn(**options):
    """h_t = relu(mask * h_{t-1}): the recurrence only copies the state, through the mask."""
    layer = rnnkit.RNN(1, 64, nonlinearity="relu", bias=False, **options)
    with torch.no_grad():
        layer.weight_ih_l0.zero_()
        layer.weight_hh_l0.copy_(torch.eye(64))
    return layer


def test_recurrent_dropout_mask_is_constant_over_time_and_off_in_eval():
    torch.manual_seed(0)
    layer = identity_relu_rnn(recurrent_dropout=0.5).train()
    h0 = torch.ones(1, 8, 64)
    output, _ = layer(torch.zeros(10, 8, 1), h0)
    dropped = output == 0
    # A unit dropped at the first step stays dropped; one kept stays kept: one mask per sequence.
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))
    assert 0.3 < dropped[0].float().mean() < 0.7
    # Kept units are scaled by 1 / keep at every step (inverted dropout).
    torch.testing.assert_close(output[:, ~dropped[0]].amax(), torch.tensor(2.0**10))
    # Different sequences of the batch get different masks.
    assert not torch.equal(dropped[0, 0], dropped[0, 1])
    layer.eval()
    output, _ = layer(torch.zeros(10, 8, 1), h0)
    assert torch.equal(output, torch.ones_like(output))
    assert layer.uses_fast_path()


def test_gru_recurrent_dropout_keeps_memory():
    """The mask acts inside the recurrent matmul only (Gal & Ghahramani), not on z * h."""
    torch.manual_seed(0)
    layer = rnnkit.GRU(1, 16, recurrent_dropout=0.9, bias=False).train()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.zero_()
    # All weights zero: z = 0.5, n = 0, so h_t = 0.5 * h_{t-1} whatever the mask.
    h0 = torch.ones(1, 4, 16)
    output, _ = layer(torch.zeros(3, 4, 1), h0)
    torch.testing.assert_close(output[-1], torch.full((4, 16), 0.125))


def test_zoneout_keeps_or_updates_each_unit_in_training_and_averages_in_eval():
    torch.manual_seed(0)
    layer = rnnkit.RNN(2, 32, zoneout=0.5).train()
    cell = layer.cells[0]
    x = torch.randn(6, 4, 2)
    output, _ = layer(x)
    previous = torch.zeros(4, 32)
    kept_fraction = []
    for t in range(6):
        candidate = cell(x[t], (previous,))[0]
        kept = output[t] == previous
        updated = output[t] == candidate
        assert torch.all(kept | updated)
        kept_fraction.append((kept & ~updated).float().mean())
        previous = output[t]
    assert 0.3 < torch.stack(kept_fraction).mean() < 0.7
    layer.eval()
    output_eval, _ = layer(x)
    assert torch.equal(output_eval, layer(x)[0])  # deterministic
    h = torch.zeros(4, 32)
    for t in range(6):  # the expectation, as Krueger et al. use at test time
        h = 0.5 * h + 0.5 * cell(x[t], (h,))[0]
        torch.testing.assert_close(output_eval[t], h)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 16, num_layers=2, dropout=0.5, layer_norm=True)
    x = torch.randn(5, 2, 3)
    layer.train()
    assert not torch.equal(layer(x)[0], layer(x)[0])
    layer.eval()
    assert torch.equal(layer(x)[0], layer(x)[0])
    no_dropout = rnnkit.LSTM(3, 16, num_layers=2, layer_norm=True).eval()
    no_dropout.load_state_dict(layer.state_dict())
    assert torch.equal(layer(x)[0], no_dropout(x)[0])


@pytest.mark.parametrize("layer_norm", [False, True])
def test_stateful_carries_detached_state_across_calls(layer_norm):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, num_layers=2, stateful=True, batch_first=True,
                        layer_norm=layer_norm)  # fmt: skip
    x = torch.randn(2, 8, 3)
    whole, (h_whole, _) = layer(x)
    layer.reset_state()
    first, _ = layer(x[:, :5])
    second, (h, c) = layer(x[:, 5:])
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(h, h_whole)
    assert not layer.carried_state[0].requires_grad
    second.sum().backward()  # the graph ends at the batch boundary
    layer.reset_state()
    torch.testing.assert_close(layer(x[:, :5])[0], first)
    with pytest.raises(ValueError, match="reset_state"):
        layer(torch.randn(3, 4, 3))


def test_detach_state_carries_values_without_graph():
    layer = rnnkit.GRU(3, 4)
    x = torch.randn(6, 2, 3)
    whole, _ = layer(x)
    first, state = layer(x[:3])
    carried = rnnkit.detach_state(state)
    assert not carried.requires_grad
    torch.testing.assert_close(torch.cat([first, layer(x[3:], carried)[0]]), whole)


def test_user_cell_runs_in_every_layer_configuration():
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True, cell=LeakyCell)
    output, h = layer(torch.randn(2, 7, 3), lengths=[7, 4])
    assert output.shape == (2, 7, 10) and h.shape == (4, 2, 5)
    assert "weight_l0_reverse" not in dict(layer.named_parameters())
    assert "linear_weight_l1_reverse" in dict(layer.named_parameters())
    assert not layer.uses_fast_path()


def test_layer_norm_lstm_learns_a_memory_task():
    """Recall the first input (a random +-1 vector) after 5 steps of noise: the loss falls
    far below that of the best constant prediction (0, loss 1.0)."""
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 32, layer_norm=True, peephole=True, batch_first=True)
    head = torch.nn.Linear(32, 3)
    optimizer = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=0.01)
    losses = []
    for _ in range(100):
        x = torch.randn(32, 6, 3)
        x[:, 0] = torch.randint(0, 2, (32, 3)) * 2.0 - 1.0
        output, _ = layer(x)
        loss = torch.nn.functional.mse_loss(head(output[:, -1]), x[:, 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.05


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rnnkit.GRU(3, 4, cell="transformer"), "cell must be"),
        (lambda: rnnkit.LSTM(3, 4, cell="gru", layer_norm=True), "does not take"),
        (lambda: rnnkit.LSTM(3, 4, proj_size=4), "proj_size"),
        (lambda: rnnkit.GRU(3, 4, zoneout=1.0), "zoneout"),
        (lambda: rnnkit.GRU(3, 4, cell=LeakyCell, recurrent_dropout=0.1), "recurrent_dropout"),
    ],
)
def test_bad_options_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("lengths", [[5, 0], [6, 2], [5, 2, 1]])
def test_bad_lengths_raise_clear_errors(lengths):
    with pytest.raises(ValueError, match="lengths must"):
        rnnkit.GRU(3, 4)(torch.randn(5, 2, 3), lengths=lengths)


def test_bad_state_shape_raises_clear_error():
    layer = rnnkit.LSTM(3, 4)
    with pytest.raises(ValueError, match="hx must be"):
        layer(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))

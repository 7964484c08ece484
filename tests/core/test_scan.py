"""minGRU / minLSTM: the parallel scan against the step loop, masks, and gradients."""

import pytest
import torch

import rnnkit
from rnnkit.core import MinGRUCell, MinLSTMCell
from rnnkit.core.scan import linear_scan

CELLS = [MinGRUCell, MinLSTMCell]


def step_loop(cell, x, state, mask=None):
    """The reference: the cell's one-step forward, T times."""
    outputs = []
    for t in range(x.shape[0]):
        output, new_state = cell(x[t], state)
        if mask is not None:
            keep = mask[t].unsqueeze(-1)
            output = output.masked_fill(~keep, 0.0)
            new_state = tuple(
                torch.where(keep, new, old) for new, old in zip(new_state, state, strict=True)
            )
        outputs.append(output)
        state = new_state
    return torch.stack(outputs), state


def naive_loop(a, b, h):
    states = []
    for a_t, b_t in zip(a, b, strict=True):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states) if states else b.clone()


@pytest.mark.parametrize("steps", [0, 1, 2, 7, 64, 65, 1000])
def test_linear_scan_equals_the_recurrence_in_float64(steps):
    generator = torch.Generator().manual_seed(steps)
    a = torch.rand(steps, 3, 5, dtype=torch.float64, generator=generator)
    b = torch.randn(steps, 3, 5, dtype=torch.float64, generator=generator)
    h0 = torch.randn(3, 5, dtype=torch.float64, generator=generator)
    torch.testing.assert_close(linear_scan(a, b, h0), naive_loop(a, b, h0), rtol=0, atol=1e-12)


def test_linear_scan_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="linear_scan"):
        linear_scan(torch.rand(4, 2), torch.rand(4, 3), torch.zeros(2))


def test_linear_scan_gradcheck_float64():
    a = torch.rand(23, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(23, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (a, b, h0))


@pytest.mark.parametrize("cell_class", CELLS)
def test_parallel_scan_equals_step_loop_at_8192_steps_float32(cell_class):
    torch.manual_seed(0)
    cell = cell_class(4, 16)
    x = torch.randn(8192, 2, 4)
    h0 = (torch.randn(2, 16),)
    with torch.no_grad():
        parallel, (h_parallel,) = cell.forward_sequence(x, h0)
        loop, (h_loop,) = step_loop(cell, x, h0)
    # The README's claim: within 2.4e-7 of the step loop (measured: 6e-8; both are 1.6-1.8e-7
    # from float64, the float32 rounding of the recurrence itself).
    assert (parallel - loop).abs().max().item() <= 2.4e-7
    assert (h_parallel - h_loop).abs().max().item() <= 2.4e-7


def test_a_naive_log_space_scan_is_not_accurate_enough_at_8192_steps():
    # Why linear_scan is blocked and not log-space (Heinsen 2023): the cumulative sum of
    # log-coefficients grows to thousands and float32 rounds it.
    torch.manual_seed(0)
    cell = MinGRUCell(4, 16)
    x = torch.randn(8192, 2, 4)
    with torch.no_grad():
        a, b = cell.coefficients(x)
        b = b.abs() + 1e-3  # the log-space scan needs b > 0
        log_a_star = torch.cumsum(torch.log(a), 0)
        log_space = torch.exp(log_a_star + torch.logcumsumexp(torch.log(b) - log_a_star, 0))
        reference = naive_loop(a.double(), b.double(), torch.zeros(2, 16, dtype=torch.float64))
        blocked = linear_scan(a, b, torch.zeros(2, 16))
    assert (log_space.double() - reference).abs().max() > 1e-4
    assert (blocked.double() - reference).abs().max() < 1e-6


@pytest.mark.parametrize("cell_class", CELLS)
def test_state_is_unchanged_where_the_mask_is_false(cell_class):
    torch.manual_seed(1)
    cell = cell_class(3, 6).double()
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    mask = torch.rand(9, 4) > 0.4
    mask[:, 0] = False  # one sequence entirely padded
    h0 = (torch.randn(4, 6, dtype=torch.float64),)
    outputs, (h,) = cell.forward_sequence(x, h0, mask)
    loop_outputs, (loop_h,) = step_loop(cell, x, h0, mask)
    torch.testing.assert_close(outputs, loop_outputs, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, loop_h, rtol=0, atol=1e-12)
    assert (outputs[~mask] == 0).all()
    torch.testing.assert_close(h[:, :][0], h0[0][0])  # never updated: still the initial state


@pytest.mark.parametrize("cell_class", CELLS)
def test_padded_batch_equals_each_sequence_alone(cell_class):
    torch.manual_seed(2)
    cell = cell_class(3, 5).double()
    lengths = [7, 3, 5]
    x = torch.randn(7, 3, 3, dtype=torch.float64)
    mask = torch.arange(7).unsqueeze(1) < torch.tensor(lengths)
    outputs, (h,) = cell.forward_sequence(x, cell.initial_state(3), mask)
    for i, length in enumerate(lengths):
        alone, (h_alone,) = cell.forward_sequence(x[:length, i : i + 1], cell.initial_state(1))
        torch.testing.assert_close(outputs[:length, i], alone[:, 0], rtol=0, atol=1e-12)
        torch.testing.assert_close(h[i], h_alone[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell_class", CELLS)
def test_scan_gradients_equal_step_loop_gradients(cell_class):
    torch.manual_seed(3)
    cell = cell_class(3, 5).double()
    x = torch.randn(300, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(300, 2, 5, dtype=torch.float64)

    def gradients(run):
        outputs, (h,) = run(cell, x, (h0,))
        loss = (outputs * weights).sum() + h.square().sum()
        return torch.autograd.grad(loss, [x, h0, *cell.parameters()])

    def parallel(c, inputs, state):
        return c.forward_sequence(inputs, state)

    for scan_grad, loop_grad in zip(gradients(parallel), gradients(step_loop), strict=True):
        torch.testing.assert_close(scan_grad, loop_grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cell_class", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_cell_gradcheck_float64(cell_class, masked):
    torch.manual_seed(4)
    cell = cell_class(2, 3).double()
    x = torch.randn(11, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(11).unsqueeze(1) < torch.tensor([11, 6]) if masked else None

    def run(inputs, state, *parameters):
        # The parameters are the cell's own tensors: gradcheck perturbs them in place.
        outputs, (h,) = cell.forward_sequence(inputs, (state,), mask)
        return outputs, h

    assert torch.autograd.gradcheck(run, (x, h0, *cell.parameters()))


def test_min_lstm_gates_are_normalized():
    torch.manual_seed(5)
    cell = MinLSTMCell(3, 4)
    x = torch.randn(6, 3)
    forget, input_gate, candidate = torch.nn.functional.linear(
        x, cell.weight_ih, cell.bias_ih
    ).chunk(3, -1)
    f, i = torch.sigmoid(forget), torch.sigmoid(input_gate)
    a, b = cell.coefficients(x)
    torch.testing.assert_close(a, f / (f + i))
    torch.testing.assert_close(b, i / (f + i) * candidate)


def test_min_gru_follows_the_paper_equations():
    torch.manual_seed(6)
    cell = MinGRUCell(3, 4)
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    gate, candidate = torch.nn.functional.linear(x, cell.weight_ih, cell.bias_ih).chunk(2, -1)
    z = torch.sigmoid(gate)
    out, (h_new,) = cell(x, (h,))
    torch.testing.assert_close(h_new, (1 - z) * h + z * candidate)
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "bias_ih"]
    assert [n for n, _ in MinGRUCell(3, 4, bias=False).named_parameters()] == ["weight_ih"]


def test_min_gru_learns_to_remember_the_first_input():
    # A loss that must fall: report the sign of x_0 from the last state, 10 steps later. A
    # second channel marks step 0, so the input-only gate can learn "write at the mark, then
    # hold" (z near 1 there, near 0 elsewhere).
    torch.manual_seed(7)
    cell, readout = MinGRUCell(2, 8), torch.nn.Linear(8, 1)
    optimizer = torch.optim.Adam([*cell.parameters(), *readout.parameters()], lr=0.05)
    x = torch.randn(10, 128, 2)
    x[:, :, 1] = 0.0
    x[0, :, 1] = 1.0
    target = (x[0, :, 0] > 0).float()
    losses = []
    for _ in range(80):
        _, (h,) = cell.forward_sequence(x, cell.initial_state(128))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(readout(h)[:, 0], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_scan_cells_run_through_the_layer(cell):
    """Two layers, bidirectional, with lengths: torch's parameter names, zero outputs after
    each length, each sequence's outputs and final states equal to the layer run on that
    sequence alone, and a gradient for every parameter."""
    torch.manual_seed(8)
    layer = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, cell=cell).double()
    names = [name for name, _ in layer.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "bias_ih_l0", "weight_ih_l0_reverse", "bias_ih_l0_reverse"]
    lengths = [6, 3, 5]
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    output, h = layer(x, lengths=lengths)
    assert output.shape == (6, 3, 8) and h.shape == (4, 3, 4)
    for i, length in enumerate(lengths):
        alone, h_alone = layer(x[:length, i : i + 1])
        torch.testing.assert_close(output[:length, i], alone[:, 0], rtol=0, atol=1e-12)
        torch.testing.assert_close(h[:, i], h_alone[:, 0], rtol=0, atol=1e-12)
        assert (output[length:, i] == 0).all()
    (output.square().sum() + h.sum()).backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_scan_layer_equals_its_cell_step_by_step():
    """The layer's forward direction is the cell's own step, T times (the layer adds nothing)."""
    torch.manual_seed(9)
    layer = rnnkit.GRU(3, 4, cell="mingru").double()
    cell = MinGRUCell(3, 4).double()
    cell.load_state_dict({"weight_ih": layer.weight_ih_l0, "bias_ih": layer.bias_ih_l0})
    x = torch.randn(10, 2, 3, dtype=torch.float64)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64)
    output, h = layer(x, h0)
    loop_output, (loop_h,) = step_loop(cell, x, (h0[0],))
    torch.testing.assert_close(output, loop_output, rtol=0, atol=1e-12)
    torch.testing.assert_close(h[0], loop_h, rtol=0, atol=1e-12)

"""Exactness of every layer path: the global random generator is left alone (same seed, same
weights), and NaN/Inf propagate as in the step loop, forward and backward.

The paths: torch's fused kernels (fast path), the C++ layer-norm LSTM kernel, the
TorchScript loops of `rnnkit.core.fused_lstm` (with the kernel switched off), the parallel
scan of minGRU/minLSTM, and the generic step loop `Cell.forward_sequence` (the reference).
"""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.core import fused_lstm, kernels

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

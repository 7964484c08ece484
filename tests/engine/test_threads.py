import pytest
import torch

from rnnkit.engine import torch_threads


def test_torch_threads_sets_the_count_inside_and_restores_it_after_an_error():
    before = torch.get_num_threads()
    inside = 1 if before != 1 else 2
    with pytest.raises(RuntimeError), torch_threads(inside):
        assert torch.get_num_threads() == inside
        raise RuntimeError("the block failed")
    assert torch.get_num_threads() == before


def test_torch_threads_zero_leaves_the_count_alone():
    before = torch.get_num_threads()
    with torch_threads(0):
        assert torch.get_num_threads() == before

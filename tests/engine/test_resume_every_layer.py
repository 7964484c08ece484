"""SIGKILL, resume, bit for bit: the engine's resume test, with rnnkit's own layers.

`test_engine_checkpoint.test_resume_after_sigkill_is_bit_for_bit` trains ``engine_toy``'s
regressor (an ``nn.LSTM``) in fresh processes, kills one mid-epoch and resumes it. Here the
same test runs with the regressor's LSTM replaced by a layer that leaves torch's fused path:
the layer-norm LSTM (C++ kernel) and minGRU (parallel scan). A global random draw on a
layer's first use (as a resumed process makes it again) would make the resumed weights
differ.

Run as a script, this file is ``engine_toy.py`` with the layer named by ``$RNNKIT_TOY_LAYER``.
"""

from __future__ import annotations

import os

import engine_toy
import pytest
import test_engine_checkpoint
from torch import nn

import rnnkit

LAYER_VARIABLE = "RNNKIT_TOY_LAYER"
LAYERS = {
    "layer_norm": lambda: rnnkit.LSTM(3, 24, batch_first=True, layer_norm=True),
    "mingru": lambda: rnnkit.GRU(3, 24, batch_first=True, cell="mingru"),
}


class LayerRegressor(engine_toy.Regressor):
    """engine_toy's regressor with the recurrent layer named by ``$RNNKIT_TOY_LAYER``."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm: nn.Module = LAYERS[os.environ[LAYER_VARIABLE]]()


@pytest.mark.parametrize("layer", LAYERS)
def test_resume_after_sigkill_is_bit_for_bit_with_rnnkit_layers(layer, tmp_path, monkeypatch):
    # The killed and resumed processes run this file (see the bottom); the uninterrupted run
    # is engine_toy.train in this process, with the same regressor.
    monkeypatch.setenv(LAYER_VARIABLE, layer)
    monkeypatch.setattr(test_engine_checkpoint, "TOY_SCRIPT", __file__)
    monkeypatch.setattr(engine_toy, "Regressor", LayerRegressor)
    test_engine_checkpoint.test_resume_after_sigkill_is_bit_for_bit(tmp_path)


if __name__ == "__main__":
    engine_toy.Regressor = LayerRegressor
    engine_toy.main()

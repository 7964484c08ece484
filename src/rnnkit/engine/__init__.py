"""Engine: the training loop, checkpoints, logs and seeds that every application shares.

>>> import torch
>>> from torch import nn
>>> from rnnkit.engine import Trainer, TrainConfig
>>> x = torch.randn(64, 3)
>>> batches = [(x[i : i + 16], x[i : i + 16].sum(1, keepdim=True)) for i in range(0, 64, 16)]
>>> def step(model, batch):
...     x, y = batch
...     return nn.functional.mse_loss(model(x), y)
>>> trainer = Trainer(nn.Linear(3, 1), step, TrainConfig(epochs=5, out_dir="runs/demo"))
>>> history = trainer.fit(batches[:3], val_data=batches[3:])
>>> len(history), sorted(history[-1])
(5, ['epoch', 'loss', 'lr', 'val_loss'])
"""

from rnnkit.engine.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_model_state,
    save_model,
)
from rnnkit.engine.seeding import get_rng_state, seed_everything, set_rng_state
from rnnkit.engine.threads import torch_threads
from rnnkit.engine.trainer import TrainConfig, Trainer

__all__ = [
    "TrainConfig",
    "Trainer",
    "get_rng_state",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "save_model",
    "seed_everything",
    "set_rng_state",
    "torch_threads",
]

"""Engine: the training loop, checkpoints, logs and seeds that every application shares.

>>> from rnnkit.engine import Trainer, TrainConfig
>>> trainer = Trainer(model, step, TrainConfig(epochs=5, out_dir="runs/demo"))
>>> history = trainer.fit(train_loader, val_data=val_loader)
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

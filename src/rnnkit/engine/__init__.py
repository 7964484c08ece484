"""Engine: the training loop, checkpoints, logs and seeds that every application shares."""

from rnnkit.engine.checkpoint import load_model_state, save_model
from rnnkit.engine.trainer import TrainConfig, Trainer, seed_everything

__all__ = ["TrainConfig", "Trainer", "load_model_state", "save_model", "seed_everything"]

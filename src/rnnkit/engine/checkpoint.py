"""PLACEHOLDER (being extended by the full engine): saving and loading a model.

A model folder holds ``model.safetensors`` (weights) and ``config.json`` (what is needed to
rebuild the model); loading reads tensors and JSON only, never pickled code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from rnnkit.errors import UserError
from rnnkit.files import atomic_path, write_json


def save_model(directory: str | os.PathLike, model: nn.Module, config: dict) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(directory / "config.json", config)
    return directory


def load_model_state(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the weights and config saved by `save_model`; a clear error if they are missing."""
    directory = Path(directory)
    weights, config = directory / "model.safetensors", directory / "config.json"
    for path in (weights, config):
        if not path.exists():
            raise UserError(f"{path}: not found; expected a model folder written by 'train'")
    return load_file(str(weights)), json.loads(config.read_text())

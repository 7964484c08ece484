"""Saving and loading models and training checkpoints, without pickle anywhere.

Two kinds of folders:

* a **model folder** (`save_model` / `load_model_state`): ``model.safetensors`` (weights) and
  ``config.json`` (what an application needs to rebuild the model);
* a **checkpoint** (`save_checkpoint` / `load_checkpoint`), written by the `Trainer` into
  ``out_dir/checkpoints/epoch-NNNN-step-NNNNNNNN/``: the weights, the optimizer and scheduler
  states and the training state (epoch, step, RNG states, history). Tensors go to safetensors
  files and everything else to JSON, so loading reads data only and never runs unpickled code.

Each file is written atomically (temporary file, then rename), and a checkpoint folder only
becomes "the latest" once complete: the small file ``checkpoints/latest`` naming it is replaced
last. A run killed at any moment leaves the previous checkpoint or the new one, never a mix.

Example:
    >>> from torch import nn
    >>> folder = save_model("runs/demo/model", nn.Linear(4, 2), {"in": 4, "out": 2})
    >>> weights, config = load_model_state(folder)
    >>> sorted(weights), config
    (['bias', 'weight'], {'in': 4, 'out': 2})
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rnnkit.errors import UserError
from rnnkit.files import atomic_path, write_json, write_text

# Files that hold pickled Python objects: rnnkit never opens them (unpickling runs code).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
LATEST = "latest"


# --------------------------------------------------------------------------------------------
# Model folders
# --------------------------------------------------------------------------------------------


def save_model(directory: str | os.PathLike, model: nn.Module, config: dict) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` atomically.

    Args:
        directory: the model folder (created if needed).
        model: its ``state_dict()`` is saved (tensors are copied to the CPU).
        config: JSON-compatible settings needed to rebuild the model.
    """
    directory = Path(directory)
    save_tensors(directory / "model.safetensors", model.state_dict())
    write_json(directory / "config.json", config)
    return directory


def load_model_state(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the weights and config written by `save_model`.

    Raises a one-line `UserError` when the folder is incomplete, when it holds only a pickle
    file (``pytorch_model.bin``, ``*.pt``...), which rnnkit refuses to open, or when
    ``model.safetensors`` is not a safetensors file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such model folder; expected one written by 'train'")
    config_path = directory / "config.json"
    weights = load_tensors(directory / "model.safetensors")
    if not config_path.exists():
        raise UserError(f"{config_path}: not found; expected a model folder written by 'train'")
    return weights, read_json(config_path)


# --------------------------------------------------------------------------------------------
# Tensors and JSON
# --------------------------------------------------------------------------------------------


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Write a flat ``{name: tensor}`` dict as safetensors, atomically (tensors moved to CPU)."""
    # clone(): safetensors refuses tensors that share memory (e.g. tied weights).
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(cpu, str(tmp))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file; refuse pickles with a clear one-line error."""
    path = Path(path)
    if not path.exists():
        pickles = sorted(p.name for p in path.parent.glob("*") if p.suffix in PICKLE_SUFFIXES)
        hint = (
            f" (found {', '.join(pickles)}: pickle files, which rnnkit never loads because "
            "unpickling can run code; convert them to safetensors)"
            if pickles
            else ""
        )
        raise UserError(f"{path}: not found; expected a safetensors file{hint}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(
            f"{path}: not a safetensors file ({error}); rnnkit reads weights from safetensors "
            "only and never unpickles"
        ) from None


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a clear error naming the line and column when it is broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path}, line {error.lineno}, column {error.colno}: expected JSON ({error.msg})"
        ) from None


def split_tensors(value: Any, tensors: dict[str, torch.Tensor], name: str = "") -> Any:
    """Turn a nested state (e.g. ``optimizer.state_dict()``) into JSON plus a tensor dict.

    Tensors are moved into ``tensors`` under a dotted name and replaced by
    ``{"__tensor__": name}``; tuples and dicts with non-string keys (the optimizer's parameter
    indices) are tagged so that `join_tensors` rebuilds exactly the same structure.

    Example:
        >>> tensors = {}
        >>> split_tensors({"state": {0: {"step": torch.tensor(3.0)}}}, tensors)
        {'state': {'__items__': [[0, {'step': {'__tensor__': 'state.0.step'}}]]}}
    """
    if isinstance(value, torch.Tensor):
        tensors[name] = value
        return {"__tensor__": name}
    if isinstance(value, dict):
        parts = {k: split_tensors(v, tensors, f"{name}.{k}".lstrip(".")) for k, v in value.items()}
        if all(isinstance(key, str) for key in value):
            return parts
        return {"__items__": [[k, v] for k, v in parts.items()]}
    if isinstance(value, tuple | list):
        parts = [split_tensors(v, tensors, f"{name}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": parts} if isinstance(value, tuple) else parts
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot save {name or 'value'} of type {type(value).__name__} without pickle")


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `split_tensors`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__tuple__" in value:
            return tuple(join_tensors(v, tensors) for v in value["__tuple__"])
        if "__items__" in value:
            return {k: join_tensors(v, tensors) for k, v in value["__items__"]}
        return {k: join_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [join_tensors(v, tensors) for v in value]
    return value


def save_state(directory: Path, name: str, state: dict) -> None:
    """Write a nested state as ``name.json`` plus ``name.safetensors`` (when it has tensors)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = split_tensors(state, tensors)
    if tensors:
        save_tensors(directory / f"{name}.safetensors", tensors)
    write_json(directory / f"{name}.json", structure)


def load_state(directory: Path, name: str) -> dict:
    """Read a state written by `save_state`."""
    tensor_path = directory / f"{name}.safetensors"
    tensors = load_tensors(tensor_path) if tensor_path.exists() else {}
    return join_tensors(read_json(directory / f"{name}.json"), tensors)


# --------------------------------------------------------------------------------------------
# Training checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(
    checkpoints: str | os.PathLike,
    step: int,
    *,
    epoch: int,
    model: dict[str, torch.Tensor],
    states: dict[str, dict],
    best_model: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a complete checkpoint folder, then point ``checkpoints/latest`` at it.

    Args:
        checkpoints: the folder holding every checkpoint (``out_dir/checkpoints``).
        step: the global optimizer step; with ``epoch`` (epochs completed), it names the
            folder, e.g. ``epoch-0002-step-00000120``.
        model: the model's state dict (saved as ``model.safetensors``).
        states: named nested states, e.g. ``{"optimizer": ..., "trainer": ...}``, each saved
            with `save_state` as JSON plus safetensors.
        best_model: the best weights so far, when the trainer keeps them.

    Older checkpoint folders are removed once the new one is the latest.
    """
    checkpoints = Path(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:04d}-step-{step:08d}"
    current = latest_checkpoint(checkpoints)
    if current is not None and current.name == name:
        name += f"-{uuid.uuid4().hex[:8]}"  # never overwrite the checkpoint that is the latest
    folder = checkpoints / name
    if folder.exists():  # left over by a run killed while writing it: never the latest
        shutil.rmtree(folder)
    folder.mkdir()
    save_tensors(folder / "model.safetensors", model)
    if best_model is not None:
        save_tensors(folder / "best_model.safetensors", best_model)
    for state_name, state in states.items():
        save_state(folder, state_name, state)
    write_text(checkpoints / LATEST, folder.name + "\n")  # the commit point
    for old in checkpoints.glob("epoch-*"):
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(checkpoints: str | os.PathLike) -> Path | None:
    """The folder named by ``checkpoints/latest``, or None when there is no checkpoint yet."""
    pointer = Path(checkpoints) / LATEST
    if not pointer.exists():
        return None
    folder = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    if not folder.is_dir():
        raise UserError(f"{pointer}: names {folder.name}, which does not exist; delete {pointer}")
    return folder


def load_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint folder: ``{"model": tensors, "best_model": tensors or None, <states>}``."""
    folder = Path(folder)
    loaded: dict[str, Any] = {"model": load_tensors(folder / "model.safetensors")}
    best = folder / "best_model.safetensors"
    loaded["best_model"] = load_tensors(best) if best.exists() else None
    for path in sorted(folder.glob("*.json")):
        loaded[path.stem] = load_state(folder, path.stem)
    return loaded

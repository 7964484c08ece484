"""The state that truncated BPTT carries between windows, saved beside the engine's checkpoints.

A language model trained with truncated backpropagation through time starts each window from
the final state of the window before. The engine's checkpoints hold the weights, optimizer and
data position, not that state, so a run resumed within an epoch would start its next window
from zeros. `CarriedStateSaver` writes the state after every checkpointed step into
``out_dir/checkpoints/carried-state-<step>.safetensors``; `restore_carried_state` puts it back,
so that a resumed run ends with the weights of a run never interrupted.

Example:
    >>> from rnnkit.apps.lm.model import LanguageModelNet
    >>> model = LanguageModelNet(vocab_size=80, embedding_dim=16, hidden_size=32)
    >>> saver = CarriedStateSaver(model, "runs/lm", every=250)
    >>> saver.after_training_step()  # in the step, after the forward pass
    >>> restore_carried_state(model, "runs/lm")  # before `Trainer.fit(...)` with resume=True
    0
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor, nn

from rnnkit.engine import latest_checkpoint
from rnnkit.engine.checkpoint import load_state, load_tensors, save_tensors

PREFIX = "carried-state-"


def state_file(out_dir: str | os.PathLike, step: int) -> Path:
    """``out_dir/checkpoints/carried-state-<step>.safetensors``."""
    return Path(out_dir) / "checkpoints" / f"{PREFIX}{step:08d}.safetensors"


def stateful_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` that carry a state between calls (``stateful=True``)."""
    return [m for m in model.modules() if getattr(m, "stateful", False)]


class CarriedStateSaver:
    """Counts the training steps and saves the carried state whenever the engine checkpoints.

    Args:
        model: the network whose stateful layers carry the state.
        out_dir: the trainer's ``out_dir``.
        every: the trainer's ``checkpoint_every``.
        steps_done: optimizer steps already done (a resumed run's checkpoint step).
    """

    def __init__(self, model: nn.Module, out_dir: str | os.PathLike, every: int, steps_done=0):
        self.model, self.out_dir, self.every = model, Path(out_dir), every
        self.steps_done = steps_done

    def after_training_step(self) -> None:
        """Call once per training step: at a checkpoint step, save the state it carries on."""
        self.steps_done += 1
        if self.steps_done % self.every:
            return
        tensors = {}
        for index, layer in enumerate(stateful_layers(self.model)):
            state = layer.carried_state
            parts = (state,) if isinstance(state, Tensor) else tuple(state or ())
            tensors.update({f"{index}.{part}": t for part, t in enumerate(parts)})
        save_tensors(state_file(self.out_dir, self.steps_done), tensors)
        # Keep the previous file too: the engine commits its checkpoint after this step.
        for old in state_file(self.out_dir, 0).parent.glob(f"{PREFIX}*.safetensors"):
            if int(old.stem.removeprefix(PREFIX)) < self.steps_done - self.every:
                old.unlink(missing_ok=True)


def restore_carried_state(model: nn.Module, out_dir: str | os.PathLike) -> int:
    """Put back the state carried at the latest checkpoint in ``out_dir``; return its step.

    Nothing to restore at an epoch's end (the next window starts from zeros anyway), or when
    the file is missing (written by an older rnnkit): then the next window starts from zeros.
    """
    folder = latest_checkpoint(Path(out_dir) / "checkpoints")
    if folder is None:
        return 0
    trainer = load_state(folder, "trainer")
    step = trainer["global_step"]
    path = state_file(out_dir, step)
    if trainer["step_in_epoch"] and path.exists():
        tensors = load_tensors(path)
        device = next(model.parameters()).device
        for index, layer in enumerate(stateful_layers(model)):
            parts = [
                t.to(device) for name, t in sorted(tensors.items()) if name.startswith(f"{index}.")
            ]
            layer.carried_state = parts[0] if len(parts) == 1 else tuple(parts) if parts else None
    elif trainer["step_in_epoch"]:
        print(f"{path}: not found; the resumed window starts from a zero state")
    return step

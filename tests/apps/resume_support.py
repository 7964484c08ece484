"""Shared helpers of the apps' ``--resume`` tests: kill a run right after a checkpoint, spy on the
epochs a resumed run trains, and compare the weights two runs leave on disk.

Each app's test calls :func:`check_resume_of_a_killed_run` with its own quick ``train`` command
line, e.g. ``["lm", "train", "--text", corpus, "--quick"]``.
"""

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.cli import main
from rnnkit.engine import Trainer


class Killed(Exception):
    """Stands for the end of a killed run (Ctrl-C, a lost machine) right after a checkpoint."""


def kill_after_epoch(monkeypatch, epoch: int) -> None:
    """From now on, a Trainer dies as soon as it has checkpointed the end of ``epoch``."""
    save_checkpoint = Trainer._save_checkpoint

    def save_then_die(self):
        save_checkpoint(self)
        if self.epoch == epoch and self.step_in_epoch == 0:
            raise Killed

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)


def spy_on_trained_epochs(monkeypatch) -> list[int]:
    """The epochs (1-based) the Trainer trains from now on: a resumed run skips those done."""
    trained: list[int] = []
    train_one_epoch = Trainer._train_one_epoch

    def spy(self, *args, **kwargs):
        trained.append(self.epoch + 1)
        return train_one_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_one_epoch", spy)
    return trained


def assert_same_weights(folder_a, folder_b) -> None:
    """The saved models, and the weights in each last checkpoint, of two runs are bit-equal."""

    def weight_files(folder) -> dict:
        files = {"model": folder / "model.safetensors"}
        for pointer in sorted(folder.glob("**/checkpoints/latest")):
            checkpoint = pointer.parent / pointer.read_text().strip()
            files[str(pointer.relative_to(folder))] = checkpoint / "model.safetensors"
        return files

    files_a, files_b = weight_files(folder_a), weight_files(folder_b)
    assert files_a.keys() == files_b.keys() and len(files_a) > 1
    for name in files_a:
        weights_a, weights_b = load_file(files_a[name]), load_file(files_b[name])
        assert weights_a.keys() == weights_b.keys()
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a), name


def check_resume_of_a_killed_run(train: list[str], tmp_path, capsys, monkeypatch) -> list[int]:
    """A 3-epoch run killed after epoch 2 and resumed ends with the weights of a 3-epoch run
    never interrupted; --resume with no checkpoint is one line on stderr and status 2.

    Returns the epochs the resumed run trained."""
    train = [*train, "--epochs", "3"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*train, "--out", str(straight)]) == 0
    kill_after_epoch(monkeypatch, 2)
    with pytest.raises(Killed):
        main([*train, "--out", str(resumed)])
    monkeypatch.undo()
    trained = spy_on_trained_epochs(monkeypatch)
    assert main([*train, "--out", str(resumed), "--resume"]) == 0
    monkeypatch.undo()
    assert_same_weights(straight, resumed)
    capsys.readouterr()
    assert main([*train, "--out", str(tmp_path / "empty"), "--resume"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--resume: no checkpoint in" in error
    return trained

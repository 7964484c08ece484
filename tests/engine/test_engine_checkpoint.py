"""Checkpoints: round trips, no pickle, atomic commits, and resuming bit for bit."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import engine_toy
import pytest
import torch
from engine_toy import Regressor, make_data, make_step
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Subset

import rnnkit
from rnnkit.engine import TrainConfig, Trainer, latest_checkpoint, load_model_state, save_model
from rnnkit.engine import checkpoint as checkpoint_module
from rnnkit.engine.checkpoint import join_tensors, split_tensors
from rnnkit.errors import UserError

TOY_SCRIPT = Path(__file__).with_name("engine_toy.py")


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs"


def test_model_folder_round_trip(tmp_path):
    model = nn.LSTM(3, 5, num_layers=2)
    save_model(tmp_path / "model", model, {"hidden_size": 5, "layers": 2})
    weights, config = load_model_state(tmp_path / "model")
    assert config == {"hidden_size": 5, "layers": 2}
    assert_same_weights(weights, model.state_dict())


def test_optimizer_state_survives_the_json_and_safetensors_split():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        model(torch.randn(4, 3)).pow(2).mean().backward()
        optimizer.step()
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    structure = json.loads(json.dumps(split_tensors(state, tensors)))  # through real JSON
    restored = join_tensors(structure, tensors)
    assert restored["param_groups"] == state["param_groups"]  # tuples (betas) come back
    assert restored["state"].keys() == state["state"].keys()  # int keys come back
    for index, values in state["state"].items():
        assert_same_weights(restored["state"][index], values)


class _WritesAFileWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "marker.txt"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(marker)))
    (folder / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not a safetensors file"):
        load_model_state(folder)
    assert not marker.exists()


def test_a_pickle_checkpoint_is_refused_with_a_hint(tmp_path):
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="pytorch_model.bin: pickle files, which rnnkit never"):
        load_model_state(tmp_path)


def test_rnnkit_never_calls_torch_load_or_pickle():
    package = Path(rnnkit.__file__).parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for banned in ("torch.load(", "import pickle", "pickle.load", "weights_only=False"):
            assert banned not in text, f"{path}: uses {banned}"


def small_run(out_dir: Path, **options) -> Trainer:
    torch.manual_seed(0)
    settings = {"epochs": 3, "lr": 1e-2, "tensorboard": False, "restore_best": False, **options}
    config = TrainConfig(device="cpu", out_dir=str(out_dir), **settings)
    return Trainer(Regressor(), make_step(0.0), config)


def toy_loaders() -> tuple[DataLoader, DataLoader]:
    data = make_data()
    train = DataLoader(Subset(data, range(80)), batch_size=8, shuffle=True)
    return train, DataLoader(Subset(data, range(80, 96)), batch_size=16)


def test_checkpoint_holds_only_safetensors_and_json(tmp_path):
    trainer = small_run(
        tmp_path, checkpoint_every=4, schedule="cosine", patience=5, restore_best=True
    )
    trainer.fit(*toy_loaders())
    folder = latest_checkpoint(tmp_path / "checkpoints")
    assert folder.name == "epoch-0003-step-00000030"
    assert list((tmp_path / "checkpoints").glob("epoch-*")) == [folder]  # older ones removed
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "best_model.safetensors",
        "model.safetensors",
        "optimizer.json",
        "optimizer.safetensors",
        "scheduler.json",
        "trainer.json",
    ]
    state = json.loads((folder / "trainer.json").read_text())
    assert state["epoch"] == 3 and state["global_step"] == 30 and len(state["history"]) == 3
    # One entry per process (here one): each process's generators and running sums.
    assert len(state["rng"]) == len(state["epoch_sums"]) == 1
    assert set(state["rng"][0]) >= {"python", "numpy", "torch"}
    # restore_best loaded the best epoch's weights into the model at the end.
    best = load_file(str(folder / "best_model.safetensors"))
    assert_same_weights(best, trainer.model.state_dict())


class Crash(Exception):
    pass


@pytest.mark.parametrize("layout", ["per_process", "single_process_of_older_versions"])
def test_resume_after_a_crash_mid_epoch_matches_an_uninterrupted_run(tmp_path, layout):
    """In-process version of the SIGKILL test below: fast, and checks the history too.

    Checkpoints of older versions hold one process's generators and sums, not a list: they
    resume the same way."""
    uninterrupted = small_run(tmp_path / "a", checkpoint_every=3, schedule="cosine")
    history = uninterrupted.fit(*toy_loaders())

    crashing = small_run(tmp_path / "b", checkpoint_every=3, schedule="cosine")
    real_step, calls = crashing.step, []

    def step_that_crashes(model, batch):
        calls.append(1)
        if len(calls) == 14:  # 14th step: epoch 2, after the checkpoint at step 12
            raise Crash
        return real_step(model, batch)

    crashing.step = step_that_crashes
    with pytest.raises(Crash):
        crashing.fit(*toy_loaders())
    if layout != "per_process":
        saved = latest_checkpoint(tmp_path / "b" / "checkpoints") / "trainer.json"
        state = json.loads(saved.read_text())
        state["rng"], state["epoch_sums"] = state["rng"][0], state["epoch_sums"][0]
        saved.write_text(json.dumps(state))

    resumed = small_run(tmp_path / "b", checkpoint_every=3, schedule="cosine", resume=True)
    resumed_history = resumed.fit(*toy_loaders())
    assert resumed.resumed_from.name == "epoch-0001-step-00000012"
    assert_same_weights(resumed.model.state_dict(), uninterrupted.model.state_dict())
    assert resumed_history == history


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = small_run(tmp_path, epochs=1)
    trainer.fit(*toy_loaders())
    previous = latest_checkpoint(tmp_path / "checkpoints")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_state", fail)
    with pytest.raises(OSError, match="disk full"):
        small_run(tmp_path, epochs=2, resume=True).fit(*toy_loaders())
    assert latest_checkpoint(tmp_path / "checkpoints") == previous
    monkeypatch.undo()
    resumed = small_run(tmp_path, epochs=2, resume=True)
    assert len(resumed.fit(*toy_loaders())) == 2  # the old checkpoint still loads


def test_resuming_into_a_different_model_is_a_user_error(tmp_path):
    small_run(tmp_path, epochs=1).fit(*toy_loaders())
    config = TrainConfig(epochs=2, device="cpu", out_dir=str(tmp_path), resume=True)
    trainer = Trainer(nn.Sequential(nn.Linear(3, 1)), make_step(0.0), config)
    with pytest.raises(UserError, match="does not fit this model"):
        trainer.fit(*toy_loaders())


def run_toy(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    command = [sys.executable, str(TOY_SCRIPT), "--out", str(out), "--checkpoint-every", "4"]
    return subprocess.Popen(
        [*command, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_resume_after_sigkill_is_bit_for_bit(tmp_path):
    # 3 epochs of 10 steps, checkpoints every 4 steps. Run "b", a subprocess that sleeps
    # 100 ms a step, is SIGKILLed between its checkpoints at steps 12 and 16 (mid-epoch 2),
    # then resumed; run "a" trains in this process meanwhile, never interrupted.
    killed = run_toy(tmp_path / "b", "--step-delay", "0.1")
    pointer = tmp_path / "b" / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and killed.poll() is None:
        if pointer.exists() and "step-00000012" in pointer.read_text():
            break
        time.sleep(0.01)
    time.sleep(0.15)  # a step into the next stretch, so work since the checkpoint is lost
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stdout.read().decode()
    assert not (tmp_path / "b" / "result-rank0.json").exists()  # it really died mid-run
    assert "epoch-0001-step-00000012" in pointer.read_text()

    resumed = run_toy(tmp_path / "b", "--resume")
    engine_toy.train(tmp_path / "a", checkpoint_every=4)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output.decode()
    result = json.loads((tmp_path / "b" / "result-rank0.json").read_text())
    assert result["resumed_from"].endswith("epoch-0001-step-00000012")
    assert_same_weights(
        load_file(str(tmp_path / "b" / "weights-rank0.safetensors")),
        load_file(str(tmp_path / "a" / "weights-rank0.safetensors")),
    )
    uninterrupted = json.loads((tmp_path / "a" / "result-rank0.json").read_text())
    assert result["history"] == uninterrupted["history"]


def test_resuming_a_finished_run_trains_no_more(tmp_path):
    first = small_run(tmp_path, epochs=2)
    history = first.fit(*toy_loaders())
    again = small_run(tmp_path, epochs=2, resume=True)
    assert again.fit(*toy_loaders()) == history
    assert again.global_step == first.global_step
    assert_same_weights(again.model.state_dict(), first.model.state_dict())


def test_resume_after_a_crash_at_max_steps_still_closes_the_last_epoch(tmp_path):
    options = {"max_steps": 13, "checkpoint_every": 13}
    history = small_run(tmp_path / "a", **options).fit(*toy_loaders())
    assert len(history) == 2

    crashing = small_run(tmp_path / "b", **options)
    real_evaluate, validations = crashing.evaluate_metrics, []

    def evaluate_that_crashes(*args, **kwargs):
        validations.append(1)
        if len(validations) == 2:  # after the checkpoint at step 13, before epoch 2's end
            raise Crash
        return real_evaluate(*args, **kwargs)

    crashing.evaluate_metrics = evaluate_that_crashes
    with pytest.raises(Crash):
        crashing.fit(*toy_loaders())
    resumed = small_run(tmp_path / "b", resume=True, **options)
    assert resumed.fit(*toy_loaders()) == history
    assert resumed.global_step == 13

"""Distributed data-parallel training: 2 CPU processes with the gloo backend.

The toy regressor runs on ``rnnkit.LSTM`` (its cells tied to torch-named parameters that
are views of one flat buffer), which DDP must broadcast and update like any module. One
uninterrupted run under torchrun is the reference; a second 2-process run is SIGKILLed
(both processes) between checkpoints and resumed, and must end with exactly the
reference's weights and history. Each process draws its own dropout masks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

TOY_SCRIPT = Path(__file__).with_name("engine_toy.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
CHECKPOINT_EVERY = 4  # optimizer steps; an epoch is 5 steps per process (10 batches / 2)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A 3-epoch 2-process run under torchrun, never interrupted: its output folder."""
    assert torch.distributed.is_gloo_available()
    out = tmp_path_factory.mktemp("uninterrupted")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(TOY_SCRIPT), "--out", str(out), "--epochs", "3",
        "--checkpoint-every", str(CHECKPOINT_EVERY), "--layer", "rnnkit",
    ]  # fmt: skip
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def results(out: Path) -> list[dict]:
    return [json.loads((out / f"result-rank{r}.json").read_text()) for r in (0, 1)]


def weights(out: Path, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(out / f"weights-rank{rank}.safetensors"))


def test_two_gloo_processes_train_the_same_model(uninterrupted):
    ranks = results(uninterrupted)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 for r in ranks)
    # 80 samples in batches of 8 = 10 batches an epoch, shared by 2 processes: 5 steps each.
    assert all(r["global_step"] == 15 for r in ranks)
    history = ranks[0]["history"]
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    assert ranks[1]["history"] == history  # metrics are averaged over the processes
    for name, value in weights(uninterrupted, 0).items():
        assert torch.equal(value, weights(uninterrupted, 1)[name]), f"{name} differs"
    # Only the main process writes checkpoints and logs.
    assert (uninterrupted / "metrics.csv").exists()


def test_each_process_draws_its_own_dropout_masks(uninterrupted):
    masks = [r["first_dropout_mask"] for r in results(uninterrupted)]
    assert masks[0] is not None and masks[1] is not None
    assert masks[0] != masks[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two(out: Path, *extra: str) -> list[subprocess.Popen]:
    """The toy as 2 gloo processes, with the environment torchrun would give them (run
    directly, so that the test can SIGKILL the workers themselves)."""
    port = free_port()
    processes = []
    for rank in (0, 1):
        env = {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}  # fmt: skip
        command = [sys.executable, str(TOY_SCRIPT), "--out", str(out), "--epochs", "3",
                   "--checkpoint-every", str(CHECKPOINT_EVERY), "--layer", "rnnkit",
                   *extra]  # fmt: skip
        processes.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    return processes


def test_two_processes_killed_mid_epoch_resume_to_the_same_weights(uninterrupted, tmp_path):
    # 100 ms a step; SIGKILL both processes a step after the checkpoint at step 8, which
    # falls mid-epoch 2 (steps 6-10): each must restore its own generators and sums.
    killed = launch_two(tmp_path, "--step-delay", "0.1")
    pointer = tmp_path / "checkpoints" / "latest"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and killed[0].poll() is None:
        if pointer.exists() and "step-00000008" in pointer.read_text():
            break
        time.sleep(0.01)
    time.sleep(0.15)
    for process in killed:
        process.send_signal(signal.SIGKILL)
    for process in killed:
        process.wait()
        assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()[-3000:]
    assert not list(tmp_path.glob("result-rank*.json"))  # they really died mid-run
    assert "epoch-0001-step-00000008" in pointer.read_text()

    resumed = launch_two(tmp_path, "--resume")
    for process in resumed:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output.decode()[-3000:]
    ranks = results(tmp_path)
    assert all(r["resumed_from"].endswith("epoch-0001-step-00000008") for r in ranks)
    expected = weights(uninterrupted, 0)
    for rank in (0, 1):
        for name, value in weights(tmp_path, rank).items():
            assert torch.equal(value, expected[name]), f"rank {rank}: {name} differs"
    assert ranks[0]["history"] == results(uninterrupted)[0]["history"]

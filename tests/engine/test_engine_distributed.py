"""Distributed data-parallel training: 2 CPU processes with the gloo backend, under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed
from safetensors.torch import load_file

TOY_SCRIPT = Path(__file__).with_name("engine_toy.py")


def test_two_gloo_processes_train_the_same_model(tmp_path):
    assert torch.distributed.is_gloo_available()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(TOY_SCRIPT), "--out", str(tmp_path), "--epochs", "3",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = [json.loads((tmp_path / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["world_size"] == 2 for r in results)
    # 80 samples in batches of 8 = 10 batches an epoch, shared by 2 processes: 5 steps each.
    assert all(r["global_step"] == 15 for r in results)
    history = results[0]["history"]
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    assert results[1]["history"] == history  # metrics are averaged over the processes

    weights = [load_file(str(tmp_path / f"weights-rank{r}.safetensors")) for r in (0, 1)]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), f"{name} differs between ranks"
    # Only the main process writes checkpoints and logs.
    assert (tmp_path / "metrics.csv").exists()

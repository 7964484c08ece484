"""A small training script that the engine's tests run as a real subprocess.

It trains an LSTM regressor on a generated task (predict the mean of the first input feature)
with shuffling, dropout and input noise, so that every random generator matters. It is run:

* plainly, and SIGKILLed then resumed (``--resume``), to check bit-for-bit resumption;
* under ``torchrun --nproc_per_node 2`` (gloo, CPU), to check distributed training, and as
  two such processes SIGKILLed together then resumed.

Each process writes ``<out>/result-rank<R>.json`` (history, rank, world size) and
``<out>/weights-rank<R>.safetensors`` when training ends.

    python tests/engine/engine_toy.py --out /tmp/run --epochs 3 --checkpoint-every 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rnnkit
from rnnkit.engine import TrainConfig, Trainer


class Regressor(nn.Module):
    """An LSTM (torch's, or with ``layer="rnnkit"`` rnnkit's), dropout and a linear head."""

    def __init__(self, input_size: int = 3, hidden_size: int = 24, layer: str = "torch"):
        super().__init__()
        lstm = {"torch": nn.LSTM, "rnnkit": rnnkit.LSTM}[layer]
        self.lstm = lstm(input_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(hidden_size, 1)
        self.first_dropout_mask: list | None = None  # what this process drew first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)
        dropped = self.dropout(output[:, -1])
        if self.training and self.first_dropout_mask is None:
            self.first_dropout_mask = (dropped == 0).int().tolist()
        return self.head(dropped).squeeze(-1)


def make_data(n: int = 96, length: int = 12, seed: int = 123) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, 3, generator=generator)
    return TensorDataset(x, x[:, :, 0].mean(dim=1) * 3)


def make_step(step_delay: float):
    def step(model: nn.Module, batch) -> dict:
        x, y = batch
        if model.training:
            x = x + 0.05 * torch.randn_like(x)  # input noise: uses the global generator
            time.sleep(step_delay)  # lets a test kill the run at a chosen moment
        loss = nn.functional.mse_loss(model(x), y)
        return {"loss": loss}

    return step


def train(
    out: str | Path,
    epochs: int = 3,
    checkpoint_every: int | None = None,
    step_delay: float = 0.0,
    resume: bool = False,
    seed: int = 0,
    layer: str = "torch",
) -> Trainer:
    """Train the toy model, then write this process's result and weights into ``out``."""
    torch.manual_seed(seed)
    # (Regressor() by default: test_resume_every_layer swaps in a subclass without arguments.)
    model = Regressor(layer=layer) if layer != "torch" else Regressor()
    data = make_data()
    train_data = DataLoader(torch.utils.data.Subset(data, range(80)), batch_size=8, shuffle=True)
    val_data = DataLoader(torch.utils.data.Subset(data, range(80, 96)), batch_size=16)
    config = TrainConfig(
        epochs=epochs,
        lr=1e-2,
        seed=seed,
        device="cpu",
        out_dir=str(out),
        checkpoint_every=checkpoint_every,
        resume=resume,
        restore_best=False,
        tensorboard=False,
    )
    trainer = Trainer(model, make_step(step_delay), config)
    history = trainer.fit(train_data, val_data=val_data)

    rank = trainer.accelerator.process_index
    out = Path(out)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(out / f"weights-rank{rank}.safetensors"),
    )
    result = {
        "rank": rank,
        "world_size": trainer.accelerator.num_processes,
        "global_step": trainer.global_step,
        "history": history,
        "resumed_from": str(trainer.resumed_from) if trainer.resumed_from else None,
        "first_dropout_mask": model.first_dropout_mask,
    }
    (out / f"result-rank{rank}.json").write_text(json.dumps(result, indent=2))
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layer", choices=["torch", "rnnkit"], default="torch")
    args = parser.parse_args()
    train(
        args.out,
        epochs=args.epochs,
        checkpoint_every=args.checkpoint_every,
        step_delay=args.step_delay,
        resume=args.resume,
        seed=args.seed,
        layer=args.layer,
    )


if __name__ == "__main__":
    main()

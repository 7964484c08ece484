"""Per-step overhead of rnnkit's Trainer against a plain PyTorch loop, measured side by side.

Three loops train the same small LSTM regressor on the same batches, with the same optimizer
(AdamW) and gradient clipping (norm 1.0):

1. a plain PyTorch loop (zero_grad, forward, backward, clip, step, ``loss.item()``);
2. a raw Hugging Face accelerate loop (``accelerator.prepare``, ``accelerator.backward``,
   ``accelerator.clip_grad_norm_``);
3. ``rnnkit.engine.Trainer.fit`` for one epoch (progress bars, logs and checkpoints off, as
   the plain loop has none; everything else as in a real run).

The loops run alternately (warm-up, then ``--repeats`` rounds, median time per step), so
that a load from other processes hits them alike: the *ratio* to the plain loop is the number
to read. Time is this process's CPU time on one thread (``time.process_time``), which other
processes on a shared machine disturb far less than wall-clock time. Target: the Trainer
within 1.10x of the plain loop.

Usage:
    python benchmarks/engine.py             # ~20 s on 2 cores
    python benchmarks/engine.py --quick     # seconds: checks that it runs
    python benchmarks/engine.py --json engine.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from accelerate import Accelerator
from torch import nn

from rnnkit.engine import TrainConfig, Trainer
from rnnkit.files import write_json
from rnnkit.report import table_to_text

TARGET = 1.10
CLIP = 1.0
LR = 1e-3


class SmallLSTM(nn.Module):
    """A 1-layer LSTM and a linear head: predict one number per sequence."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)
        return self.head(output[:, -1]).squeeze(-1)


def step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def make_batches(steps: int, batch: int, length: int, features: int) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(steps):
        x = torch.randn(batch, length, features, generator=generator)
        batches.append((x, x[:, :, 0].mean(dim=1)))
    return batches


def plain_loop(model: nn.Module, batches: list) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)

    def run() -> None:
        model.train()
        total = 0.0
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = step(model, batch)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            total += loss.item()

    return run


def accelerate_loop(model: nn.Module, batches: list) -> Callable[[], None]:
    accelerator = Accelerator(cpu=True)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=LR))

    def run() -> None:
        model.train()
        total = 0.0
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = step(model, batch)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            total += loss.item()

    return run


def rnnkit_trainer(model: nn.Module, batches: list) -> Callable[[], None]:
    config = TrainConfig(
        epochs=1, lr=LR, grad_clip=CLIP, device="cpu", progress=False, restore_best=False
    )
    trainer = Trainer(model, step, config)
    return lambda: trainer.fit(batches)


LOOPS = {
    "plain PyTorch loop": plain_loop,
    "raw accelerate loop": accelerate_loop,
    "rnnkit Trainer": rnnkit_trainer,
}


def measure(args: argparse.Namespace) -> list[dict]:
    batches = make_batches(args.steps, args.batch, args.length, args.features)
    runs = {}
    for name, make_loop in LOOPS.items():
        torch.manual_seed(0)
        runs[name] = make_loop(SmallLSTM(args.features, args.hidden), batches)
    for run in runs.values():  # warm-up
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.process_time()
            run()
            seconds[name].append((time.process_time() - start) / args.steps)
    plain = statistics.median(seconds["plain PyTorch loop"])
    rows = []
    for name, times in seconds.items():
        per_step = statistics.median(times)
        rows.append(
            {
                "loop": name,
                "CPU ms/step (median)": round(per_step * 1e3, 3),
                "ratio to plain": round(per_step / plain, 3),
                "target": f"<= {TARGET:.2f}x" if name == "rnnkit Trainer" else "",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: checks that it runs")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = parser.parse_args()
    args.batch, args.length, args.features, args.hidden = 32, 32, 8, 64
    args.steps = 10 if args.quick else 50
    args.repeats = args.repeats or (2 if args.quick else 7)
    torch.set_num_threads(1)  # steadier timings on a shared machine
    rows = measure(args)
    print(
        f"Training step of a small LSTM (batch {args.batch}, length {args.length}, "
        f"hidden {args.hidden}), {args.steps} steps x {args.repeats} rounds, 1 CPU thread"
    )
    print(table_to_text(rows))
    trainer_ratio = rows[-1]["ratio to plain"]
    verdict = "meets" if trainer_ratio <= TARGET else "misses"
    print(f"rnnkit Trainer: {trainer_ratio:.3f}x the plain loop ({verdict} <= {TARGET:.2f}x)")
    if args.json:
        write_json(args.json, {"rows": rows, "target": TARGET})


if __name__ == "__main__":
    main()

"""PLACEHOLDER (being replaced by the full engine): the Trainer API every app uses."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    out_dir: str | None = None
    progress: bool = True


StepFn = Callable[[nn.Module, object], "torch.Tensor | dict[str, torch.Tensor]"]


class Trainer:
    def __init__(self, model: nn.Module, step: StepFn, config: TrainConfig | None = None):
        self.model, self.step, self.config = model, step, config or TrainConfig()
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )

    def fit(self, train_data: Iterable, val_data: Iterable | None = None) -> list[dict]:
        seed_everything(self.config.seed)
        history = []
        for epoch in range(self.config.epochs):
            self.model.train()
            total, n = 0.0, 0
            for batch in train_data:
                out = self.step(self.model, batch)
                loss = out["loss"] if isinstance(out, dict) else out
                self.optimizer.zero_grad()
                loss.backward()
                if self.config.grad_clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
                total, n = total + loss.item(), n + 1
            row = {"epoch": epoch + 1, "loss": total / max(n, 1)}
            if val_data is not None:
                row["val_loss"] = self.evaluate(val_data)
            history.append(row)
        return history

    @torch.no_grad()
    def evaluate(self, data: Iterable) -> float:
        self.model.eval()
        losses = []
        for batch in data:
            out = self.step(self.model, batch)
            losses.append(float(out["loss"] if isinstance(out, dict) else out))
        return float(np.mean(losses)) if losses else float("nan")

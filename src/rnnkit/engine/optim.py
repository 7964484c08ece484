"""Optimizers and learning-rate schedules, chosen by name in `TrainConfig`.

Schedules (``TrainConfig.schedule``), each but ``plateau`` optionally preceded by
``warmup_steps`` of linear warmup from 0 to ``lr`` (``plateau`` with warmup is refused by
`TrainConfig`: it sets the LR per epoch from a metric, so no warmup could hand over to it):

==============  =============================================================================
``constant``    ``lr`` throughout
``cosine``      cosine decay from ``lr`` to ``lr * min_lr_ratio`` at the last step
``linear``      linear decay from ``lr`` to 0 at the last step
``onecycle``    torch's OneCycleLR (warm up to ``lr``, then anneal; the warmup sets its phase)
``plateau``     multiply ``lr`` by ``plateau_factor`` when the monitored validation metric has
                not improved for ``plateau_patience`` epochs (stepped once per epoch)
==============  =============================================================================
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from rnnkit.errors import UserError

if TYPE_CHECKING:
    from rnnkit.engine.trainer import TrainConfig

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "onecycle", "plateau")
# Schedules whose shape depends on the total number of steps.
NEEDS_TOTAL_STEPS = ("cosine", "linear", "onecycle")


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError("the model has no trainable parameters")
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int | None
) -> LRScheduler | ReduceLROnPlateau:
    """The schedule named by ``config.schedule``; ``total_steps`` is needed by the decays."""
    if config.schedule in NEEDS_TOTAL_STEPS and total_steps is None:
        raise UserError(
            f"schedule '{config.schedule}' needs the number of training steps: give the "
            "training data a len() (a list or DataLoader) or set max_steps"
        )
    if config.schedule == "plateau":
        return ReduceLROnPlateau(
            optimizer,
            mode=config.mode,
            factor=config.plateau_factor,
            patience=config.plateau_patience,
        )
    if config.schedule == "onecycle":
        # OneCycleLR peaks at step pct_start * total - 1: here, right after the warmup steps.
        warmup_fraction = (config.warmup_steps + 1) / total_steps if config.warmup_steps else 0.3
        return OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=warmup_fraction
        )

    def lr_factor(step: int) -> float:
        """The multiplier of ``lr`` before optimizer step ``step`` (0-based)."""
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        if config.schedule == "constant":
            return 1.0
        decay_steps = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / decay_steps)
        if config.schedule == "linear":
            return 1.0 - progress
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine

    return LambdaLR(optimizer, lr_factor)

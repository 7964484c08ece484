"""The training loop every rnnkit application shares.

You write the ``step``: given the model and a batch (already on the training device), return
the loss, or a dict with ``"loss"`` and any other scalars to average and log. The `Trainer` does
the rest with Hugging Face ``accelerate`` underneath (device placement, mixed precision,
distributed data-parallel training): optimizer, gradient clipping, learning-rate schedule,
validation and early stopping, progress bars, ``metrics.csv`` and TensorBoard logs, and
checkpoints that a killed run resumes from bit for bit.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(64, 3)
    >>> y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    >>> train_batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    >>> def step(model, batch):
    ...     x, y = batch
    ...     return nn.functional.mse_loss(model(x), y)
    >>> config = TrainConfig(epochs=20, lr=0.1, out_dir="runs/demo")
    >>> trainer = Trainer(nn.Linear(3, 1), step, config)
    >>> history = trainer.fit(train_batches, val_data=[(x[48:], y[48:])])
    >>> {name: round(value, 3) for name, value in history[-1].items()}
    {'epoch': 20, 'loss': 0.004, 'val_loss': 0.001, 'lr': 0.1}

Reproducibility: each epoch starts by seeding every generator with ``seed + epoch`` (and the
DataLoader's own generator, if it has one), so an epoch's data order and dropout masks depend
only on the seed and the epoch. A run resumed mid-epoch replays that epoch's order, skips the
batches already done and restores the generator states saved with the checkpoint.

Distributed: run the same script under ``accelerate launch`` or ``torchrun``. Every process
reads the same data and keeps every ``world_size``-th batch (batches ``rank, rank + world_size,
...``), so the effective batch is ``world_size`` times larger; gradients are averaged by DDP and
the logged metrics are averaged over the processes. The step then receives the DDP-wrapped
model: call it (``model(x)``); reach other methods through ``trainer.model``.
The data order is drawn from ``seed + epoch`` on every process (it must be the same
everywhere): the epoch's first batch is fetched before anything else. Then process ``r``
reseeds with ``seed + epoch + 1_000_000 * r`` (`rnnkit.engine.seeding.process_seed`), so the
processes draw different dropout masks and noise. A checkpoint holds every process's
generator states and running sums; a resumed process restores its own (resume mid-epoch
with the same number of processes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import send_to_device
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from rnnkit.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rnnkit.engine.logs import (
    MetricsLogger,
    ProgressBar,
    print_epoch_summary,
    progress_enabled,
)
from rnnkit.engine.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler
from rnnkit.engine.seeding import get_rng_state, process_seed, seed_everything, set_rng_state
from rnnkit.errors import UserError

__all__ = ["TrainConfig", "Trainer", "seed_everything"]

_NO_BATCH = object()
StepFn = Callable[[nn.Module, Any], "torch.Tensor | dict[str, Any]"]
EvaluateFn = Callable[[nn.Module, Any], dict[str, float]]


@dataclass
class TrainConfig:
    """How to train. Every field has a sensible default; `Trainer` checks the values.

    Args:
        epochs: passes over the training data.
        lr: peak learning rate.
        weight_decay: decoupled (AdamW) or L2 (adam, sgd) weight decay.
        grad_clip: clip the gradient's global norm to this (None: no clipping). On by default
            because recurrent networks have exploding gradients.
        seed: seeds data order, dropout and everything random in the run.
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        out_dir: where checkpoints, ``metrics.csv`` and ``tensorboard/`` go (None: nowhere).
        progress: draw progress bars (only on a terminal, and not when ``TQDM_DISABLE=1``).
        optimizer: ``adamw``, ``adam`` or ``sgd``.
        momentum: SGD momentum.
        schedule: ``constant``, ``cosine``, ``linear``, ``onecycle`` or ``plateau``
            (see `rnnkit.engine.optim`).
        warmup_steps: optimizer steps of linear warmup before the schedule (not with
            ``plateau``, which is an error).
        min_lr_ratio: where ``cosine`` ends, as a fraction of ``lr``.
        plateau_factor, plateau_patience: ``plateau`` multiplies the LR by the factor after
            this many epochs without improvement of ``monitor``.
        monitor: the epoch metric that early stopping, ``plateau`` and ``restore_best`` watch:
            ``val_loss``, ``val_<name>`` for a validation metric, or a training metric.
        mode: ``min`` or ``max``: whether a smaller or a larger ``monitor`` is better.
        patience: stop after this many epochs without improvement (None: never stop early).
        min_delta: the smallest change of ``monitor`` that counts as an improvement.
        restore_best: at the end, load the weights of the best epoch by ``monitor`` (when the
            metric exists, e.g. with validation data).
        max_steps: stop after this many optimizer steps in all (whichever of ``epochs`` and
            ``max_steps`` comes first).
        mixed_precision: ``no``, ``fp16`` or ``bf16`` (autocast through accelerate).
        checkpoint_every: also checkpoint every this many optimizer steps (None: only at
            the end of each epoch).
        save_checkpoints: write checkpoints into ``out_dir/checkpoints``.
        resume: continue from the latest checkpoint in ``out_dir`` (from scratch if none).
        log_every: optimizer steps between TensorBoard training scalars.
        tensorboard: write TensorBoard logs into ``out_dir/tensorboard``.
    """

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    out_dir: str | None = None
    progress: bool = True
    optimizer: str = "adamw"
    momentum: float = 0.9
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    max_steps: int | None = None
    mixed_precision: str = "no"
    checkpoint_every: int | None = None
    save_checkpoints: bool = True
    resume: bool = False
    log_every: int = 50
    tensorboard: bool = True

    def __post_init__(self) -> None:
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "mode": ("min", "max"),
            "mixed_precision": ("no", "fp16", "bf16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(
                    f"TrainConfig.{name}: expected one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
        if self.epochs < 1:
            raise UserError(f"TrainConfig.epochs: expected a positive integer, got {self.epochs}")
        if self.lr <= 0:
            raise UserError(f"TrainConfig.lr: expected a positive number, got {self.lr}")
        if self.warmup_steps < 0:
            raise UserError(
                f"TrainConfig.warmup_steps: expected 0 or more, got {self.warmup_steps}"
            )
        if self.schedule == "plateau" and self.warmup_steps:
            raise UserError(
                "TrainConfig: schedule 'plateau' takes no warmup_steps (it changes the LR once "
                "per epoch, from the monitored metric); set warmup_steps=0, or use 'constant', "
                "'cosine', 'linear' or 'onecycle' with warmup"
            )
        for name in ("max_steps", "checkpoint_every", "patience"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "patience" else 1):
                raise UserError(f"TrainConfig.{name}: expected a positive integer, got {value}")


class Trainer:
    """Trains ``model`` by calling ``step(model, batch)`` on each batch.

    Args:
        model: any ``nn.Module``; moved to the training device.
        step: ``step(model, batch) -> loss`` or ``-> {"loss": loss, "accuracy": ..., ...}``;
            the batch is already on the device; the other values must be scalars and are
            averaged over the epoch (and over validation batches, prefixed ``val_``).
        config: a `TrainConfig`.
        evaluate_fn: optional ``evaluate_fn(model, val_data) -> {"bleu": 31.2, ...}`` called
            after each validation pass (model in eval mode, no gradients); the values join
            the epoch's row as ``val_<name>`` and can be monitored.

    Attributes:
        model: the model (unwrapped); ``optimizer``, ``scheduler``, ``accelerator``, ``device``.
        history: one dict per epoch: ``epoch``, ``loss``, the step's other scalars,
            ``val_loss`` and validation metrics when there is validation data, ``lr``.
        best_epoch, best_metric, stopped_early: what early stopping saw.
    """

    def __init__(
        self,
        model: nn.Module,
        step: StepFn,
        config: TrainConfig | None = None,
        evaluate_fn: EvaluateFn | None = None,
    ):
        self.config = config or TrainConfig()
        self.step = step
        self.evaluate_fn = evaluate_fn
        self.accelerator = make_accelerator(self.config.device, self.config.mixed_precision)
        self.device = self.accelerator.device
        self.model = model
        # `train_model` is what `step` gets while training: `model` itself, or its DDP wrapper.
        self.train_model = self.accelerator.prepare(model)
        # With mixed precision, accelerate also wraps `model.forward` in autocast for good;
        # the trainer autocasts around `step` instead, so the user's model is left as it was.
        self.accelerator.unwrap_model(self.train_model, keep_fp32_wrapper=False)
        # The optimizer stays torch's own: accelerate's wrapper costs ~0.1 ms a step (a third
        # of the 1.10x budget on a small LSTM) for features used here only through the fp16
        # grad scaler, which `_training_step` drives directly as in torch's AMP recipe.
        self.optimizer = build_optimizer(model, self.config)
        self.grad_scaler = self.accelerator.scaler  # a torch GradScaler with fp16 on a GPU
        self.scheduler = None
        self._parameters = [p for p in model.parameters() if p.requires_grad]
        self._show_progress = progress_enabled(self.config.progress) and (
            self.accelerator.is_main_process
        )
        self._reset_progress()

    # ----------------------------------------------------------------------------------------
    # Training
    # ----------------------------------------------------------------------------------------

    def fit(self, train_data: Iterable, val_data: Iterable | None = None) -> list[dict]:
        """Train for ``config.epochs`` epochs (or ``max_steps``); returns the history.

        Args:
            train_data: a DataLoader, a list of batches or any re-iterable of batches
                (tensors, tuples or dicts of tensors).
            val_data: the same kind, evaluated at the end of each epoch.

        Returns:
            one dict per epoch, e.g. ``{"epoch": 3, "loss": 0.41, "val_loss": 0.47, "lr": 1e-3}``.
        """
        config = self.config
        seed_everything(config.seed)
        steps_per_epoch = self._steps_per_epoch(train_data)
        self.scheduler = build_scheduler(self.optimizer, config, self._total_steps(steps_per_epoch))
        # A constant LR needs no per-step call (the plateau schedule steps once per epoch).
        self._schedule_per_step = not isinstance(self.scheduler, ReduceLROnPlateau) and not (
            config.schedule == "constant" and config.warmup_steps == 0
        )
        self._reset_progress()
        if config.resume:
            self._restore_latest_checkpoint()
        logger = MetricsLogger(
            config.out_dir if self.accelerator.is_main_process else None, config.tensorboard
        )
        try:
            # (An epoch that a resumed run starts part-way through is always finished.)
            while self.epoch < config.epochs and (self.step_in_epoch or not self._should_stop()):
                row = self._train_one_epoch(train_data, steps_per_epoch, logger)
                if val_data is not None:
                    validation = self.evaluate_metrics(val_data, desc="validate")
                    row.update({f"val_{name}": value for name, value in validation.items()})
                row["lr"] = self.optimizer.param_groups[0]["lr"]
                self.history.append(row)
                if self._show_progress:
                    print_epoch_summary(row, config.epochs)
                self._watch_monitor(row, has_validation=val_data is not None)
                self.epoch, self.step_in_epoch = self.epoch + 1, 0
                logger.log_epoch(self.history, self.global_step)
                self._save_checkpoint()
        finally:
            logger.close()
        if config.restore_best and self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        return self.history

    def _train_one_epoch(
        self, train_data: Iterable, steps_per_epoch: int | None, logger: MetricsLogger
    ) -> dict:
        batches = self._epoch_batches(train_data)
        bar = ProgressBar(
            self._show_progress,
            total=steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            initial=self.step_in_epoch,
        )
        self.model.train()
        for batch in batches:
            if self._should_stop():  # max_steps reached
                break
            loss, scalars = self._training_step(batch)
            self._epoch_sums.add(loss=loss, **scalars)
            self.global_step += 1
            self.step_in_epoch += 1
            bar.update(self._epoch_sums.means)
            if logger.writer is not None and self.global_step % self.config.log_every == 0:
                lr = self.optimizer.param_groups[0]["lr"]
                logger.log_step(self.global_step, {"loss": float(loss), "lr": lr})
            every = self.config.checkpoint_every
            if every and self.global_step % every == 0:
                self._save_checkpoint()
        bar.close()
        if self._epoch_sums.batches == 0:
            raise UserError(
                f"the training data gave no batches in epoch {self.epoch + 1}; pass a list or "
                "a DataLoader (a generator can be read only once)"
            )
        means = self._mean_across_processes(self._epoch_sums.means())
        return {"epoch": self.epoch + 1, **means}

    def _epoch_batches(self, data: Iterable) -> Iterator:
        """This process's batches of the epoch, seeded by epoch, minus those already done."""
        epoch_seed = self.config.seed + self.epoch
        seed_everything(epoch_seed)
        reseed_data_loader(data, epoch_seed, self.epoch)
        rank, world_size = self.accelerator.process_index, self.accelerator.num_processes
        batches = shard_batches(data, rank, world_size)
        if world_size > 1:
            # Fetching the first batch draws the epoch's order from the shared seed (a
            # DataLoader's sampler draws it then); every later draw is this process's own.
            first = next(batches, _NO_BATCH)
            batches = itertools.chain([] if first is _NO_BATCH else [first], batches)
            seed_everything(process_seed(epoch_seed, rank))
        if self.step_in_epoch:  # resuming mid-epoch: replay the order, skip what was done
            for _ in range(self.step_in_epoch):
                next(batches, None)
        else:
            self._epoch_sums = RunningMeans()
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)  # after the skip, which may draw random numbers
            self._resume_rng = None
        return batches

    def _training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """One optimizer step; returns the (detached) loss and the step's other scalars."""
        batch = self._to_device(batch)
        with self._autocast():
            loss, scalars = split_step_output(self.step(self.train_model, batch))
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scaler
        (loss if scaler is None else scaler.scale(loss)).backward()
        if scaler is not None:
            scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self._parameters, self.config.grad_clip)
        if scaler is None:
            self.optimizer.step()
            stepped = True
        else:
            scale = scaler.get_scale()
            scaler.step(self.optimizer)  # skipped when the gradients hold inf or nan
            scaler.update()
            stepped = scaler.get_scale() >= scale  # the scale shrinks only after a skip
        if stepped and self._schedule_per_step:
            self.scheduler.step()
        return loss.detach(), scalars

    # ----------------------------------------------------------------------------------------
    # Evaluation
    # ----------------------------------------------------------------------------------------

    def evaluate(self, data: Iterable) -> float:
        """The mean loss of ``step`` over ``data`` (eval mode, no gradients)."""
        return self.evaluate_metrics(data)["loss"]

    @torch.no_grad()
    def evaluate_metrics(self, data: Iterable, desc: str = "evaluate") -> dict[str, float]:
        """The mean loss and the step's other scalars over ``data``, plus ``evaluate_fn``'s.

        Every process evaluates all of ``data``; the results are averaged over processes so
        that they agree exactly (early stopping must stop every process at the same epoch).
        """
        was_training = self.model.training
        self.model.eval()
        sums = RunningMeans()
        bar = ProgressBar(self._show_progress, total=_length(data), desc=desc)
        for batch in data:
            with self._autocast():
                loss, scalars = split_step_output(self.step(self.model, self._to_device(batch)))
            sums.add(loss=loss, **scalars)
            bar.update(sums.means)
        bar.close()
        metrics = sums.means() if sums.batches else {"loss": float("nan")}
        if self.evaluate_fn is not None:
            extra = self.evaluate_fn(self.model, data)
            metrics.update({name: float(value) for name, value in extra.items()})
        self.model.train(was_training)
        return self._mean_across_processes(metrics)

    # ----------------------------------------------------------------------------------------
    # Early stopping, plateau schedule and the best weights
    # ----------------------------------------------------------------------------------------

    def _watch_monitor(self, row: dict, has_validation: bool) -> None:
        config = self.config
        needs_monitor = config.patience is not None or config.schedule == "plateau"
        if config.monitor not in row:
            if needs_monitor or has_validation:
                raise UserError(
                    f"TrainConfig.monitor: {config.monitor!r} is not an epoch metric; "
                    f"expected one of {', '.join(k for k in row if k != 'epoch')}"
                    + ("" if has_validation else " (validation metrics need val_data)")
                )
            return
        value = row[config.monitor]
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(value)
        if self._improves(value):
            self.best_metric, self.best_epoch, self.bad_epochs = value, row["epoch"], 0
            if config.restore_best:
                self._best_weights = {
                    k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
                }
        else:
            self.bad_epochs += 1
            if config.patience is not None and self.bad_epochs >= config.patience:
                self.stopped_early = True

    def _improves(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        if self.config.mode == "min":
            return value < self.best_metric - self.config.min_delta
        return value > self.best_metric + self.config.min_delta

    def _should_stop(self) -> bool:
        max_steps = self.config.max_steps
        return self.stopped_early or (max_steps is not None and self.global_step >= max_steps)

    # ----------------------------------------------------------------------------------------
    # Checkpoints
    # ----------------------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path | None:
        """``out_dir/checkpoints`` (None without ``out_dir``)."""
        return Path(self.config.out_dir) / "checkpoints" if self.config.out_dir else None

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is None or not self.config.save_checkpoints:
            return
        # Every process's own part: its generators and the sums of its share of the epoch.
        own = {"rng": get_rng_state(), "epoch_sums": self._epoch_sums.state_dict()}
        per_process = self._gather_json(own)
        if self.accelerator.is_main_process:
            states = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "trainer": self._training_state(per_process),
            }
            if self.grad_scaler is not None:
                states["grad_scaler"] = self.grad_scaler.state_dict()
            save_checkpoint(
                self.checkpoint_dir,
                self.global_step,
                epoch=self.epoch,
                model=self.model.state_dict(),
                states=states,
                best_model=self._best_weights,
            )
        self.accelerator.wait_for_everyone()

    def _training_state(self, per_process: list[dict]) -> dict:
        """The trainer's progress; ``rng`` and ``epoch_sums`` are lists, one per process."""
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "history": self.history,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "epoch_sums": [part["epoch_sums"] for part in per_process],
            "rng": [part["rng"] for part in per_process],
            "config": dataclasses.asdict(self.config),
        }

    def _restore_latest_checkpoint(self) -> None:
        folder = latest_checkpoint(self.checkpoint_dir) if self.checkpoint_dir else None
        if folder is None:
            if self.accelerator.is_main_process:
                print(f"no checkpoint in {self.checkpoint_dir}: starting from scratch")
            return
        loaded = load_checkpoint(folder)
        try:
            self.model.load_state_dict(loaded["model"])
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise UserError(
                f"{folder}: the checkpoint does not fit this model ({first_line})"
            ) from None
        self.optimizer.load_state_dict(loaded["optimizer"])
        self.scheduler.load_state_dict(loaded["scheduler"])
        if self.grad_scaler is not None and "grad_scaler" in loaded:
            self.grad_scaler.load_state_dict(loaded["grad_scaler"])
        state = loaded["trainer"]
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.history = state["global_step"], state["history"]
        self.best_metric, self.best_epoch = state["best_metric"], state["best_epoch"]
        self.bad_epochs, self.stopped_early = state["bad_epochs"], state["stopped_early"]
        self._best_weights = loaded["best_model"]
        # Checkpoints of older versions hold one process's parts, not a list.
        epoch_sums = _per_process(state["epoch_sums"])
        rng = _per_process(state["rng"])
        rank, world_size = self.accelerator.process_index, self.accelerator.num_processes
        if self.step_in_epoch and len(rng) != world_size:
            raise UserError(
                f"{folder}: written mid-epoch by {len(rng)} process(es), resumed with "
                f"{world_size}; resume with {len(rng)} (or from a checkpoint at an epoch's end)"
            )
        own = min(rank, len(rng) - 1)  # at an epoch's start these are not used
        self._epoch_sums = RunningMeans.from_state_dict(epoch_sums[own], self.device)
        # Mid-epoch, the generators continue from where they were; at an epoch's start the
        # epoch's own seed sets them, as in a run that was never interrupted.
        self._resume_rng = rng[own] if self.step_in_epoch else None
        self.resumed_from = folder

    def _reset_progress(self) -> None:
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # batches done in the current, unfinished epoch
        self.global_step = 0
        self.history: list[dict] = []
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        self.resumed_from: Path | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._epoch_sums = RunningMeans()
        self._resume_rng: dict | None = None

    # ----------------------------------------------------------------------------------------
    # Helpers
    # ----------------------------------------------------------------------------------------

    def _steps_per_epoch(self, data: Iterable) -> int | None:
        length = _length(data)
        return None if length is None else length // self.accelerator.num_processes

    def _total_steps(self, steps_per_epoch: int | None) -> int | None:
        by_epochs = None if steps_per_epoch is None else steps_per_epoch * self.config.epochs
        candidates = [n for n in (by_epochs, self.config.max_steps) if n is not None]
        return min(candidates) if candidates else None

    def _to_device(self, batch: Any) -> Any:
        if self.device.type == "cpu":
            return batch  # already there: skip walking the batch's structure
        return send_to_device(batch, self.device, non_blocking=True)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.mixed_precision == "no":
            return contextlib.nullcontext()
        return self.accelerator.autocast()

    def _gather_json(self, value: Any) -> list[Any]:
        """Every process's ``value`` (JSON-compatible), in rank order, on every process.

        Sent as UTF-8 bytes in a tensor rather than with ``all_gather_object``: nothing
        received is unpickled.
        """
        if self.accelerator.num_processes == 1:
            return [value]
        data = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8)
        data = data.to(self.device)
        sizes = self.accelerator.gather(torch.tensor([len(data)], device=self.device)).tolist()
        padded = torch.zeros(max(sizes), dtype=torch.uint8, device=self.device)
        padded[: len(data)] = data
        rows = self.accelerator.gather(padded.unsqueeze(0)).cpu()
        return [
            json.loads(bytes(row[:size].tolist())) for row, size in zip(rows, sizes, strict=True)
        ]

    def _mean_across_processes(self, metrics: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1:
            return metrics
        values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=self.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(metrics, values.tolist(), strict=True))


class RunningMeans:
    """Sums of per-batch scalars (kept on their device, in float64) and the batch count.

    Summing tensors instead of calling ``.item()`` on every step keeps the GPU from waiting.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.batches = 0

    def add(self, **values: torch.Tensor | float) -> None:
        for name, value in values.items():
            value = torch.as_tensor(value).detach()
            value = value.to(_accumulator_dtype(value.device))
            self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.batches += 1

    def means(self) -> dict[str, float]:
        return {name: total.item() / self.batches for name, total in self.sums.items()}

    def state_dict(self) -> dict:
        return {"sums": {k: v.item() for k, v in self.sums.items()}, "batches": self.batches}

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device) -> RunningMeans:
        running = cls()
        dtype = _accumulator_dtype(device)
        running.sums = {
            k: torch.tensor(v, dtype=dtype, device=device) for k, v in state["sums"].items()
        }
        running.batches = state["batches"]
        return running


def _per_process(saved: Any) -> list:
    """A checkpoint's per-process list (older checkpoints hold one dict, not a list)."""
    return saved if isinstance(saved, list) else [saved]


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # mps has no float64


def split_step_output(output: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """``(loss, other scalars)`` from what ``step`` returned; a clear error otherwise."""
    if isinstance(output, dict):
        if "loss" not in output:
            raise UserError(f"step returned a dict without 'loss' (keys: {', '.join(output)})")
        scalars = {k: v for k, v in output.items() if k != "loss"}
        for name, value in scalars.items():
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                raise UserError(
                    f"step returned {name!r} with shape {tuple(value.shape)}; expected a scalar"
                )
        loss = output["loss"]
    else:
        loss, scalars = output, {}
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise UserError(
            "step must return a scalar loss tensor or a dict with 'loss', "
            f"got {type(loss).__name__}"
            + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else "")
        )
    return loss.reshape(()), scalars


def shard_batches(data: Iterable, rank: int, world_size: int) -> Iterator:
    """Every ``world_size``-th batch starting at ``rank``; an incomplete last round is dropped.

    Dropping it keeps every process at the same number of steps, which DDP requires.

    Example:
        >>> list(shard_batches(range(7), rank=1, world_size=3))
        [1, 4]
    """
    if world_size == 1:
        yield from data
        return
    round_ = []
    for batch in data:
        round_.append(batch)
        if len(round_) == world_size:
            yield round_[rank]
            round_ = []


def reseed_data_loader(data: Iterable, seed: int, epoch: int) -> None:
    """Seed a DataLoader's own generator (if it has one) and tell the data the epoch.

    A DataLoader without a generator shuffles with torch's global generator, which the
    trainer has just seeded. Any data (or sampler) with a ``set_epoch(epoch)`` method gets
    the 0-based epoch, so that custom batch iterables can shuffle by epoch too.
    """
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)
    generator = getattr(data, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)
    sampler = getattr(data, "sampler", None)
    sampler_generator = getattr(sampler, "generator", None)
    if isinstance(sampler_generator, torch.Generator) and sampler_generator is not generator:
        sampler_generator.manual_seed(seed)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def make_accelerator(device: str, mixed_precision: str) -> Accelerator:
    """An `Accelerator` for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    accelerate keeps its settings in a process-wide singleton that refuses to change; one
    process (a test session, ``rnnkit tour``) may train models with different settings, so a
    non-distributed process starts it afresh when they differ.
    """
    if device not in ("auto", "cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise UserError(f"device {device!r}: expected auto, cpu, cuda, cuda:N or mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r}: no CUDA GPU is available here; use cpu")
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    try:
        return Accelerator(cpu=cpu, mixed_precision=mixed_precision)
    except ValueError as error:
        if "already been initialized" not in str(error) or PartialState().use_distributed:
            raise
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(cpu=cpu, mixed_precision=mixed_precision)


def _length(data: Iterable) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None

"""The training loop: learning, seeds, clipping, early stopping, schedules, logs, errors."""

from __future__ import annotations

import csv
import io
import math
import sys

import pytest
import torch
from engine_toy import Regressor, make_data, make_step
from torch import nn
from torch.utils.data import DataLoader, Subset

from rnnkit.engine import TrainConfig, Trainer
from rnnkit.engine.logs import progress_enabled
from rnnkit.errors import UserError


def loaders(batch_size: int = 8) -> tuple[DataLoader, DataLoader]:
    data = make_data()
    train = DataLoader(Subset(data, range(80)), batch_size=batch_size, shuffle=True)
    val = DataLoader(Subset(data, range(80, 96)), batch_size=16)
    return train, val


def train_regressor(seed: int = 0, epochs: int = 3, **options) -> tuple[Trainer, list[dict]]:
    torch.manual_seed(seed)
    config = TrainConfig(epochs=epochs, lr=1e-2, seed=seed, device="cpu", **options)
    trainer = Trainer(Regressor(), make_step(0.0), config)
    train, val = loaders()
    return trainer, trainer.fit(train, val_data=val)


def test_loss_falls_and_beats_the_mean_baseline():
    trainer, history = train_regressor(epochs=8)
    targets = make_data().tensors[1]
    baseline = ((targets[80:] - targets[:80].mean()) ** 2).mean().item()  # predict the mean
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["val_loss"] < 0.3 * baseline, (history[-1], baseline)
    assert [row["epoch"] for row in history] == list(range(1, 9))


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    first, _ = train_regressor(seed=3, epochs=2)
    second, _ = train_regressor(seed=3, epochs=2)
    other, _ = train_regressor(seed=4, epochs=2)
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[name]), name
    assert not torch.equal(first.model.head.weight, other.model.head.weight)


def test_plain_list_of_batches_with_extra_scalars_and_evaluate_fn():
    torch.manual_seed(0)
    x = torch.randn(64, 2)
    y = x @ torch.tensor([2.0, -1.0])
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    model = nn.Linear(2, 1)

    def step(model, batch):
        inputs, targets = batch
        error = model(inputs).squeeze(-1) - targets
        return {"loss": (error**2).mean(), "mae": error.abs().mean()}

    def evaluate_fn(model, data):
        return {"max_error": max((step(model, b)["mae"]).item() for b in data)}

    config = TrainConfig(epochs=40, lr=0.1, device="cpu", monitor="val_max_error")
    history = Trainer(model, step, config, evaluate_fn=evaluate_fn).fit(batches, batches)
    assert set(history[0]) == {"epoch", "loss", "mae", "val_loss", "val_mae", "val_max_error", "lr"}
    assert history[-1]["val_loss"] < 0.01 * history[0]["val_loss"]
    assert history[-1]["mae"] < history[0]["mae"]


@pytest.mark.parametrize("clip", [0.5, None])
def test_gradient_clipping_bounds_the_update(clip):
    # One SGD step with lr=1 moves the weights by exactly the (clipped) gradient.
    model = nn.Linear(4, 1)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.ones(8, 4), torch.full((8, 1), 100.0)

    def step(model, batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    loss = step(model, (x, y))
    raw_norm = torch.linalg.vector_norm(
        torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])
    ).item()
    config = TrainConfig(
        epochs=1, lr=1.0, optimizer="sgd", momentum=0.0, grad_clip=clip, device="cpu"
    )
    Trainer(model, step, config).fit([(x, y)])
    moved = math.sqrt(
        sum(((p - b) ** 2).sum().item() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert raw_norm > 100  # far above the clip
    assert moved == pytest.approx(clip if clip else raw_norm, rel=1e-4)


def test_early_stopping_stops_and_restores_the_best_weights():
    scores = [5.0, 3.0, 1.0, 2.0, 4.0, 6.0, 0.5, 0.1]  # best at epoch 3, then two worse ones
    snapshots = []

    def scripted_score(model, data):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"score": scores[len(snapshots) - 1]}

    torch.manual_seed(0)
    model = Regressor()
    config = TrainConfig(epochs=8, device="cpu", monitor="val_score", patience=2)
    trainer = Trainer(model, make_step(0.0), config, evaluate_fn=scripted_score)
    train, val = loaders()
    history = trainer.fit(train, val)
    assert len(history) == 5 and trainer.stopped_early
    assert trainer.best_epoch == 3 and trainer.best_metric == 1.0
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[2][name]), name
    assert not torch.equal(snapshots[2]["head.weight"], snapshots[4]["head.weight"])


def lr_trajectory(evaluate_fn=None, **options) -> list[float]:
    """The learning rate after each of 10 one-batch epochs."""
    model = nn.Linear(1, 1)
    batch = (torch.ones(2, 1), torch.zeros(2, 1))

    def step(model, batch):
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    config = TrainConfig(epochs=10, lr=0.1, device="cpu", **options)
    history = Trainer(model, step, config, evaluate_fn=evaluate_fn).fit([batch], [batch])
    return [row["lr"] for row in history]


def test_warmup_then_cosine_schedule():
    lrs = lr_trajectory(schedule="cosine", warmup_steps=3, min_lr_ratio=0.1)
    assert lrs[:3] == pytest.approx([0.05, 0.075, 0.1])  # (step + 1) / (warmup + 1)
    cosine = [0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 7))) for k in range(1, 8)]
    assert lrs[3:] == pytest.approx(cosine)
    assert lrs[-1] == pytest.approx(0.01)


def test_linear_and_onecycle_schedules_decay_to_zero():
    linear = lr_trajectory(schedule="linear")
    assert linear == pytest.approx([0.1 * (1 - k / 10) for k in range(1, 11)])
    onecycle = lr_trajectory(schedule="onecycle", warmup_steps=3)
    peak = max(range(10), key=onecycle.__getitem__)
    assert peak == 2 and onecycle[peak] == pytest.approx(0.1)
    assert onecycle[-2] < 1e-4  # the LR of the last step (row 10 shows the one after it)


def test_plateau_schedule_cuts_lr_when_the_metric_stalls():
    # The monitored metric never improves after epoch 1: with patience 2 the third bad epoch
    # halves the LR (the row shows the LR used during its epoch).
    lrs = lr_trajectory(
        evaluate_fn=lambda model, data: {"score": 1.0},
        monitor="val_score",
        schedule="plateau",
        plateau_patience=2,
        plateau_factor=0.5,
    )
    assert lrs == pytest.approx([0.1] * 4 + [0.05] * 3 + [0.025] * 3)


def test_bf16_mixed_precision_trains_and_settings_can_change_in_one_process():
    _, history = train_regressor(epochs=3, mixed_precision="bf16")
    assert history[-1]["loss"] < history[0]["loss"]
    trainer, _ = train_regressor(epochs=1)  # back to full precision in the same process
    assert trainer.accelerator.mixed_precision == "no"


def test_metrics_csv_and_tensorboard_logs(tmp_path):
    trainer, history = train_regressor(epochs=2, out_dir=str(tmp_path), log_every=5)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["val_loss"]) == pytest.approx(history[-1]["val_loss"])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_show_epoch_eta_and_live_loss_on_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("TQDM_DISABLE")
    train_regressor(epochs=2)
    shown = terminal.getvalue()
    assert "epoch 1/2" in shown and "epoch 2/2" in shown
    assert "validate" in shown and "<" in shown  # tqdm's "elapsed<remaining"
    assert "loss=" in shown  # live, on the bar
    assert "epoch 2/2: loss " in shown and ", val_loss " in shown  # the lasting summary


def test_progress_bars_hide_when_disabled(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled(True)
    monkeypatch.delenv("TQDM_DISABLE")
    assert progress_enabled(True)
    assert not progress_enabled(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert not progress_enabled(True)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"optimizer": "adamx"}, "TrainConfig.optimizer: expected one of adamw, adam, sgd"),
        ({"schedule": "step"}, "TrainConfig.schedule"),
        ({"mixed_precision": "fp8"}, "TrainConfig.mixed_precision"),
        ({"epochs": 0}, "TrainConfig.epochs"),
        ({"warmup_steps": -1}, "TrainConfig.warmup_steps: expected 0 or more"),
        # plateau changes the LR per epoch from a metric: a warmup would be silently ignored.
        ({"schedule": "plateau", "warmup_steps": 5}, "schedule 'plateau' takes no warmup_steps"),
    ],
)
def test_bad_config_is_a_one_line_user_error(options, message):
    with pytest.raises(UserError, match=message) as error:
        TrainConfig(**options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "output, message",
    [
        ({"accuracy": 1.0}, "without 'loss'"),
        (torch.ones(3), "scalar loss"),
        ("0.5", "scalar loss"),
    ],
)
def test_bad_step_output_is_a_user_error(output, message):
    model = nn.Linear(1, 1)
    trainer = Trainer(model, lambda model, batch: output, TrainConfig(epochs=1, device="cpu"))
    with pytest.raises(UserError, match=message):
        trainer.fit([torch.ones(1, 1)])


def test_patience_on_a_missing_metric_names_the_available_ones():
    model = nn.Linear(1, 1)
    config = TrainConfig(epochs=2, device="cpu", patience=1)
    trainer = Trainer(model, lambda m, b: m(b).pow(2).mean(), config)
    with pytest.raises(UserError, match="'val_loss' is not an epoch metric; expected one of loss"):
        trainer.fit([torch.ones(1, 1)])


def test_max_steps_stops_mid_epoch():
    trainer, history = train_regressor(epochs=5, max_steps=13)  # 10 steps an epoch
    assert trainer.global_step == 13 and len(history) == 2


class EpochAwareBatches:
    """A custom batch iterable that shuffles by the epoch the trainer gives it."""

    def __init__(self):
        self.epochs_seen = []
        self.x = torch.randn(12, 2)

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __iter__(self):
        order = torch.randperm(12, generator=torch.Generator().manual_seed(self.epochs_seen[-1]))
        yield from self.x[order].split(4)


def test_custom_batches_get_the_epoch():
    batches = EpochAwareBatches()
    config = TrainConfig(epochs=3, device="cpu")
    Trainer(nn.Linear(2, 1), lambda model, x: model(x).pow(2).mean(), config).fit(batches)
    assert batches.epochs_seen == [0, 1, 2]


def test_evaluate_matches_the_last_validation_loss():
    trainer, history = train_regressor(epochs=2, restore_best=False)
    _, val = loaders()
    assert trainer.evaluate(val) == pytest.approx(history[-1]["val_loss"], rel=1e-12)
    assert trainer.model.training  # evaluation puts the mode back


def test_a_one_shot_generator_is_a_clear_error_in_the_second_epoch():
    batches = (torch.ones(2, 1) for _ in range(3))
    trainer = Trainer(nn.Linear(1, 1), lambda m, x: m(x).pow(2).mean(), TrainConfig(epochs=2))
    with pytest.raises(UserError, match="no batches in epoch 2; pass a list or a DataLoader"):
        trainer.fit(batches)

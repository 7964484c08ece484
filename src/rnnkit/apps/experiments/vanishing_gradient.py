"""The vanishing-gradient experiment: which recurrent cells can learn long dependencies?

Elman RNN, LSTM, GRU and minGRU (all through rnnkit's layer) are trained on three tasks
(see `rnnkit.apps.experiments.tasks`):

- the adding problem at T in {50, 100, 200, 400}: test MSE against the trivial 0.167;
- the copy task (recall 10 symbols after ``delay`` steps): recall accuracy against 1/8;
- row-by-row sequential MNIST: test accuracy against 10 %.

After training on the adding problem, `hidden_gradient_norms` measures ``||dL/dh_t||`` at
every step: the plot of it against the distance from the loss shows the Elman RNN's
gradient dying out exponentially, while the gated cells carry it across the sequence.

Example:
    >>> from rnnkit.apps.experiments import ExperimentConfig, run_experiment
    >>> results = run_experiment(ExperimentConfig(tasks=("adding",), quick=True), "out/vg")
    >>> results["rows"][0]["cell"], results["rows"][0]["metric"]
    ('RNN', 'test MSE')
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from rnnkit.apps.experiments import tasks
from rnnkit.core import GRU, LSTM, RNN
from rnnkit.engine import TrainConfig, Trainer
from rnnkit.errors import UserError
from rnnkit.files import write_json

CELLS = ("rnn", "lstm", "gru", "mingru")
CELL_LABELS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "mingru": "minGRU"}
TASKS = ("adding", "copy", "smnist")
SOLVED_MSE = 0.01  # the adding problem counts as solved below this test MSE


@dataclass
class Budget:
    """How one task is trained (Adam, gradients clipped to norm 1).

    Generated tasks (adding, copy) draw ``batches_per_epoch`` fresh batches each epoch, so
    they train for ``epochs * batches_per_epoch`` optimizer steps; sequential MNIST passes
    over its 4,000 training digits ``epochs`` times.
    """

    hidden_size: int
    batch_size: int
    epochs: int
    batches_per_epoch: int  # generated tasks; sequential MNIST uses its whole training set
    lr: float
    test_size: int


FULL_BUDGETS = {
    "adding": Budget(
        hidden_size=32, batch_size=64, epochs=20, batches_per_epoch=100, lr=1e-2, test_size=1000
    ),
    "copy": Budget(
        hidden_size=64, batch_size=64, epochs=20, batches_per_epoch=100, lr=1e-2, test_size=500
    ),
    "smnist": Budget(
        hidden_size=64, batch_size=64, epochs=15, batches_per_epoch=0, lr=5e-3, test_size=1000
    ),
}
QUICK_BUDGETS = {
    "adding": Budget(16, 32, 2, 10, 1e-2, 100),
    "copy": Budget(16, 32, 2, 10, 1e-2, 100),
    "smnist": Budget(16, 64, 1, 0, 5e-3, 1000),
}


@dataclass
class ExperimentConfig:
    """What to run.

    Args:
        tasks: some of ``adding``, ``copy``, ``smnist``.
        cells: some of ``rnn`` (Elman, tanh), ``lstm``, ``gru``, ``mingru``.
        adding_lengths: the sequence lengths T of the adding problem.
        copy_delays: the delays of the copy task.
        quick: a seconds-long run (tiny models, few steps, short sequences): a smoke test.
        epochs: override the budget's epochs for every task.
        seed: seeds the data and the training.
        device: where to train.
        progress: progress bars while training, and a line per finished run.
        budgets: per-task `Budget` overriding `FULL_BUDGETS` (or `QUICK_BUDGETS`).
    """

    tasks: tuple[str, ...] = TASKS
    cells: tuple[str, ...] = CELLS
    adding_lengths: tuple[int, ...] = (50, 100, 200, 400)
    copy_delays: tuple[int, ...] = (50, 100)
    quick: bool = False
    epochs: int | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = False
    budgets: dict[str, Budget] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, given, allowed in (("task", self.tasks, TASKS), ("cell", self.cells, CELLS)):
            unknown = [value for value in given if value not in allowed]
            if unknown or not given:
                raise UserError(
                    f"{name}s: expected some of {', '.join(allowed)}, got {', '.join(given)}"
                )
        for name in ("adding_lengths", "copy_delays"):
            if any(value < 2 for value in getattr(self, name)):
                raise UserError(f"{name}: expected integers >= 2, got {getattr(self, name)}")
        if self.quick:
            self.adding_lengths = tuple(min(value, 30) for value in self.adding_lengths[:1])
            self.copy_delays = tuple(min(value, 10) for value in self.copy_delays[:1])
        defaults = QUICK_BUDGETS if self.quick else FULL_BUDGETS
        self.budgets = {**defaults, **self.budgets}
        if self.epochs:
            self.budgets = {k: replace(b, epochs=self.epochs) for k, b in self.budgets.items()}


class SequenceModel(nn.Module):
    """A recurrent layer of rnnkit and a linear read-out.

    Args:
        cell: ``rnn``, ``lstm``, ``gru`` or ``mingru``.
        input_size: features per step; for token input (int64) the vocabulary size, and the
            tokens are fed one-hot.
        hidden_size: the layer's width.
        output_size: outputs per step (or per sequence).

    Shapes: ``x`` [B, T, input_size] (float) or [B, T] (int64 tokens) -> [B, output_size]
    from the last step, or [B, T, output_size] with ``every_step=True``.

    Example:
        >>> model = SequenceModel("lstm", input_size=2, hidden_size=8, output_size=1)
        >>> model(torch.randn(4, 30, 2)).shape
        torch.Size([4, 1])
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.rnn = recurrent_layer(cell, input_size, hidden_size)
        self.head = nn.Linear(hidden_size, output_size)

    def features(self, x: Tensor) -> Tensor:
        return F.one_hot(x, self.input_size).float() if x.dtype == torch.long else x

    def forward(self, x: Tensor, every_step: bool = False) -> Tensor:
        outputs, _ = self.rnn(self.features(x))
        return self.head(outputs if every_step else outputs[:, -1])


def recurrent_layer(cell: str, input_size: int, hidden_size: int) -> nn.Module:
    """rnnkit's batch-first layer for ``cell`` (one of `CELLS`)."""
    if cell == "rnn":
        return RNN(input_size, hidden_size, batch_first=True)
    if cell == "lstm":
        return LSTM(input_size, hidden_size, batch_first=True)
    if cell == "gru":
        return GRU(input_size, hidden_size, batch_first=True)
    if cell == "mingru":
        return GRU(input_size, hidden_size, batch_first=True, cell="mingru")
    raise UserError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")


class GeneratedBatches:
    """``batches`` freshly generated batches per pass (one epoch of the Trainer).

    Each pass seeds its own generator from torch's global one, which the Trainer seeds with
    ``seed + epoch``: every epoch sees new sequences and a run is reproducible.
    """

    def __init__(
        self, make: Callable[[int, torch.Generator], tuple], batch_size: int, batches: int
    ) -> None:
        self.make, self.batch_size, self.batches = make, batch_size, batches

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[tuple]:
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        for _ in range(self.batches):
            yield self.make(self.batch_size, generator)


# -------------------------------------------------------------------------------------------
# The three tasks: data, loss and test metric
# -------------------------------------------------------------------------------------------


def adding_step(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return F.mse_loss(model(x)[:, 0], y)


def copy_step(model: nn.Module, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    x, y = batch
    logits = model(x, every_step=True)
    recalled = logits[:, -tasks.COPY_LENGTH :].argmax(-1) == y[:, -tasks.COPY_LENGTH :]
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return {"loss": loss, "recall": recalled.float().mean()}


def classification_step(model: nn.Module, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(-1) == y).float().mean()}


@dataclass
class Run:
    """One training run: a cell on a task at one length, and what came of it."""

    task: str
    length: int
    cell: str
    metric: str
    value: float
    baseline: float
    seconds: float
    history: list[dict]
    model: SequenceModel
    test: tuple[Tensor, Tensor]

    def row(self) -> dict:
        row = {
            "task": self.task,
            "T": self.length,
            "cell": CELL_LABELS[self.cell],
            "metric": self.metric,
            "value": round(self.value, 4),
            "baseline": round(self.baseline, 4),
        }
        if self.task == "adding":
            row["solved (MSE < 0.01)"] = "yes" if self.value < SOLVED_MSE else "no"
        else:
            row["solved (MSE < 0.01)"] = ""
        row["seconds"] = round(self.seconds, 1)
        return row


def train_run(task: str, length: int, cell: str, config: ExperimentConfig) -> Run:
    """Train ``cell`` on ``task`` at sequence length (or delay) ``length``; test it."""
    budget = config.budgets[task]
    torch.manual_seed(config.seed)  # the model's initial weights
    test_seed = config.seed + 1_000_003  # test data never overlaps the training stream
    if task == "adding":
        model = SequenceModel(cell, 2, budget.hidden_size, 1)
        train = GeneratedBatches(
            lambda n, g: tasks.adding_problem(n, length, g),
            budget.batch_size,
            budget.batches_per_epoch,
        )
        test = tasks.adding_problem(budget.test_size, length, test_seed)
        step, metric, baseline = adding_step, "test MSE", tasks.ADDING_BASELINE_MSE
    elif task == "copy":
        model = SequenceModel(
            cell, tasks.COPY_VOCABULARY, budget.hidden_size, tasks.COPY_VOCABULARY
        )
        train = GeneratedBatches(
            lambda n, g: tasks.copy_task(n, length, g), budget.batch_size, budget.batches_per_epoch
        )
        test = tasks.copy_task(budget.test_size, length, test_seed)
        step, metric, baseline = copy_step, "recall accuracy", 1.0 / tasks.COPY_SYMBOLS
    else:
        model = SequenceModel(cell, 28, budget.hidden_size, 10)
        (x_train, y_train), test = tasks.sequential_mnist(seed=config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        if config.quick:  # a random fifth of the digits (they are stored sorted by class)
            subset = torch.randperm(len(y_train), generator=generator)[: len(y_train) // 5]
            x_train, y_train = x_train[subset], y_train[subset]
        train = DataLoader(
            TensorDataset(x_train, y_train),
            batch_size=budget.batch_size,
            shuffle=True,
            generator=generator,
        )
        majority_class = torch.bincount(y_train).argmax()
        majority = (test[1] == majority_class).float().mean().item()
        step, metric, baseline = classification_step, "test accuracy", majority

    validation = [tuple(part[:200] for part in test)]  # a small curve point every epoch
    trainer = Trainer(
        model,
        step,
        TrainConfig(
            epochs=budget.epochs,
            lr=budget.lr,
            grad_clip=1.0,
            seed=config.seed,
            device=config.device,
            optimizer="adam",
            progress=config.progress,
            save_checkpoints=False,
            tensorboard=False,
            restore_best=False,
        ),
    )
    start = time.perf_counter()
    history = trainer.fit(train, val_data=validation)
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    value = evaluate(model, task, test)
    return Run(task, length, cell, metric, value, baseline, seconds, history, model, test)


@torch.no_grad()
def evaluate(model: SequenceModel, task: str, test: tuple[Tensor, Tensor]) -> float:
    """The task's test metric: MSE (adding), recall accuracy (copy) or accuracy (smnist)."""
    x, y = test
    if task == "adding":
        return F.mse_loss(model(x)[:, 0], y).item()
    if task == "copy":
        return copy_step(model, (x, y))["recall"].item()
    return classification_step(model, (x, y))["accuracy"].item()


# -------------------------------------------------------------------------------------------
# The gradient probe and the plots
# -------------------------------------------------------------------------------------------


def hidden_gradient_norms(model: SequenceModel, x: Tensor, y: Tensor) -> Tensor:
    """``||dL/dh_t||`` (mean over the batch) at every step t of the adding problem.

    The layer is run one step at a time, carrying its state, so that each step's hidden
    state is a tensor of its own whose gradient autograd can keep.

    Args:
        model: a `SequenceModel` for the adding problem; x [B, T, 2]; y [B].

    Returns:
        [T] float64 tensor; entry t is the gradient at distance T - 1 - t from the loss.
        The model itself is left untouched (a float64 copy is probed).
    """
    # In float64, so that the Elman RNN's gradient does not underflow to zero (float32
    # stops at 1e-38 or so) and the plot shows its exponential decay all the way.
    model = copy.deepcopy(model).double().eval()
    x, y = x.double(), y.double()
    state, hidden_states = None, []
    for t in range(x.shape[1]):
        _, state = model.rnn(x[:, t : t + 1], state)
        h = state[0] if isinstance(state, tuple) else state
        h.retain_grad()
        hidden_states.append(h)
    loss = F.mse_loss(model.head(hidden_states[-1][-1])[:, 0], y)  # the last layer's last h
    loss.backward()
    return torch.stack([h.grad.norm(dim=-1).mean() for h in hidden_states]).detach()


def plot_gradient_norms(curves: dict[str, tuple[Tensor, Tensor]], length: int, path: Path) -> Path:
    """One line per cell: ``||dL/dh_t||`` against the distance from the loss, log scale.

    Args:
        curves: cell label -> (norms after training, norms at initialization), each [T].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for index, (label, (trained, initial)) in enumerate(curves.items()):
        colour = f"C{index}"
        distance = torch.arange(len(trained) - 1, -1, -1)
        axis.plot(distance, trained.clamp_min(1e-300), color=colour, label=f"{label}, trained")
        axis.plot(
            distance,
            initial.clamp_min(1e-300),
            color=colour,
            linestyle=":",
            alpha=0.7,
            label=f"{label}, initial",
        )
    axis.set_yscale("log")
    # Below 1e-40 the Elman RNN's line only keeps falling (down to float64's 1e-308 at
    # T = 400) and would squash the gated cells' lines into one: cut the axis there.
    smallest = min(float(c.min()) for pair in curves.values() for c in pair)
    axis.set_ylim(bottom=max(smallest / 10, 1e-40))
    axis.set_xlabel("distance from the loss (steps)")
    axis.set_ylabel("mean ||dL/dh_t||")
    axis.set_title(f"Gradient of the loss with respect to the hidden state, adding T={length}")
    axis.legend(fontsize=8, ncol=2)
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_learning_curves(runs: list[Run], path: Path) -> Path:
    """Validation MSE of the adding problem per epoch: one panel per T, one line per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({run.length for run in runs})
    figure, axes = plt.subplots(1, len(lengths), figsize=(3.6 * len(lengths), 3.4), squeeze=False)
    for axis, length in zip(axes[0], lengths, strict=True):
        for index, cell in enumerate(CELLS):
            for run in runs:
                if run.length == length and run.cell == cell:
                    epochs = [row["epoch"] for row in run.history]
                    losses = [row["val_loss"] for row in run.history]
                    axis.plot(epochs, losses, color=f"C{index}", label=CELL_LABELS[cell])
        axis.axhline(tasks.ADDING_BASELINE_MSE, color="grey", linestyle="--", label="baseline")
        axis.set_yscale("log")
        axis.set_title(f"adding, T={length}")
        axis.set_xlabel("epoch")
    axes[0][0].set_ylabel("validation MSE")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# -------------------------------------------------------------------------------------------
# The whole experiment
# -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` CPU threads inside the block. These models are tiny (a [64, 32] state):
    a second thread costs more in synchronization than it gains, much more on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_experiment(config: ExperimentConfig, out: str | Path) -> dict:
    """Train every cell on every task, write ``metrics.json`` and the plots into ``out``.

    Returns:
        ``{"rows": [...], "gradients": [...], "images": {...}, "config": {...}}``: one row
        per (task, T, cell) with the test metric and its trivial baseline (`Run.row`); per
        cell, the share of the gradient that reaches the first step of the adding problem
        (see `_gradient_probe`); the names of the plots written into ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    with torch_threads(1):
        for task in config.tasks:
            lengths = {
                "adding": config.adding_lengths,
                "copy": config.copy_delays,
                "smnist": (28,),
            }[task]
            for length in lengths:
                for cell in config.cells:
                    run = train_run(task, length, cell, config)
                    runs.append(run)
                    if config.progress:
                        print(_describe(run), flush=True)
        images, gradient_rows = {}, []  # images: file names inside `out`
        adding_runs = [run for run in runs if run.task == "adding"]
        if adding_runs:
            plot, gradient_rows = _gradient_probe(adding_runs, config, out)
            images["gradient_norms"] = plot.name
            curves = plot_learning_curves(adding_runs, out / "adding_learning_curves.png")
            images["learning_curves"] = curves.name
    rows = [run.row() for run in runs]
    settings = {k: v for k, v in asdict(config).items() if k != "budgets"}
    settings["budgets"] = {task: asdict(config.budgets[task]) for task in config.tasks}
    results = {"rows": rows, "gradients": gradient_rows, "images": images, "config": settings}
    write_json(out / "metrics.json", results)
    return results


def _gradient_probe(
    adding_runs: list[Run], config: ExperimentConfig, out: Path
) -> tuple[Path, list[dict]]:
    """The probe at the longest T, on the trained models and on fresh ones at initialization.

    Returns:
        the plot, and one row per cell: how much of the gradient at the last step reaches
        the first, ``||dL/dh_1|| / ||dL/dh_T||``, after training and at initialization.
    """
    length = max(run.length for run in adding_runs)
    x, y = tasks.adding_problem(100, length, config.seed + 7)
    curves, rows = {}, []
    for run in adding_runs:
        if run.length != length:
            continue
        torch.manual_seed(config.seed)  # the same initial weights as the trained model had
        fresh = SequenceModel(run.cell, 2, run.model.head.in_features, 1)
        trained, initial = (
            hidden_gradient_norms(run.model, x, y),
            hidden_gradient_norms(fresh, x, y),
        )
        curves[CELL_LABELS[run.cell]] = (trained, initial)
        rows.append(
            {
                "cell": CELL_LABELS[run.cell],
                "T": length,
                "gradient reaching step 1, trained": float(trained[0] / trained[-1]),
                "at initialization": float(initial[0] / initial[-1]),
            }
        )
    return plot_gradient_norms(curves, length, out / "gradient_norms.png"), rows


def _describe(run: Run) -> str:
    return (
        f"{run.task} T={run.length} {CELL_LABELS[run.cell]}: {run.metric} "
        f"{run.value:.4f} (baseline {run.baseline:.4f}) in {run.seconds:.0f} s"
    )

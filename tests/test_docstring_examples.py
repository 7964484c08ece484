"""Every docstring example (``>>>``) of rnnkit runs and prints what it shows: one test per module.

A learner copies these examples first, so they are kept true: tiny sizes where they train,
seeds or shapes where numbers are random, ``# doctest: +SKIP`` only where an example cannot
run in a test (a trained model's timing, minutes of training on a real data set). The
examples write their files (models/, runs/, sample.mid...) into a fresh temporary folder.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import rnnkit

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names(path: list[str] = rnnkit.__path__, prefix: str = "rnnkit.") -> Iterator[str]:
    """Every module of the package, found on disk (collecting the tests imports nothing)."""
    for info in pkgutil.iter_modules(path, prefix):
        if info.name.endswith(".__main__"):
            continue
        yield info.name
        if info.ispkg:
            folder = str(Path(path[0]) / info.name.rpartition(".")[2])
            yield from module_names([folder], info.name + ".")


MODULES = ["rnnkit", *module_names()]


def import_or_skip(name: str):
    """The module, or a skip when it needs an optional package that is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing == "rnnkit" or missing.startswith("rnnkit."):
            raise
        pytest.skip(f"{name} needs the optional package {missing!r}")


def test_every_module_is_found():
    assert {"rnnkit.core.layer", "rnnkit.apps.forecast.forecaster", "rnnkit.stats"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    module = import_or_skip(name)
    monkeypatch.chdir(tmp_path)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)

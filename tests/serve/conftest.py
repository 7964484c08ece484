"""Fixtures of the serve tests: tiny models of every app, trained once per session, and a
live server of them (see `served_models`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from served_models import TRAINERS, LiveServer

from rnnkit.serve import Settings, create_app, load_models


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    """``{app: folder}`` of a tiny trained model of every application."""
    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    folders = {}
    for app, train in TRAINERS.items():
        began = time.perf_counter()
        train(root / app)
        print(f"trained {app} in {time.perf_counter() - began:.1f} s")
        folders[app] = root / app
    return folders


@pytest.fixture(scope="session")
def served(model_folders):
    """The loaded models (shared by every app made in the tests)."""
    return load_models(list(model_folders.values()), Settings())


@pytest.fixture(scope="session")
def live_server(served):
    """A running server of every tiny model, without a token."""
    with LiveServer(create_app(served, Settings())) as server:
        yield server

"""Where slow-to-parse data is cached: ``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder in rnnkit's cache, e.g. ``cache_dir("music21", "10.5")``.

    Key the folder by the version of the package the data came from, so that an upgrade
    re-parses instead of reading a stale cache.
    """
    root = Path(os.environ.get("RNNKIT_CACHE", Path.home() / ".cache" / "rnnkit"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path

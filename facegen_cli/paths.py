"""Where facegen keeps files of its own: the user cache and the shipped weights."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A folder under $FACEGEN_CACHE, else $XDG_CACHE_HOME/facegen, else ~/.cache/facegen."""
    root = os.environ.get("FACEGEN_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facegen"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_dir() -> Path:
    """The shipped models: `weights/` of a checkout, or the copy installed in the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return here / "weights"

"""Where facegen keeps files of its own: the user cache and the shipped weights."""
from __future__ import annotations

import os
from pathlib import Path

from facegen_cli.errors import BadInput
from facegen_cli.fileio import check_writable


def cache_dir(*parts: str) -> Path:
    """A folder under $FACEGEN_CACHE, else $XDG_CACHE_HOME/facegen, else ~/.cache/facegen."""
    root = os.environ.get("FACEGEN_CACHE")
    if root:
        base, setting = Path(root), "FACEGEN_CACHE"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facegen"
        setting = "XDG_CACHE_HOME" if os.environ.get("XDG_CACHE_HOME") else "the cache folder"
    path = base.joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
        check_writable(path, folder=True, what=setting)
    except OSError as e:
        raise BadInput(f"{setting} {base}: cannot create {path} ({e.strerror or e}); point FACEGEN_CACHE at a "
                       f"writable folder") from None
    return path


def weights_dir() -> Path:
    """The shipped models: `weights/` of a checkout, or the copy installed in the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights", here.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return here / "weights"

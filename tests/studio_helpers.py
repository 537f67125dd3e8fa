"""Shared by the studio tests: a studio on a tiny network served from a thread, and stand-in real photos."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest
import torch
from PIL import Image

from facegen_cli.checkpoint import Network
from facegen_cli.networks import load_network
from facegen_cli.studio.server import build_app, start_in_thread
from tiny_nets import tiny_checkpoint


def real_faces(folder: Path, count: int = 2) -> Path:
    """A folder of stand-in 'real' photos (solid colours of different sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (40 + 8 * i, 48), (200 - 60 * i, 80, 40 * i)).save(folder / f"real{i}.png")
    return folder


@contextlib.contextmanager
def tiny_studio(root: Path, network: Path | None = None) -> Iterator[tuple[str, Network]]:
    """A studio on `network` (default: a tiny StyleGAN2) with two 'real' photos, its cache and temp files
    under `root`; yields (url, net)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGEN_CACHE", str(root / "cache"))
        mp.setenv("TMPDIR", str(root / "tmp"))
        (root / "tmp").mkdir()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        net = load_network(network or tiny_checkpoint(root / "tiny.safetensors"))
        running = start_in_thread(build_app(net, real_faces(root / "real")))
        try:
            yield running.url.rstrip("/"), net
        finally:
            running.stop()
            torch.set_num_threads(threads)

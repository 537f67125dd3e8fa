"""Shared by the studio tests: a studio on a tiny network served from a thread, with real photos for the quiz."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from facegen_cli.networks import Network, load_network
from facegen_cli.studio import browser
from facegen_cli.studio.server import build_app, start_in_thread
from real_faces import CELEBA_IMAGES
from tiny_nets import tiny_checkpoint

# CelebA photos no shipped model trained on; dlib finds a face in the first two, none in the third
QUIZ_PHOTOS = ("009001.jpg", "009002.jpg", "009003.jpg")


def real_faces(folder: Path) -> Path | None:
    """A folder of the QUIZ_PHOTOS as they are (None without the shared data)."""
    if not CELEBA_IMAGES.is_dir():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for name in QUIZ_PHOTOS:
        shutil.copyfile(CELEBA_IMAGES / name, folder / name)
    return folder


def needs_real_faces() -> None:
    if not CELEBA_IMAGES.is_dir():
        pytest.skip(f"real faces not found: {CELEBA_IMAGES} (the shared data folder beside the repository)")


@contextlib.contextmanager
def tiny_studio(root: Path, network: Path | None = None, data: Path | None = None,
                state: Path | None = None) -> Iterator[tuple[str, Network]]:
    """A studio on `network` (default: a tiny StyleGAN2) with real faces from `data` (default: the QUIZ_PHOTOS),
    its cache and temp files under `root`, the tabs' faces in `state` (default: in that cache); yields (url, net)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGEN_CACHE", str(root / "cache"))
        mp.setenv("TMPDIR", str(root / "tmp"))
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        net = load_network(network or tiny_checkpoint(root / "tiny.safetensors"))
        running = start_in_thread(build_app(net, data or real_faces(root / "real"), state=state))
        try:
            yield running.url.rstrip("/"), net
        finally:
            running.stop()
            torch.set_num_threads(threads)


@contextlib.contextmanager
def browsed_studio(root: Path, network: Path | None = None) -> Iterator[tuple[str, Network, Any, Path]]:
    """A `tiny_studio` (on `network`) open in one headless Chromium that downloads into root/downloads;
    yields (url, net, driver, downloads)."""
    downloads = root / "downloads"
    downloads.mkdir()
    with tiny_studio(root, network) as (url, net):
        driver = browser.chromium(downloads)
        try:
            browser.open_studio(driver, url)
            yield url, net, driver, downloads
        finally:
            driver.quit()

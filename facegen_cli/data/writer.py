"""Write a training set: a folder or zip of `img00000000.png`... plus NVIDIA's dataset.json.

Every file is written atomically. A zip is assembled in a staging folder beside it
(`OUT.zip.partial/`) and appears only when complete, so a killed run never leaves a
half-written image, json or archive, and a later run can resume from the staging folder.
A work file (the caller's journal) may live beside the images while writing; it is never part of
the finished dataset.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facegen_cli.errors import FacegenError
from facegen_cli.fileio import atomic_path, write_bytes_atomic, write_text_atomic

IMAGE_NAME = "img{:08d}.png"
_IMAGE_NAME = re.compile(r"^img\d{8}\.png$")


def encode_png(pixels: np.ndarray) -> bytes:
    """HWC (or HW) uint8 RGB or grayscale pixels -> PNG bytes."""
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:
        raise FacegenError(f"cannot encode a {pixels.shape} image as PNG")
    return buf.tobytes()


class DatasetWriter:
    """Writes numbered PNGs and dataset.json into a folder, or into a zip via a staging folder."""

    def __init__(self, out: str | os.PathLike, resume: bool = False, work_file: str | None = None):
        self.out = Path(out)
        self.is_zip = self.out.suffix.lower() == ".zip"
        self.folder = self.out.with_name(self.out.name + ".partial") if self.is_zip else self.out
        self.work_file = work_file
        if self.out.exists() and not self.out.is_dir() and not self.is_zip:
            raise FacegenError(f"{self.out}: exists and is not a folder (name a folder or a .zip)")
        if not resume and self.started:
            raise FacegenError(f"{self.out}: already exists; resume it, or choose a new output")
        self.complete = self._finished()
        if self.complete:  # there is nothing to resume
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.drop_temporaries()  # of a run killed mid-write

    def drop_temporaries(self) -> None:
        """Remove half-written files; a signal can land between a temporary's creation and its cleanup."""
        for stale in self.folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    def _finished(self) -> bool:
        """A zip without its staging folder, or a folder with dataset.json whose work file is gone."""
        from facegen_cli.data.dataset import LABELS_FILE  # here, so worker processes never import torch

        if self.is_zip:
            return self.out.is_file() and not self.folder.exists()
        return (self.work_file is not None and (self.folder / LABELS_FILE).is_file()
                and not (self.folder / self.work_file).exists())

    @property
    def started(self) -> bool:
        """Whether an earlier run left output here (finished, or a folder to resume)."""
        if self.is_zip:
            return self.out.exists() or self.folder.exists()
        return self.out.is_dir() and any(self.out.iterdir())

    @staticmethod
    def name(index: int) -> str:
        """File name of the sample at `index`."""
        return IMAGE_NAME.format(index)

    def write_png(self, index: int, png: bytes) -> str:
        """Write one encoded image atomically; returns its name in the dataset."""
        name = self.name(index)
        write_bytes_atomic(self.folder / name, png)
        return name

    def read_json(self, name: str) -> Any:
        """A json file of the dataset, from the folder being written or from the finished zip."""
        try:
            if self.complete and self.is_zip:
                with zipfile.ZipFile(self.out) as archive:
                    return json.loads(archive.read(name))
            return json.loads((self.folder / name).read_text(encoding="utf-8"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise FacegenError(f"{self.out}: cannot read {name} ({e})") from None

    def write_json(self, name: str, data: Any, indent: int | None = 1) -> None:
        """Write a json file beside the images atomically."""
        write_text_atomic(self.folder / name, json.dumps(data, indent=indent) + "\n")

    def finish(self, names: list[str], dataset: dict[str, Any], extra_json: dict[str, Any]) -> Path:
        """Write dataset.json and the extra json files, drop stray images, and pack the zip."""
        from facegen_cli.data.dataset import LABELS_FILE  # here, so worker processes never import torch

        keep = set(names)
        for path in self.folder.iterdir():
            if _IMAGE_NAME.match(path.name) and path.name not in keep:
                path.unlink()
        self.write_json(LABELS_FILE, dataset, indent=None)  # compact: one entry per sample adds up
        for name, data in extra_json.items():
            self.write_json(name, data)
        if not self.is_zip:
            if self.work_file:
                (self.folder / self.work_file).unlink(missing_ok=True)
            return self.out
        with atomic_path(self.out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            for name in [*names, LABELS_FILE, *extra_json]:
                archive.write(self.folder / name, name)
        shutil.rmtree(self.folder)
        return self.out

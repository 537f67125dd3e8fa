"""Read a training set: a folder or zip of PNG/JPEG images plus NVIDIA's optional dataset.json.

dataset.json holds `{"labels": [["img00000000.png", label], ...]}` where a label is an
integer class or a list of floats; names are paths relative to the folder / zip root.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import refuse_special

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LABELS_FILE = "dataset.json"
EXIF_ORIENTATION = 0x0112
TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class ImageSource:
    """Uniform file access to a folder or a zip archive of images."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not refuse_special(self.path, "a folder or a zip archive of images").exists():
            raise BadInput(f"{self.path}: no such file or folder")
        self.is_zip = self.path.is_file()
        if self.is_zip and not zipfile.is_zipfile(self.path):
            raise FacegenError(f"{self.path}: not a folder or a zip archive of images")
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = 0

    @cached_property
    def names(self) -> list[str]:
        """Relative paths of every image, sorted."""
        if self.is_zip:
            with zipfile.ZipFile(self.path) as z:
                all_names = z.namelist()
        else:
            all_names = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]
        return sorted(n for n in all_names if n.lower().endswith(IMAGE_SUFFIXES))

    def read(self, name: str) -> bytes:
        if not self.is_zip:
            return (self.path / name).read_bytes()
        if self._zip is None or self._zip_pid != os.getpid():
            # One handle per process: a forked loader worker that kept its parent's handle would share
            # the file offset with it, and their interleaved reads fail the CRC check.
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip.read(name)

    def has(self, name: str) -> bool:
        if self.is_zip:
            with zipfile.ZipFile(self.path) as z:
                return name in z.namelist()
        return (self.path / name).is_file()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None}


def _reason(error: Exception) -> str:
    """PIL's complaint about a file, without the in-memory buffer it names."""
    return "not an image in a format Pillow reads" if isinstance(error, UnidentifiedImageError) else str(error)


def image_size(data: bytes, name: str = "image") -> tuple[int, int]:
    """(width, height) of an encoded image as `decode_image` will return it (EXIF orientation applied), read
    from its header; the file's structure is verified too (chunk checksums of a PNG), without decoding pixels."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:  # verify() leaves the image unusable
            width, height = img.size
            if img.getexif().get(EXIF_ORIENTATION) in TURNED:
                width, height = height, width
            jpeg = img.format == "JPEG"
    except Exception as e:  # PIL raises many types for bad files
        raise FacegenError(f"{name}: cannot decode image ({_reason(e)})") from None
    # verify() does not read a JPEG's scan data; its end-of-image marker must follow the last scan's start
    if jpeg and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise FacegenError(f"{name}: cannot decode image (truncated JPEG: no end-of-image marker)")
    return width, height


def check_images(source: ImageSource) -> dict[str, tuple[int, int]]:
    """Every image's (width, height), read before any loader worker starts so a bad file is one clear error."""
    return {name: image_size(source.read(name), f"{source.path}/{name}") for name in source.names}


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes -> HWC uint8 RGB (EXIF orientation applied)."""
    try:
        img = Image.open(io.BytesIO(data))
        img = ImageOps.exif_transpose(img).convert("RGB")
    except Exception as e:  # PIL raises many types for bad files
        raise FacegenError(f"{name}: cannot decode image ({_reason(e)})") from None
    return np.asarray(img)


class ImageDataset(torch.utils.data.Dataset):
    """Images as CHW uint8 tensors with their labels (float32, zero-length when unlabelled)."""

    def __init__(self, path: str | os.PathLike, use_labels: bool = False, mirror: bool = False,
                 channels: int | None = None):
        self.source = ImageSource(path)
        self.names = self.source.names
        if not self.names:
            raise FacegenError(f"{self.source.path}: contains no PNG/JPEG/WebP/BMP images")
        self.mirror = mirror
        self.use_labels = use_labels
        sizes = check_images(self.source)
        width, height = sizes[self.names[0]]
        if width != height:
            raise FacegenError(f"{self.source.path}/{self.names[0]}: images must be square, got {width}x{height}")
        odd = next((name for name, size in sizes.items() if size != (width, height)), None)
        if odd is not None:
            raise FacegenError(f"{self.source.path}/{odd}: size {sizes[odd][0]}x{sizes[odd][1]} differs from "
                               f"{self.names[0]}'s {width}x{height}; every training image must have the same size")
        first = self._load(0)
        self.channels = channels or first.shape[0]
        self.resolution = first.shape[1]
        self.labels: np.ndarray | None = self._read_labels() if use_labels else None  # [N, label_dim]

    @cached_property
    def label_names(self) -> list[str] | None:
        """Attribute names from dataset.json's optional `label_names`."""
        meta = self.read_meta()
        return meta.get("label_names") if meta else None

    def read_meta(self) -> dict | None:
        if not self.source.has(LABELS_FILE):
            return None
        try:
            return json.loads(self.source.read(LABELS_FILE))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FacegenError(f"{self.source.path}/{LABELS_FILE}: not valid JSON ({e})") from None

    @property
    def has_labels(self) -> bool:
        meta = self.read_meta()
        return bool(meta and meta.get("labels"))

    def load_labels(self) -> None:
        """Read the labels into a dataset opened without them, its images not checked again."""
        self.labels = self._read_labels()
        self.use_labels = True

    def _read_labels(self) -> np.ndarray:
        meta = self.read_meta()
        if not meta or not meta.get("labels"):
            raise FacegenError(f"{self.source.path}: has no labels in {LABELS_FILE}")
        table = dict((name, label) for name, label in meta["labels"])
        missing = [n for n in self.names if n not in table]
        if missing:
            raise FacegenError(f"{self.source.path}/{LABELS_FILE}: no label for {missing[0]} "
                               f"({len(missing)} images unlabelled)")
        values = [table[n] for n in self.names]
        if all(isinstance(v, int) for v in values):
            onehot = np.zeros([len(values), max(values) + 1], dtype=np.float32)
            onehot[np.arange(len(values)), values] = 1
            return onehot
        return np.asarray(values, dtype=np.float32).reshape(len(values), -1)

    @property
    def label_dim(self) -> int:
        return 0 if self.labels is None else self.labels.shape[1]

    def _load(self, idx: int) -> np.ndarray:
        name = self.names[idx]
        arr = decode_image(self.source.read(name), f"{self.source.path}/{name}")
        if getattr(self, "channels", 3) == 1:
            arr = arr.mean(axis=2, keepdims=True).round().astype(np.uint8)
        return arr.transpose(2, 0, 1)

    def __len__(self) -> int:
        return len(self.names) * (2 if self.mirror else 1)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        flip = idx >= len(self.names)
        idx = idx % len(self.names)
        img = self._load(idx)
        if img.shape[1] != self.resolution or img.shape[2] != self.resolution:
            raise FacegenError(f"{self.source.path}/{self.names[idx]}: size {img.shape[2]}x{img.shape[1]} differs "
                               f"from the first image's {self.resolution}x{self.resolution}")
        if flip:
            img = img[:, :, ::-1]
        label = self.labels[idx] if self.labels is not None else np.zeros([0], np.float32)
        return torch.from_numpy(np.ascontiguousarray(img)), torch.from_numpy(label)

"""Image tensors to files: PNG/JPEG encoding, grids, atomic saving."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen_cli.errors import BadInput
from facegen_cli.fileio import write_bytes_atomic

FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW floats in [-1, 1] -> NHWC uint8, rounded the way NVIDIA's tools do."""
    x = (images.detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_pil(array: np.ndarray) -> Image.Image:
    """HWC uint8 (C = 1 or 3) -> PIL image."""
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array, "L" if array.shape[2] == 1 else "RGB")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"unknown image format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def encode(image: Image.Image, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode deterministically (no timestamps or metadata)."""
    check_format(fmt)
    buf = io.BytesIO()
    if FORMATS[fmt] == "JPEG":
        image.save(buf, "JPEG", quality=quality)
    else:
        image.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def save_image(array: np.ndarray, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write one HWC uint8 image atomically; the format follows the suffix unless given."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    write_bytes_atomic(path, encode(to_pil(array), fmt))
    return path


def make_grid(arrays: np.ndarray, rows: int, cols: int, pad: int = 0) -> np.ndarray:
    """Tile N HWC images row-major into a rows x cols grid (missing cells stay black)."""
    n, h, w, c = arrays.shape
    if n > rows * cols:
        raise BadInput(f"{n} images do not fit a {rows}x{cols} grid")
    grid = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), dtype=arrays.dtype)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = arrays[i]
    return grid

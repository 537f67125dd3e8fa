"""Real faces for tests: the shared CelebA subset beside the repository, cropped to the classic
64x64 face box of its half-resolution images; tests skip with the path when it is absent."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"
CELEBA = SHARED_DATA / "celeba10k"
CELEBA_IMAGES = CELEBA / "images"
FACE_BOX = (12, 22, 76, 86)  # CelebA's classic 128x128 crop [45:173, 25:153] at half resolution: [22:86, 12:76]


def celeba_faces(count: int, size: int = 32, first: int = 0) -> Iterator[Image.Image]:
    """`count` CelebA faces from the `first` (0-based) on, as `size`x`size` RGB images."""
    if not CELEBA_IMAGES.is_dir():
        pytest.skip(f"real faces not found: {CELEBA_IMAGES} (the shared data folder beside the repository)")
    for i in range(first, first + count):
        with Image.open(CELEBA_IMAGES / f"{i + 1:06d}.jpg") as im:
            face = im.convert("RGB").crop(FACE_BOX)
        yield face if size == 64 else face.resize((size, size), Image.LANCZOS)


def celeba_folder(dest: Path, count: int) -> Path:
    """`dest` made and filled with `celeba_faces(count)` as PNGs (img00000000.png on): a dataset `train` reads."""
    dest.mkdir()
    for i, face in enumerate(celeba_faces(count)):
        face.save(dest / f"img{i:08d}.png")
    return dest

"""Face attributes in units: age in years (the shipped UTKFace regressor) and the probability of each of
CelebA's 40 attributes (the shipped CelebA classifier), read from HWC uint8 RGB images.

Both classifiers read 64 px faces aligned the FFHQ way, as the shipped model draws them and as their
training photos were prepared (tools/fit_shipped_directions.py); their accuracy on photos they never
saw is measured by benchmarks/estimators.py (benchmarks/RESULTS.md, "Face estimators in units").
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from facegen_cli.classifier import Classifier, load_classifier
from facegen_cli.errors import BadParameter
from facegen_cli.paths import weights_dir

CELEBA_FILE = "celeba-attributes.safetensors"
AGE_FILE = "utkface-age.safetensors"
AGE = "Age"  # years, from the UTKFace regressor
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")  # CelebA's hair colour classes


def as_batch(images: np.ndarray) -> np.ndarray:
    """`images` (one HWC or a stack NHWC, uint8 RGB) as a contiguous NHWC uint8 stack."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise BadParameter("images", f"images: expected HWC or NHWC uint8 RGB, got {images.dtype} of shape "
                                     f"{tuple(images.shape)}")
    return np.ascontiguousarray(images)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """NHWC uint8 -> NCHW float in [-1, 1], as the classifiers read images."""
    return torch.from_numpy(as_batch(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


class AttributeReader:
    """The two shipped classifiers, loaded once on first use (one lock: threads may share it)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._loaded: tuple[Classifier, Classifier] | None = None

    def classifiers(self) -> tuple[Classifier, Classifier]:
        """(CelebA attributes, UTKFace age)."""
        with self._lock:
            if self._loaded is None:
                folder = self._folder or weights_dir() / "classifiers"
                self._loaded = (load_classifier(folder / CELEBA_FILE), load_classifier(folder / AGE_FILE))
            return self._loaded

    def names(self) -> list[str]:
        """Every name `read` returns: Age, then CelebA's 40 attributes."""
        celeba, _ = self.classifiers()
        return [AGE, *celeba.names]

    def read(self, images: np.ndarray, batch: int = 256, mirror: bool = True) -> dict[str, np.ndarray]:
        """Name -> one value per image: Age in years, each CelebA attribute as a probability; with `mirror`, read
        from each face and its mirror image together (Classifier.outputs), so a face and its mirror read alike."""
        celeba, age = self.classifiers()
        x = to_tensor(images)
        probs = np.concatenate([celeba.predict(chunk, mirror) for chunk in x.split(batch)])
        years = np.concatenate([age.predict(chunk, mirror)[:, age.index("age")] for chunk in x.split(batch)])
        return {AGE: years, **{name: probs[:, i] for i, name in enumerate(celeba.names)}}


_SHARED = AttributeReader()


def shared_reader() -> AttributeReader:
    """The one AttributeReader of this process, reading the shipped classifiers."""
    return _SHARED


def read_attributes(images: np.ndarray) -> dict[str, np.ndarray]:
    """Age (years) and CelebA's 40 attribute probabilities of each HWC uint8 RGB face (see AttributeReader)."""
    return _SHARED.read(images)

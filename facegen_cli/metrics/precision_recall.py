"""Improved precision and recall (Kynkäänniemi et al. 2019) between real and generated features.

Each set's manifold is the union of balls around its points, a ball's radius being the distance to
the point's k-th nearest other point of the same set (the point itself excluded by index, so an
exact duplicate counts as a neighbour at distance 0). Precision is the fraction of fake points
inside the real manifold (how many generated images look real), recall the fraction of real points
inside the fake manifold (how much of the data the generator covers).

facegen applies it to the 2048-d pool features of the FID Inception network (the features `facegen
fid` extracts and caches), not to VGG16 fc2 features as the paper does, so its numbers are not
directly comparable with published ones. Squared distances are computed in float64, `batch` rows
against the whole other set at a time: besides the two float64 feature copies, memory is one
`batch` x n block (10k x 10k at the default batch: 160 MiB of features per side, 80 MiB of block).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from facegen_cli.errors import BadParameter

DEFAULT_K = 3
DEFAULT_BATCH = 1024


@dataclass
class PrecisionRecall:
    """The two fractions, the k they were computed with, and the set sizes."""

    precision: float
    recall: float
    k: int
    count_real: int
    count_fake: int


def check_k(k: int, *counts: int, param: str = "k") -> None:
    """Refuse a k below 1 or one that leaves no k-th other point in a set of `counts` points."""
    if k < 1:
        raise BadParameter(param, f"{param} {k}: give at least 1 neighbour")
    if counts and min(counts) <= k:
        raise BadParameter(param, f"{param} {k}: the k-th nearest other point needs more than {k} points per "
                                  f"side, got {min(counts)}")


def _squared_distances(x: np.ndarray, y: np.ndarray, batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, block): squared distances of rows start .. start+batch of `x` to every row of `y`, in one
    buffer that each step overwrites."""
    y_norms = np.einsum("ij,ij->i", y, y)
    buffer = np.empty((min(batch, len(x)), len(y)))
    for start in range(0, len(x), batch):
        rows = x[start:start + batch]
        block = np.matmul(rows, y.T, out=buffer[:len(rows)])
        block *= -2
        block += np.einsum("ij,ij->i", rows, rows)[:, None]
        block += y_norms[None, :]
        np.maximum(block, 0, out=block)  # rounding can leave -1e-12 where the points coincide
        yield start, block


def kth_neighbour_radii(feats: np.ndarray, k: int = DEFAULT_K, batch: int = DEFAULT_BATCH) -> np.ndarray:
    """Squared distance from each row of `feats` (float64) to its k-th nearest other row."""
    radii = np.empty(len(feats))
    for start, block in _squared_distances(feats, feats, batch):
        rows = np.arange(len(block))
        block[rows, start + rows] = np.inf  # the point itself is no neighbour
        block.partition(k - 1, axis=1)  # in place: no second block
        radii[start:start + len(block)] = block[:, k - 1]
    return radii


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K,
                     batch: int = DEFAULT_BATCH) -> PrecisionRecall:
    """Precision and recall of `fake` against `real` (N x D features each) with k-NN manifolds."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be N x D with one D: got {real.shape} and {fake.shape}")
    check_k(k, len(real), len(fake))
    if batch < 1:
        raise BadParameter("batch", f"batch {batch}: give at least 1 row per block")
    real_radii = kth_neighbour_radii(real, k, batch)
    fake_radii = kth_neighbour_radii(fake, k, batch)
    fake_inside = np.zeros(len(fake), bool)
    real_covered = np.zeros(len(real), bool)
    # one pass over the fake x real distances serves both: rows for precision, columns for recall
    for start, block in _squared_distances(fake, real, batch):
        fake_inside[start:start + len(block)] = (block <= real_radii[None, :]).any(axis=1)
        real_covered |= (block <= fake_radii[start:start + len(block), None]).any(axis=0)
    return PrecisionRecall(precision=float(fake_inside.mean()), recall=float(real_covered.mean()), k=k,
                           count_real=len(real), count_fake=len(fake))

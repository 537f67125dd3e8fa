"""FID and KID between two image sources, numerically as clean-fid computes them; optionally precision and
recall (see `precision_recall.py`) from the same features.

Features of an image set are cached under the user cache (`paths.cache_dir("fid")`), keyed by a
digest of the images' bytes and by the extractor (mode + weights file), so measuring many models
against one data set extracts the data set once.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.fileio import atomic_open
from facegen_cli.metrics.inception import FEATURE_DIM, InceptionFeatures
from facegen_cli.metrics.precision_recall import check_k, precision_recall
from facegen_cli.metrics.sources import ImageStream, dataset_stream, is_image_set, network_stream, random_seeds
from facegen_cli.paths import cache_dir

# progress(description, total) -> advance(n): how callers show extraction progress
Progress = Callable[[str, int], Callable[[int], None]]


@dataclass
class FidResult:
    """The scores and what they were computed from."""

    fid: float
    mode: str
    count_a: int
    count_b: int
    kid: float | None = None
    cached: list[str] = field(default_factory=list)  # sources whose features came from the cache
    inception: str = ""
    precision: float | None = None  # precision and recall of `fake` against `real` with `pr_k` neighbours
    recall: float | None = None
    pr_k: int | None = None
    real: str | None = None  # the side taken as the real data (see real_side)
    fake: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), in float64, via symmetric eigendecompositions."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}, {sigma1.shape} vs {sigma2.shape}")
    # Tr (S1 S2)^1/2 = sum of sqrt(eigenvalues of S1^1/2 S2 S1^1/2), a symmetric PSD matrix.
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of N x D features."""
    feats = np.asarray(feats, np.float64)
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two feature sets; with fewer samples than dimensions, exactly and fast in sample space.

    With S1 = A^T A and S2 = B^T B (A, B the scaled centred features), the non-zero eigenvalues of
    S1 S2 are the squared singular values of B A^T, so Tr (S1 S2)^1/2 is the nuclear norm of B A^T.
    """
    feats1, feats2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if min(len(feats1), len(feats2)) >= feats1.shape[1]:
        return frechet_distance(*feature_stats(feats1), *feature_stats(feats2))
    mu1, mu2 = feats1.mean(axis=0), feats2.mean(axis=0)
    a = (feats1 - mu1) / np.sqrt(len(feats1) - 1)
    b = (feats2 - mu2) / np.sqrt(len(feats2) - 1)
    tr_covmean = np.linalg.svd(b @ a.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2 * tr_covmean)


def kernel_distance(feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                    seed: int = 0) -> float:
    """KID: clean-fid's unbiased cubic-kernel MMD over random subsets, with a seeded draw."""
    rng = np.random.RandomState(seed)
    feats1, feats2 = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    n = feats1.shape[1]
    m = min(feats1.shape[0], feats2.shape[0], max_subset_size)
    total = 0.0
    for _ in range(num_subsets):
        x = feats2[rng.choice(feats2.shape[0], m, replace=False)]
        y = feats1[rng.choice(feats1.shape[0], m, replace=False)]
        z = np.concatenate([x, y])
        k = (z @ z.T / n + 1) ** 3  # one product for the x-x, y-y and x-y kernels
        within = k[:m, :m].sum() + k[m:, m:].sum() - np.trace(k)
        total += within / (m - 1) - k[:m, m:].sum() * 2 / m
    return float(total / num_subsets / m)


def extract_features(stream: ImageStream, extractor: InceptionFeatures, batch: int = 32,
                     progress: Progress | None = None) -> np.ndarray:
    """Inception features of every image in `stream`, `batch` images per forward pass."""
    advance = progress(stream.name, stream.count) if progress else None
    feats: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        feats.append(extractor(torch.from_numpy(np.stack(pending))))
        if advance:
            advance(len(pending))
        pending.clear()

    with torch.inference_mode():
        for images in stream.batches():
            for image in images:
                pending.append(extractor.preprocess(np.asarray(image)))
                if len(pending) == batch:
                    flush()
        if pending:
            flush()
    return np.concatenate(feats) if feats else np.zeros([0, FEATURE_DIM], np.float32)


def cached_features(stream: ImageStream, extractor: InceptionFeatures, batch: int = 32,
                    progress: Progress | None = None, use_cache: bool = True) -> tuple[np.ndarray, bool]:
    """Features of `stream`, read from / written to the cache when the stream has a content key."""
    if not use_cache or stream.content_key is None:
        return extract_features(stream, extractor, batch, progress), False
    key = hashlib.sha256(f"{stream.content_key()}:{extractor.id}".encode()).hexdigest()[:32]
    path = cache_dir("fid") / f"{key}.npy"
    if path.is_file():
        try:
            feats = np.load(path)
            if feats.shape == (stream.count, FEATURE_DIM):
                return feats, True
        except (OSError, ValueError):
            pass  # a damaged cache entry is simply recomputed
    feats = extract_features(stream, extractor, batch, progress)
    with atomic_open(path, "wb") as f:
        np.save(f, feats)
    return feats, False


def open_stream(spec: str, seeds: Sequence[int] | None, num: int, psi: float, batch: int, workers: int,
                device: torch.device | str, precision: str = "fp32", labels_from: str | None = None) -> ImageStream:
    """An image set for a folder / zip, else the samples of the network `spec` names (a conditional one with
    labels drawn from `labels_from`)."""
    if is_image_set(spec):
        return dataset_stream(spec, batch=batch, workers=workers)
    return network_stream(spec, list(seeds) if seeds is not None else random_seeds(num), psi=psi, batch=batch,
                          device=device, precision=precision, labels_from=labels_from)


def real_side(a: str | os.PathLike, b: str | os.PathLike) -> int:
    """Which side precision and recall take as the real data: the image set when the other side is a network,
    else (both image sets or both networks) B, the reference."""
    return 0 if is_image_set(a) and not is_image_set(b) else 1


def compute_fid(a: str | os.PathLike, b: str | os.PathLike, mode: str = "clean", kid: bool = False,
                num: int = 50_000, seeds: Sequence[int] | None = None, psi: float = 1.0, batch: int = 32,
                workers: int = 2, device: torch.device | str = "cpu", inception: str | os.PathLike | None = None,
                progress: Progress | None = None, use_cache: bool = True,
                extractor: InceptionFeatures | None = None, precision: str = "fp32",
                labels_from: str | os.PathLike | None = None, pr_k: int | None = None) -> FidResult:
    """FID (and optionally KID) between two image sets or networks; `extractor` reuses a loaded Inception;
    `precision` is the generators' (the Inception network always runs in fp32); `labels_from`: the data set
    whose labels a conditional network draws with; `pr_k`: also precision and recall with that many neighbours,
    the real side chosen by `real_side`."""
    labels = str(labels_from) if labels_from is not None else None
    if labels is not None and is_image_set(str(a)) and is_image_set(str(b)):
        raise BadParameter("labels_from", f"labels_from {labels}: {a} and {b} are both image sets; it gives a "
                                          "conditional network its labels")
    streams = [open_stream(str(spec), seeds, num, psi, batch, workers, device, precision, labels) for spec in (a, b)]
    for stream in streams:  # both sides checked before either is measured
        if stream.count < 2:
            raise BadInput(f"{stream.name}: FID needs at least 2 images, found {stream.count}")
    if pr_k is not None:
        check_k(pr_k, *(stream.count for stream in streams), param="pr_k")
    if extractor is None or extractor.mode != mode:
        extractor = InceptionFeatures(mode, device=device, weights=inception)
    sides = [(stream, *cached_features(stream, extractor, batch, progress, use_cache)) for stream in streams]
    (_, fa, _), (_, fb, _) = sides
    result = FidResult(fid=fid_from_features(fa, fb), mode=mode, count_a=len(fa), count_b=len(fb),
                       kid=kernel_distance(fa, fb) if kid else None,
                       cached=[s.name for s, _, hit in sides if hit], inception=str(extractor.path))
    if pr_k is not None:
        real = real_side(a, b)
        (real_stream, real_feats, _), (fake_stream, fake_feats, _) = sides[real], sides[1 - real]
        pr = precision_recall(real_feats, fake_feats, pr_k)
        result.precision, result.recall, result.pr_k = pr.precision, pr.recall, pr_k
        result.real, result.fake = real_stream.name, fake_stream.name
    return result

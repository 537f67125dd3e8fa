"""Which ways in W change who a face is: the sensitivity of dlib's face descriptor to W, as a metric on W.

For faces drawn from seeds, the descriptor's Jacobian J [128, w_dim] with respect to the face's W latent (the
same w on every layer) is measured by forward differences of `step` along each principal axis of W; averaged
over the faces, M = mean J^T J is a metric on W: sqrt(v^T M v) is, to first order, how far the identity
distance moves per unit step along a unit vector v. A few eigenvectors carry most of it (the shipped model:
the first 16 of 256 carry two thirds), and a direction with the leading ones projected out (`free`) moves
its attribute with less of the person going along (benchmarks/RESULTS.md, "Controls that keep the person").

Stored beside the network's directions as `identity-span.npy` (M, float32) and `identity-span.json` (the
network id and how M was measured).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.fileio import write_text_atomic
from facegen_cli.latent.directions import IDENTITY_SPAN, Direction, conditioned
from facegen_cli.latent.io import read_array, save_latent
from facegen_cli.latent.keep_edit import principal_basis
from facegen_cli.metrics.identity import NoFace, shared_model
from facegen_cli.networks import Network
from facegen_cli.sampler import Sampler

FILE = f"{IDENTITY_SPAN}.npy"
Progress = Callable[[int, int], None]


@dataclass
class IdentitySpan:
    """The identity metric M on one network's W."""

    metric: np.ndarray  # [w_dim, w_dim], symmetric, positive semi-definite
    network_id: str
    info: dict = field(default_factory=dict)

    @cached_property
    def _eigen(self) -> tuple[np.ndarray, np.ndarray]:
        values, vectors = np.linalg.eigh(self.metric.astype(np.float64))
        return values[::-1], vectors[:, ::-1].T

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """M's eigenvalues, largest first, and its eigenvectors as rows in the same order (computed once)."""
        return self._eigen

    def sensitivity(self, vector: np.ndarray) -> float:
        """How far the identity moves per unit step along `vector`, to first order."""
        v = np.asarray(vector, np.float64) / np.linalg.norm(vector)
        return float(np.sqrt(max(v @ self.metric @ v, 0.0)))

    def free(self, vector: np.ndarray, count: int) -> np.ndarray:
        """`vector` with the `count` most identity-changing axes projected out, renormalised."""
        w_dim = len(self.metric)
        if not 0 <= count < w_dim:
            raise BadParameter("count", f"count {count} is outside 0-{w_dim - 1} (axes to project out of {w_dim})")
        return conditioned(np.asarray(vector, np.float32), list(self.axes()[1][:count]))

    def free_direction(self, direction: Direction, count: int) -> Direction:
        """`direction` moving along its vector freed of `count` axes (itself when `count` is 0)."""
        return replace(direction, vector=self.free(direction.vector, count)) if count else direction


def measure_identity_span(sampler: Sampler, seeds: Sequence[int], step: float = 1.0, axes: int | None = None,
                          batch: int = 64, on_progress: Progress | None = None) -> IdentitySpan:
    """M from the faces of `seeds` at the sampler's psi, each moved `step` along `axes` principal axes of W (all
    w_dim when None: then M does not depend on the axes chosen); a face dlib loses on any move is left out."""
    w_dim = sampler.G.w_dim
    axes = w_dim if axes is None else axes
    if not 1 <= axes <= w_dim:
        raise BadParameter("axes", f"axes {axes} is outside 1-{w_dim} (this network's w_dim)")
    if not step > 0:
        raise BadParameter("step", f"step {step} must be above 0")
    if not seeds:
        raise BadParameter("seeds", "seeds: give at least one face to measure on")
    basis = principal_basis(sampler, axes).astype(np.float64)
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    metric = np.zeros((w_dim, w_dim))
    used = []
    for done, seed in enumerate(seeds):
        ws = sampler.seed_latent(seed)
        moved = np.concatenate([ws[None], ws[None] + np.float32(step) * basis[:, None, :].astype(np.float32)])
        images = np.concatenate([sampler.images(moved[i:i + batch]) for i in range(0, len(moved), batch)])
        try:
            found = shared_model().descriptors(list(images))
        except NoFace:
            found = None
        if found is not None:
            jacobian = (found[1:] - found[0]).astype(np.float64).T / step @ basis  # [128, w_dim]
            metric += jacobian.T @ jacobian
            used.append(int(seed))
        if on_progress:
            on_progress(done + 1, len(seeds))
    if not used:
        raise FacegenError("for no seed did dlib find the face in every moved image; nothing to measure the identity on")
    info = {"method": "forward differences of dlib's face descriptor along principal axes of W",
            "seeds": used, "psi": sampler.psi, "step": step, "axes": axes}
    return IdentitySpan((metric / len(used)).astype(np.float32), sampler.net.network_id, info)


def save_identity_span(span: IdentitySpan, folder: str | Path) -> Path:
    """Write `identity-span.npy` and its `.json` under `folder`; returns the `.npy` path."""
    path = Path(folder) / FILE
    save_latent(path, span.metric)
    write_text_atomic(path.with_suffix(".json"), json.dumps({"network_id": span.network_id, **span.info}, indent=1)
                      + "\n")
    return path


def read_identity_span(path: str | Path, net: Network) -> IdentitySpan:
    """The span at `path`, checked: it belongs to `net` and is a symmetric [w_dim, w_dim] metric."""
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except FileNotFoundError:
        raise FacegenError(f"{path}: identity span without its {path.with_suffix('.json').name} (network id)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise FacegenError(f"{path}: unreadable identity span ({e})") from None
    metric = read_array(path, npz_key=None)
    if not isinstance(meta, dict) or meta.get("network_id") != net.network_id:
        network = meta.get("network_id") if isinstance(meta, dict) else None
        raise FacegenError(f"{path}: identity span of network {network}, not of this network ({net.network_id})")
    w_dim = net.G_ema.w_dim
    if metric.shape != (w_dim, w_dim):
        raise FacegenError(f"{path}: identity span of shape {tuple(metric.shape)}, not this model's [{w_dim}, {w_dim}]")
    if not np.allclose(metric, metric.T, atol=1e-6 * max(1.0, float(np.abs(metric).max()))):
        raise FacegenError(f"{path}: not an identity span (the matrix is not symmetric)")
    info = {k: v for k, v in meta.items() if k != "network_id"}
    return IdentitySpan(metric, net.network_id, info)

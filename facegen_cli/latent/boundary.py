"""InterFaceGAN-style directions: score sampled faces with a classifier, fit a linear boundary in W."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from facegen_cli.classifier import load_classifier
from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.latent.directions import Direction, save_direction, store_dir
from facegen_cli.networks import Network
from facegen_cli.sampler import Sampler, require_wplus
from facegen_cli.seeds import MAX_SEED, check_seed

MIN_PER_SIDE = 10  # faces each side of the boundary is fitted on, at the least
MAX_SAMPLES = 1_000_000  # faces a fit samples, scores and keeps in memory

Scorer = Callable[[torch.Tensor], np.ndarray]  # NCHW images in [-1, 1] -> one score per image


@torch.inference_mode()
def sample_scores(net: Network, score: Scorer, samples: int, seed_start: int = 0, psi: float = 1.0,
                  batch: int = 16, on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """W of `samples` faces drawn from consecutive seeds, and the score of each face."""
    sampler = Sampler(net, psi=psi, batch=batch)
    ws, scores = [], []
    for start in range(seed_start, seed_start + samples, batch):
        seeds = range(start, min(start + batch, seed_start + samples))
        w = sampler.map(sampler.zs(seeds))
        scores.append(np.asarray(score(sampler.synthesize(torch.from_numpy(w).to(sampler.device))),
                                 np.float64).reshape(-1))
        ws.append(w[:, 0])
        if on_batch:
            on_batch(len(seeds))
    return np.concatenate(ws), np.concatenate(scores)


def logistic_normal(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression; returns the weight in x's units, bias, and x's mean/std."""
    mean, std = x.mean(0), x.std(0) + 1e-8
    xs = torch.from_numpy((x - mean) / std).float()
    ys = torch.from_numpy(y).float()
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xs @ weight + bias, ys) + l2 * weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach().double().numpy() / std, bias.item(), mean, std


def check_split(samples: int, ratio: float) -> int:
    """How many of `samples` faces (at most MAX_SAMPLES) each side of the fit takes at `ratio` (at most half, at
    least 10)."""
    if not 0 < ratio <= 0.5:
        raise BadParameter("ratio", f"ratio {ratio:g} is outside (0, 0.5]: the fit takes that fraction of highest "
                                    "and of lowest scored faces")
    if samples > MAX_SAMPLES:
        raise BadParameter("samples", f"samples {samples} is more than {MAX_SAMPLES}, the most a fit holds in memory")
    n = int(samples * ratio)
    if n < MIN_PER_SIDE:
        raise BadParameter("samples", f"samples {samples} at ratio {ratio:g} leave {n} faces per side; the fit "
                                      f"needs {MIN_PER_SIDE}, so sample at least {math.ceil(MIN_PER_SIDE / ratio)}")
    return n


def fit_boundary(w: np.ndarray, scores: np.ndarray, ratio: float = 0.25, holdout: float = 0.2,
                 seed: int = 0) -> tuple[np.ndarray, float]:
    """Unit normal pointing to higher scores, fitted on the `ratio` highest and lowest scored; held-out accuracy."""
    n = check_split(len(scores), ratio)
    order = np.argsort(scores, kind="stable")
    low, high = order[:n], order[-n:]
    if scores[high].min() <= scores[low].max():
        raise FacegenError("the classifier gives these faces nearly the same score; nothing to separate")
    idx = np.concatenate([low, high])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    perm = np.random.RandomState(seed).permutation(len(idx))
    n_test = max(1, int(len(idx) * holdout))
    test, train = perm[:n_test], perm[n_test:]
    normal, bias, mean, _ = logistic_normal(w[idx[train]], y[train])
    logits = (w[idx[test]] - mean) @ normal + bias
    accuracy = float(((logits > 0) == (y[test] > 0.5)).mean())
    return (normal / np.linalg.norm(normal)).astype(np.float32), accuracy


def fit_direction(net: Network, name: str, score: Scorer, samples: int = 2000, ratio: float = 0.25,
                  seed_start: int = 0, psi: float = 1.0, info: dict | None = None,
                  on_batch: Callable[[int], None] | None = None) -> tuple[Direction, float]:
    """Sample, score and fit: the direction `name` for this network with its held-out accuracy."""
    require_wplus(net, "fitting a direction")
    check_split(samples, ratio)
    if check_seed(seed_start, "seed_start") + samples - 1 > MAX_SEED:
        raise BadParameter("seed_start", f"seed_start {seed_start}: {samples} samples from it run past seed {MAX_SEED}")
    w, scores = sample_scores(net, score, samples, seed_start, psi, on_batch=on_batch)
    normal, accuracy = fit_boundary(w, scores, ratio)
    meta = {"method": "interfacegan", "samples": samples, "ratio": ratio, "seed_start": seed_start, "psi": psi,
            "holdout_accuracy": accuracy, **(info or {})}
    return Direction(name, normal, net.network_id, None, meta), accuracy


def run_fit(net: Network, attr: str, classifier: str | Path, out: str | Path | None = None, samples: int = 2000,
            ratio: float = 0.25, seed_start: int = 0, psi: float = 1.0,
            on_batch: Callable[[int], None] | None = None) -> tuple[Path, float]:
    """Fit the direction of `attr` as read by the classifier file; save it as `ATTR.npy`."""
    clf = load_classifier(classifier)
    column = clf.index(attr)
    name = clf.names[column]
    direction, accuracy = fit_direction(net, name, lambda images: clf.predict(images)[:, column], samples, ratio,
                                        seed_start, psi, {"attr": name, "classifier": str(classifier)}, on_batch)
    return save_direction(direction, out or store_dir(net)), accuracy

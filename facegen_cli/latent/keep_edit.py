"""Edits that keep the person: the linear edit plus a small correction in the model's own principal W span.

Moved along a fitted direction far enough to change what a classifier reads, a face often becomes another
person (the directions carry identity; benchmarks/RESULTS.md, "Why the edits lose the person"). A kept edit is
`w + s d + sum_i c_gi u_i`, where d is the direction, u_i the top principal components of the mapping
network's output (GANSpace; each scaled by its standard deviation), c_g one set of coefficients per coarse /
middle / fine layer group g (one set for all layers for a mouth attribute), and c and s are found by Adam
through the synthesis:

- the face's identity region (a soft mask from dlib's 68 landmarks of the unedited image: the inner face and
  its outline; for a mouth attribute the eyes, brows and nose in full and the rest of the face at half weight
  without mouth and cheeks) is held to the unedited image, in pixels and perceptual features;
- a squared hinge holds the classifier's change of the held attribute (HELD_READINGS) in a band of width BAND
  starting MARGIN beyond the wanted change, so the correction can neither undo the edit nor overshoot it, and
  small pulls on s^2 and c^2 let the correction carry part of the edit at a lower strength.

The step stays in a span of the generator's own latent distribution, never free pixels or a free W+ latent,
so the result is one of the network's faces rather than a pattern that fools the classifier. It costs
`steps` synthesis passes forward and back: about 8 CPU seconds at 64 px.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facegen_cli.classifier import Classifier, load_classifier
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.fileio import atomic_open
from facegen_cli.images import save_image, to_uint8
from facegen_cli.latent.directions import Direction, check_strength, load_direction
from facegen_cli.latent.io import save_latent
from facegen_cli.latent.layers import LAYER_GROUPS, w_resolutions
from facegen_cli.latent.project import goal_image
from facegen_cli.latent.sources import Source, read_latent, source_name
from facegen_cli.metrics.identity import enlarged, face_box, identity_distance_or_none
from facegen_cli.metrics.perceptual import Perceptual
from facegen_cli.paths import cache_dir, weights_dir
from facegen_cli.prepare.landmarks import points68
from facegen_cli.sampler import Sampler, require_wplus

BASIS_SAMPLES = 10_000  # z drawn for the principal components
BASIS_SEED = 0  # their seed: the components are a function of the network alone
BASIS = 64  # principal components a correction uses, one set per coarse / middle / fine layer group
MOUTH_BASIS = 32  # for a mouth attribute: one correction for all layers (per group, the mouth moves past the edit)
MOUTH_ATTRIBUTES = {"smiling", "mouth_slightly_open"}  # attributes that live in the mouth and cheeks
MARGIN = 0.05  # the kept change exceeds the wanted change by at least this much (probability)
BAND = 0.1  # ... and by at most MARGIN + BAND
HINGE_WEIGHT = 10.0
STRENGTH_WEIGHT = 0.002
CORRECTION_WEIGHT = 0.01
STEPS = 80
CELEBA = "celeba-attributes.safetensors"
# What a kept edit holds, for a direction (by the attribute it was fitted to) whose recorded reading is not a
# probability to hold: the shipped classifier file and its attribute. The Age direction is fitted to the
# UTKFace regressor's years; held on years the kept edit was nearer the photo on 2 of 4 photos, held on CelebA's
# P(Young) on 4 of 4 (benchmarks/RESULTS.md), so Age holds P(Young).
HELD_READINGS = {"age": (CELEBA, "Young")}

Progress = Callable[[int, int], None]


@dataclass
class KeptEdit:
    """A kept edit and the plain edit it started from, read by the held classifier attribute."""

    held: str  # the classifier attribute whose probability the edit moved
    latent: np.ndarray  # W+ [num_ws, w_dim]
    image: np.ndarray  # HWC uint8
    strength: float  # along the direction, after the search
    change: float  # the held probability's change from the source's
    source_image: np.ndarray  # the unedited face
    plain_image: np.ndarray  # the plain edit at the starting strength
    plain_change: float
    correction: float  # |c|, in standard deviations of the mapping's output


def principal_basis(sampler: Sampler, k: int = BASIS) -> np.ndarray:
    """The top-k principal components [k, w_dim] of W over BASIS_SAMPLES z (seed BASIS_SEED, psi 1, the sampler's
    label), each scaled by its standard deviation; computed once per network id and label, kept in the user cache."""
    w_dim = sampler.G.w_dim
    if not 1 <= k <= w_dim:
        raise BadParameter("basis", f"basis {k} is outside 1-{w_dim} (this network's w_dim)")
    label = f"-{hashlib.sha256(sampler.c.astype(np.float32).tobytes()).hexdigest()[:12]}" if sampler.c.size else ""
    path = cache_dir("keep_edit", sampler.net.network_id) / f"basis-{BASIS_SAMPLES}-{BASIS_SEED}{label}.npy"
    try:
        scaled = np.load(path)
    except (OSError, ValueError):
        z = torch.from_numpy(np.random.RandomState(BASIS_SEED).randn(BASIS_SAMPLES, sampler.G.z_dim)).float()
        with torch.inference_mode():
            w = sampler.G.mapping(z.to(sampler.device), sampler.labels(BASIS_SAMPLES), truncation_psi=1.0)
        w = w[:, 0].cpu().numpy().astype(np.float64)
        _, values, vectors = np.linalg.svd(w - w.mean(0), full_matrices=False)
        scaled = (vectors * (values[:, None] / np.sqrt(len(w) - 1))).astype(np.float32)
        with atomic_open(path, "wb") as f:
            np.save(f, scaled)
    return scaled[:k]


def _hull(mask: np.ndarray, points: np.ndarray) -> None:
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1.0)


def identity_mask(image: np.ndarray, mouth: bool = False) -> np.ndarray:
    """A soft [H, W] mask (0-1) of the pixels that carry a face's identity, from dlib's 68 landmarks.

    The inner face and its outline, brows lifted a little toward the forehead (hair left out); with `mouth`,
    eyes, brows and nose in full and the rest of the face at half weight, mouth and cheeks left free."""
    big, _ = enlarged(image)
    left, top, right, bottom = face_box(big, "the unedited face")
    pts = points68(big, (left, top, right - 1, bottom - 1))

    def region(*polygons: np.ndarray) -> np.ndarray:
        mask = np.zeros(big.shape[:2], np.float32)
        for polygon in polygons:
            _hull(mask, polygon)
        return mask

    def small(mask: np.ndarray, blur: float = 2.0) -> np.ndarray:
        mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(mask, (0, 0), blur * image.shape[0] / 64)

    brows = pts[17:27]
    face = small(region(np.concatenate([pts[0:17], brows + (brows - pts[36:48].mean(0)) * 0.3])))
    if not mouth:
        return face
    grown = [centre + (ring - centre) * 1.8 for ring in (pts[36:42], pts[42:48]) for centre in [ring.mean(0)]]
    eyes = region(np.concatenate([pts[17:22], grown[0]]), np.concatenate([pts[22:27], grown[1]]), pts[27:36])
    lips = pts[48:60]
    free = region(lips.mean(0) + (lips - lips.mean(0)) * 1.6, np.concatenate([pts[2:6], pts[[31, 48]]]),
                  np.concatenate([pts[11:15], pts[[35, 54]]]))
    return np.clip(small(eyes) + 0.5 * face * (1 - small(free, 3.0)), 0, 1)


def _group_rows(G) -> torch.Tensor:
    """[groups, num_ws] 0/1: which W+ entries each of the coarse / middle / fine groups holds (empty ones left out)."""
    resolutions = w_resolutions(G)
    rows = [[float(lo <= r <= hi) for r in resolutions] for lo, hi in LAYER_GROUPS.values()]
    return torch.tensor([row for row in rows if any(row)])


def held_reading(direction: Direction) -> tuple[Classifier, str]:
    """The classifier and the binary attribute a kept edit along `direction` holds: HELD_READINGS for the
    attribute the direction was fitted to, else that attribute on the classifier it records."""
    attribute, recorded = direction.info.get("attr"), direction.info.get("classifier")
    if not attribute or not recorded:
        raise BadInput(f"direction {direction.name} records no classifier attribute (it was not fitted to a "
                       "classifier); keeping identity needs one to hold the edit")
    held_file, attribute = HELD_READINGS.get(attribute.lower(), (Path(recorded).name, attribute))
    path = Path(recorded) if Path(recorded).name == held_file and Path(recorded).is_file() else None
    classifier = load_classifier(path or weights_dir() / "classifiers" / held_file)
    if not classifier.binary[classifier.index(attribute)]:
        raise BadInput(f"direction {direction.name} is fitted to {attribute}, a numeric reading; keeping identity "
                       "holds a probability")
    return classifier, attribute


def keep_edit(sampler: Sampler, latent: np.ndarray, direction: Direction, strength: float,
              least_change: float | None = None, steps: int = STEPS, lr: float = 0.05,
              perceptual: Perceptual | None = None, on_progress: Progress | None = None) -> KeptEdit:
    """The edit of W+ `latent` by `strength` along `direction`, corrected in the network's principal W span (see
    the module docstring) so the face keeps its identity while the held probability changes by the plain
    edit's change (or by `least_change`, when given) plus MARGIN to MARGIN + BAND."""
    require_wplus(sampler.net, "a kept edit")
    check_strength(strength, "strength", f"strength {strength:g}")
    if steps < 0:
        raise BadParameter("steps", f"steps {steps} is negative")
    classifier, attribute = held_reading(direction)
    index = classifier.index(attribute)
    mouth = attribute.lower() in MOUTH_ATTRIBUTES
    G, device = sampler.G, sampler.device
    ws = torch.from_numpy(np.asarray(latent, np.float32))[None].to(device)
    d = torch.from_numpy(np.asarray(direction.vector, np.float32)).to(device)
    u = torch.from_numpy(principal_basis(sampler, MOUTH_BASIS if mouth else BASIS)).to(device)

    def reading(images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(classifier.outputs(images)[:, index])

    with torch.no_grad():
        source_u8, plain_u8 = to_uint8(sampler.synthesize(torch.cat([ws, ws + strength * d])))
        goal = goal_image(source_u8, G, device)
        start, plain_reading = (float(v) for v in reading(torch.cat([goal, goal_image(plain_u8, G, device)])))
    plain_change = plain_reading - start
    sign = 1.0 if plain_change >= 0 else -1.0
    target = (abs(plain_change) if least_change is None else least_change) + MARGIN
    mask = torch.from_numpy(identity_mask(source_u8, mouth))[None, None].to(device)
    perceptual = perceptual or Perceptual(device)
    goal_features = perceptual.features(goal)
    rows = torch.ones(1, G.num_ws) if mouth else _group_rows(G)
    rows = rows.to(device)
    c = torch.zeros(len(rows), len(u), requires_grad=True, device=device)
    s = torch.tensor(float(strength), requires_grad=True, device=device)
    optimiser = torch.optim.Adam([c, s], lr=lr)

    def moved() -> torch.Tensor:
        return ws + s * d + (rows.T @ (c @ u))[None]

    for step in range(steps):
        image = sampler.synthesize(moved())
        kept = ((image - goal).square() * mask).sum() / (3 * mask.sum()) \
            + perceptual(image * mask + goal * (1 - mask), goal_features)[0]
        moved_by = sign * (reading(image)[0] - start)
        short = F.relu(target - moved_by) + F.relu(moved_by - target - BAND)
        loss = kept + HINGE_WEIGHT * short ** 2 + STRENGTH_WEIGHT * s ** 2 + CORRECTION_WEIGHT * c.square().mean()
        c.grad, s.grad = torch.autograd.grad(loss, [c, s])  # nothing of the networks' own gradients
        optimiser.step()
        if on_progress is not None:
            on_progress(step + 1, steps)
    with torch.no_grad():
        edited = moved().cpu().numpy()[0]
        image_u8 = sampler.images(edited[None])[0]
        change = float(reading(goal_image(image_u8, G, device))[0]) - start
    return KeptEdit(attribute, edited, image_u8, float(s.detach()), change, source_u8, plain_u8, plain_change,
                    float(c.detach().norm()))


def _distance(image: np.ndarray, source: np.ndarray) -> float | None:
    """dlib's identity distance of `image` to `source` to 4 places, None where no face is found."""
    distance = identity_distance_or_none(image, source)
    return None if distance is None else round(distance, 4)


def run_kept_edit(sampler: Sampler, source: Source, direction: str, out: str | Path, strength: float,
                  save_latents: bool = False, steps: int = STEPS,
                  on_progress: Progress | None = None) -> tuple[list[Path], dict]:
    """The kept edit of the latent `source` along `direction` from `strength`; writes its image (and latent) and
    returns the paths and a summary: the held attribute, the strengths, the held probability's change and the
    identity distance to the unedited face of the plain and of the kept edit."""
    require_wplus(sampler.net, "a kept edit")
    d = load_direction(direction, sampler.net)
    kept = keep_edit(sampler, read_latent(sampler, source), d, strength, steps=steps, on_progress=on_progress)
    stem = f"{source_name(source)}-{d.name}_{strength:+g}-kept"
    paths = [save_image(kept.image, Path(out) / f"{stem}.png")]
    if save_latents:
        paths.append(save_latent(Path(out) / f"{stem}.npy", kept.latent))
    return paths, {"held": kept.held, "strength": strength, "kept_strength": round(kept.strength, 3),
                   "change": round(kept.change, 4), "plain_change": round(kept.plain_change, 4),
                   "identity_distance": _distance(kept.image, kept.source_image),
                   "plain_identity_distance": _distance(kept.plain_image, kept.source_image),
                   "correction": round(kept.correction, 3)}

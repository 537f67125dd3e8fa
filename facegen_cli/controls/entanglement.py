"""The entanglement matrix: how one unit along each direction moves every estimator's reading.

Each direction moves the W+ of a few seeds by -step and +step; each estimator reads the three images
(read_face: age, CelebA's attributes, yaw, pitch, roll), and a cell is the median over seeds of
(reading(+step) - reading(-step)) / (2 step), in the estimator's own units per unit of W. Identity is
the median dlib distance between the source and each moved face, per unit. Drawn as a table or a PNG.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from facegen_cli.controls.steer import Identity, Reader
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.estimators.face import read_face
from facegen_cli.fileio import atomic_path
from facegen_cli.latent.directions import (Direction, check_strength, conditioned, known_directions,
                                          load_direction, move)
from facegen_cli.metrics.identity import NoFace, identity_distance
from facegen_cli.sampler import Sampler, require_wplus

IDENTITY = "identity"
# the estimators the report shows by default: the controls' readings and a few others worth watching
REPORTED = ("Age", "Yaw", "Pitch", "Smiling", "Mouth_Slightly_Open", "Male", "Eyeglasses", "Black_Hair",
            "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald", "No_Beard", "Young")


@dataclass
class Readings:
    """Estimator readings of seeds moved along directions: values[name] is [directions, 3 (-s, 0, +s), seeds]."""

    directions: list[str]
    step: float
    values: dict[str, np.ndarray]
    identity: np.ndarray  # [directions, seeds]: mean distance of the -s and +s faces to the source (NaN: no face)


def read_along(sampler: Sampler, directions: Sequence[Direction], seeds: Sequence[int], step: float = 2.0,
               reader: Reader = read_face, identity: Identity | None = identity_distance,
               on_direction: Callable[[str], None] | None = None) -> Readings:
    """Read every seed's face moved -step, 0 and +step along each direction (its own layers)."""
    if not step > 0:
        raise BadParameter("step", f"step {step:g} must be above 0")
    check_strength(step, "step", f"step {step:g}")
    ws = np.stack([sampler.seed_latent(s) for s in seeds])
    source = sampler.images(ws)
    base = reader(source)
    values: dict[str, list] = {name: [] for name in base}
    distances = []
    for d in directions:
        images = {sign: sampler.images(move(ws, d.vector, sign * step, d.layers)) for sign in (-1, 1)}
        read = {sign: reader(images[sign]) for sign in (-1, 1)}
        for name in values:
            values[name].append(np.stack([read[-1][name], base[name], read[1][name]]))
        distances.append([found_mean([pair_distance(identity, source[i], images[s][i]) for s in (-1, 1)])
                          if identity else np.nan for i in range(len(seeds))])
        if on_direction:
            on_direction(d.name)
    return Readings([d.name for d in directions], step,
                    {k: np.asarray(v, np.float64) for k, v in values.items()}, np.asarray(distances, np.float64))


def found_mean(distances: list[float]) -> float:
    """The mean of the distances measured (NaN where dlib found no face), NaN when none was."""
    found = [d for d in distances if not np.isnan(d)]
    return float(np.mean(found)) if found else float("nan")


def pair_distance(identity: Identity, a: np.ndarray, b: np.ndarray) -> float:
    try:
        return identity(a, b)
    except NoFace:
        return float("nan")


def unit_effects(readings: Readings, transform: Callable[[str, np.ndarray], np.ndarray] | None = None
                 ) -> dict[str, np.ndarray]:
    """Estimator -> [directions] median change per unit along each direction (readings passed through
    `transform(name, values)` first when given); `identity` -> median distance per unit."""
    out = {}
    with warnings.catch_warnings():  # a reading that is NaN on every seed (no face) stays NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, v in readings.values.items():
            v = transform(name, v) if transform else v
            out[name] = np.nanmedian((v[:, 2] - v[:, 0]) / (2 * readings.step), axis=1)
        out[IDENTITY] = np.nanmedian(readings.identity, axis=1) / readings.step
    return out


def network_directions(sampler: Sampler) -> list[Direction]:
    """Every direction `edit --direction NAME` finds for the sampler's network (shipped and fitted controls
    included), by name."""
    require_wplus(sampler.net, "the entanglement report")
    known = sorted(known_directions(sampler.net).items())
    if not known:
        raise BadInput("this network has no directions yet to report on; run `facegen directions sefa` or `fit`")
    return [load_direction(str(path), sampler.net) for _, path in known]


def disentangled(directions: list[Direction], conditional: Sequence[str], sampler: Sampler) -> list[Direction]:
    """Each direction with the `conditional` ones (other than itself) projected out, as `edit --conditional`
    moves; a direction that lies in their span is left out."""
    held = [load_direction(name, sampler.net) for name in conditional]
    out = []
    for d in directions:
        others = [h.vector for h in held if h.name != d.name]
        try:
            out.append(replace(d, vector=conditioned(d.vector, others)))
        except BadInput:
            continue
    return out


def report(sampler: Sampler, seeds: Sequence[int], step: float = 2.0, estimators: Sequence[str] = REPORTED,
           reader: Reader = read_face, identity: Identity | None = identity_distance,
           on_direction: Callable[[str], None] | None = None, conditional: Sequence[str] = ()) -> dict:
    """The matrix for every direction of the network (with the `conditional` directions projected out of each):
    {directions, conditional, estimators, units, matrix, seeds, step}; a cell is None where no seed's face was
    read (identity, pose)."""
    directions = network_directions(sampler)
    if conditional:
        directions = disentangled(directions, conditional, sampler)
    readings = read_along(sampler, directions, seeds, step, reader, identity, on_direction)
    effects = unit_effects(readings)
    columns = [e for e in estimators if e in effects] + [IDENTITY]
    matrix = [[round(float(effects[e][i]), 4) if np.isfinite(effects[e][i]) else None for e in columns]
              for i in range(len(directions))]
    return {"network_id": sampler.net.network_id, "seeds": list(seeds), "step": step,
            "directions": readings.directions, "conditional": list(conditional), "estimators": columns,
            "units": {e: unit_of(e) for e in columns}, "matrix": matrix}


def unit_of(name: str) -> str:
    """The unit a reading changes in, per unit of W."""
    return {"Age": "years", "Yaw": "degrees", "Pitch": "degrees", "Roll": "degrees",
            IDENTITY: "dlib distance"}.get(name, "probability")


def draw_heatmap(result: dict, path: str | Path, cell: int = 44) -> Path:
    """The matrix as a PNG: each column coloured by its own largest |value| (red up, blue down), numbers
    written in the cells."""
    rows, cols = result["directions"], result["estimators"]
    m = np.asarray(result["matrix"], np.float64)
    scale = np.max(np.abs(np.nan_to_num(m)), axis=0)
    scale[scale == 0] = 1
    left, top = 150, 90
    image = Image.new("RGB", (left + cell * len(cols) + 4, top + cell * len(rows) + 4), "white")
    draw = ImageDraw.Draw(image)
    for j, name in enumerate(cols):
        draw.text((left + j * cell + 2, top - 14 - 12 * (j % 6)), name[:14], fill="black")
    for i, name in enumerate(rows):
        draw.text((4, top + i * cell + cell // 2 - 6), name[:22], fill="black")
        for j in range(len(cols)):
            value = m[i, j] / scale[j] if np.isfinite(m[i, j]) else 0.0
            shade = int(255 * (1 - min(abs(value), 1)))
            colour = (255, shade, shade) if value > 0 else (shade, shade, 255)
            box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=colour, outline="gray")
            draw.text((box[0] + 3, box[1] + cell // 2 - 6), f"{m[i, j]:.2g}" if np.isfinite(m[i, j]) else "-",
                      fill="black")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)

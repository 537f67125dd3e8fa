"""Whether a direction moves its own attribute as read from the image: the gate a shipped direction passes.

A direction's own reading is the estimator it was fitted from (its `reader`, or its `attr` with `age` read
in years; `negated` turns the reading around, Beard is fitted from No_Beard). Seeds at psi 0.7 are pushed
along the direction to STOPS of the strength bound an edit allows (ODD_STRENGTH) and read at each (some
directions overshoot: Blond_Hair reads blonder at 5 units than at 10). A probability moves when the
reading reaches REACH (at most 1 - REACH for a negated one) at some stop on at least half of the faces
that started short of it; years and degrees move when one unit moves the reading by at least MIN_PER_UNIT in
the median, measured as the entanglement matrix measures it (faces at -UNIT_STEP and +UNIT_STEP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facegen_cli.controls.entanglement import read_along, unit_effects, unit_of
from facegen_cli.controls.steer import Reader
from facegen_cli.errors import BadInput
from facegen_cli.estimators.face import read_face
from facegen_cli.latent.directions import ODD_STRENGTH, Direction, move
from facegen_cli.sampler import Sampler

REACH = 0.8
MIN_SHARE = 0.5
MIN_PER_UNIT = 1.0  # years or degrees per unit of W
STOPS = (0.25, 0.5, 0.75, 1.0)  # fractions of the strength bound read
UNIT_STEP = 2.0  # as the controls' slopes and the entanglement report measure a unit's effect
GATE_PSI = 0.7
GATE_SEEDS = range(200_000, 200_016)  # none of them used to fit a shipped direction or measure a slope


@dataclass
class Reach:
    """How far a direction moved its own reading on the gate's faces."""

    direction: str
    reader: str
    sign: int  # -1: the direction lowers its reading (a negated attribute)
    unit: str
    strength: float
    faces: int  # faces counted: those that started short of REACH (probability), else those read
    share: float | None  # of those, the share that reached it at some stop up to `strength` (probability only)
    median: float  # median reading at `strength`
    per_unit: float | None  # median change per unit between -UNIT_STEP and +UNIT_STEP (years, degrees only)
    passed: bool


def own_reader(direction: Direction) -> tuple[str, int] | None:
    """The estimator reading a direction was fitted from and its sign; None for one fitted from none (SeFa)."""
    info = direction.info
    if "reader" in info:
        return info["reader"], 1
    if "attr" not in info:
        return None
    return ("Age" if info["attr"] == "age" else info["attr"]), (-1 if info.get("negated") else 1)


def own_reach(sampler: Sampler, direction: Direction, seeds: Sequence[int] = GATE_SEEDS,
              strength: float = ODD_STRENGTH, reader: Reader = read_face) -> Reach:
    """Read `seeds`' faces moved along `direction` (its layers; the sampler's psi, GATE_PSI for the shipping
    gate) and judge whether its own reading moved: see the module's docstring."""
    own = own_reader(direction)
    if own is None:
        raise BadInput(f"direction {direction.name} was fitted from no estimator's reading; nothing to gate it by")
    name, sign = own
    ws = np.stack([sampler.seed_latent(s) for s in seeds])

    def read_at(amount: float) -> np.ndarray:
        moved = move(ws, direction.vector, amount, direction.layers)
        return np.asarray(reader(sampler.images(moved))[name], np.float64)

    unit = unit_of(name)
    if unit != "probability":
        after = read_at(strength)
        per_unit = float(unit_effects(read_along(sampler, [direction], seeds, UNIT_STEP, reader, identity=None))[name][0])
        return Reach(direction.name, name, sign, unit, strength, int(np.isfinite(after).sum()), None,
                     float(np.nanmedian(after)), per_unit, bool(per_unit >= MIN_PER_UNIT))
    before = read_at(0.0)
    stops = np.stack([read_at(f * strength) for f in STOPS])  # [stops, seeds]
    reached = (lambda v: v >= REACH) if sign > 0 else (lambda v: v <= 1 - REACH)
    short = np.isfinite(before) & ~reached(before)
    share = float(np.mean(reached(stops[:, short]).any(axis=0))) if short.any() else float("nan")
    return Reach(direction.name, name, sign, unit, strength, int(short.sum()), share, float(np.nanmedian(stops[-1])),
                 None, bool(share >= MIN_SHARE))


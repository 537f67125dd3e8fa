"""Set controls to values: move a latent along fitted directions until the estimators read the targets.

The step lives in the span of the directions: W+ plus sum_i a_i v_i on each direction's layers, where v_i
is a set control's direction with the kept attributes' directions projected out (InterFaceGAN's
conditional edit), or a kept attribute's own direction (a control's as fitted, before identity axes are
projected out of it). Projection alone does not hold a kept reading (the
fitted directions are not the estimators' gradients), so each kept attribute is also a target of the
search: its reading on the source. The coefficients a are found by reading the IMAGE: Broyden's method
(the secant method for one control), started from the slopes measured when the controls were fitted (a
kept direction with no fitted slope is probed once), a few renders and readings in all, each |a_i| at
most `limit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from facegen_cli.controls.identity_hold import AXIS_LIMIT, IDENTITY, identity_axes, refine_identity
from facegen_cli.controls.store import CONTROLS, ControlSpec, check_value, control_name, network_controls, to_search
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.estimators.face import POSE, read_face
from facegen_cli.images import save_image
from facegen_cli.latent.directions import ODD_STRENGTH, conditioned, known_directions, load_direction, move
from facegen_cli.latent.io import save_latent
from facegen_cli.latent.sources import Source, read_latent, source_name
from facegen_cli.metrics.identity import NoFace, identity_distance, shared_model
from facegen_cli.networks import Network
from facegen_cli.sampler import Sampler, require_wplus

Reader = Callable[[np.ndarray], dict[str, np.ndarray]]  # NHWC uint8 faces -> name -> one value per face
Identity = Callable[[np.ndarray, np.ndarray], float]
Describe = Callable[[np.ndarray], np.ndarray]  # HWC uint8 face -> its identity descriptor (NoFace when none)
ITERATIONS = 6  # renders after the source's, at most, plus HOLD_ITERATIONS per kept attribute
HOLD_ITERATIONS = 2
HOLD_TOLERANCE = {"years": 2.0, "degrees": 2.0, "probability": 0.05}  # how near a kept reading is held
PROBE = 2.0  # units along a kept direction with no fitted slope, to measure one
HOLD_LIMIT = 3.0  # a kept direction corrects, never repaints: |strength| at most this many units


def broyden(evaluate: Callable[[np.ndarray], np.ndarray], jacobian: np.ndarray, tolerance: np.ndarray,
            limit: float | np.ndarray, iterations: int = ITERATIONS) -> tuple[np.ndarray, np.ndarray, int]:
    """Coefficients a (each within +-limit: one bound, or one per coefficient) whose residual `evaluate(a)`
    (reading minus target) is smallest relative to `tolerance`; Broyden's updates of `jacobian` (the secant
    method in 1-D). A coefficient the step would take past its bound stays at the bound while the others
    are solved for without it. Returns a, its residual and the renders used. A residual with NaN (nothing
    read) halves the step, three times at most."""
    limit = np.broadcast_to(np.asarray(limit, np.float64), (len(jacobian),))
    a = np.zeros(len(jacobian))
    f = evaluate(a)
    if not np.isfinite(f).all():
        raise FacegenError("the estimators read nothing on the source face")
    j0, jac = np.diag(np.diag(jacobian)), jacobian.astype(np.float64).copy()
    best, best_f, renders = a, f, 1
    for _ in range(iterations):
        if np.all(np.abs(f) <= tolerance):
            break
        step = bounded_step(jac, f, a, limit)
        for _halving in range(4):
            new = np.clip(a + step, -limit, limit)
            new_f = evaluate(new)
            renders += 1
            if np.isfinite(new_f).all():
                break
            step = step / 2
        else:
            break
        moved = new - a
        if not moved.any():
            break
        jac += np.outer(new_f - f - jac @ moved, moved) / (moved @ moved)
        diag = np.diag(jac)
        # a noisy reading must not turn a slope around or flatten it: keep the fitted slope then
        bad = (diag * np.diag(j0) <= 0) | (np.abs(diag) < 0.1 * np.abs(np.diag(j0)))
        jac[bad, bad] = np.diag(j0)[bad]
        a, f = new, new_f
        if np.max(np.abs(f) / tolerance) < np.max(np.abs(best_f) / tolerance):
            best, best_f = a, f
    return best, best_f, renders


def bounded_step(jac: np.ndarray, f: np.ndarray, a: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """The Newton step -jac^-1 f from `a` (least squares), with the coefficients it would take past
    `limit` held at their bounds and the rest solved again for what those leave over."""
    step = np.linalg.lstsq(jac, -f, rcond=None)[0]
    over = np.abs(a + step) > limit
    if over.any() and not over.all():
        step[over] = np.clip(a + step, -limit, limit)[over] - a[over]
        free = ~over
        step[free] = np.linalg.lstsq(jac[:, free], -f - jac[:, over] @ step[over], rcond=None)[0]
    return step


@dataclass
class Move:
    """One set control: its spec, target, direction (kept ones projected out), layers and slope."""

    name: str
    spec: ControlSpec
    target: float
    vector: np.ndarray
    layers: list[int] | None
    slope: float


@dataclass
class Kept:
    """An attribute held during the edit: its direction, the estimator reading that reports it, and (for a
    fitted control) the layers it moves and its slope."""

    name: str
    vector: np.ndarray
    reader: str
    layers: list[int] | None = None
    slope: float | None = None

    @property
    def spec(self) -> ControlSpec:
        """How its reading is held: a control's own unit, else a probability."""
        reading = CONTROLS.get(self.reader, ControlSpec(self.reader, "probability", 0, 1, 0.03))
        return ControlSpec(reading.reader, reading.unit, reading.low, reading.high, HOLD_TOLERANCE[reading.unit])


@dataclass
class ControlResult:
    """What an edit asked for and what the image shows."""

    requested: dict[str, float]
    achieved: dict[str, float]
    met: dict[str, bool]
    strengths: dict[str, float]
    kept_before: dict[str, float] = field(default_factory=dict)
    kept_after: dict[str, float] = field(default_factory=dict)
    identity_distance: float | None = None
    renders: int = 0
    ws: np.ndarray | None = None
    image: np.ndarray | None = None

    def summary(self) -> dict:
        """The JSON the CLI prints (no arrays; a reading that found no face is None)."""
        return {"requested": self.requested, "achieved": _finite(self.achieved), "met": self.met,
                "strengths": self.strengths,
                "kept": {k: _finite({"before": self.kept_before[k], "after": self.kept_after.get(k)})
                         for k in self.kept_before},
                "identity_distance": self.identity_distance, "renders": self.renders}


def _finite(values: dict) -> dict:
    return {k: v if v is not None and math.isfinite(v) else None for k, v in values.items()}


def unfitted(control: str, fitted: dict) -> str:
    """Why `control` cannot be set or kept on this network, and what can."""
    has = f"its controls: {', '.join(fitted)}" if fitted else "it has no fitted controls"
    return f"this network has no direction for control {control} ({has})"


def kept_attribute(net: Network, name: str, fitted: dict) -> Kept:
    """A control or any direction of the network (e.g. Male), held by projection; read by its estimator."""
    if name.lower() in {c.lower() for c in CONTROLS}:
        control = control_name(name)
        if control not in fitted:
            raise BadInput(unfitted(control, fitted))
        fit, direction, as_fitted = fitted[control]
        if fit.identity_free:
            # Held along its direction as fitted: the freed one moves its reading too little to correct within
            # HOLD_LIMIT; its slope is probed, the control's being the freed direction's.
            return Kept(control, as_fitted.vector, CONTROLS[control].reader, fit.layers)
        return Kept(control, direction.vector, CONTROLS[control].reader, fit.layers, fit.slope)
    known = {k.lower(): k for k in known_directions(net)}
    if name.lower() not in known:
        raise BadInput(f"cannot keep {name!r}: neither {IDENTITY}, a control ({', '.join(CONTROLS)}) nor a direction "
                       f"of this network ({', '.join(sorted(known.values())) or 'none'})")
    d = load_direction(known[name.lower()], net)
    attr = d.info.get("attr", d.name)
    return Kept(d.name, d.vector, "Age" if attr == "age" else attr)


def check_kept_names(keep: list[str]) -> None:
    """Refuse an empty name and a name kept twice (in any case) among the attributes to hold."""
    seen = set()
    for name in keep:
        if not name.strip():
            raise BadParameter("keep", "keep has an empty name; name each attribute to hold, e.g. Male,Black_Hair")
        if name.lower() in seen:
            raise BadParameter("keep", f"keep {name} is given twice")
        seen.add(name.lower())


def keeps_identity(keep: list[str]) -> bool:
    """Whether the person is among the things to keep (`--keep identity`)."""
    return any(name.lower() == IDENTITY for name in keep)


def plan_moves(net: Network, targets: dict[str, float], keep: list[str]) -> tuple[list[Move], list[Kept]]:
    """The checked request: each target's control fitted for `net`, in range; keeps resolved; no overlap."""
    require_wplus(net, "setting controls")
    if not targets:
        raise BadParameter("targets", "targets: set at least one control, e.g. Age=60")
    fitted = network_controls(net)
    names = {control_name(n): check_value(control_name(n), v) for n, v in targets.items()}
    check_kept_names(keep)
    if keeps_identity(keep):
        identity_axes(net)  # a network without an identity span is refused before anything is drawn
    kept = [kept_attribute(net, k, fitted) for k in keep if k.lower() != IDENTITY]
    both = sorted(set(names) & {k.name for k in kept})
    if both:
        raise BadInput(f"{both[0]} is both set and kept; a control is either set to a value or kept")
    moves = []
    for name, value in names.items():
        if name not in fitted:
            raise BadInput(unfitted(name, fitted))
        control, direction, _ = fitted[name]
        vector = conditioned(direction.vector, [k.vector for k in kept]) if kept else direction.vector
        moves.append(Move(name, control.spec, value, vector, control.layers, control.slope))
    return moves, kept


def moved(ws: np.ndarray, moves: list[Move], strengths: np.ndarray) -> np.ndarray:
    """W+ plus each move's strength times its vector on its layers."""
    out = ws.copy()
    for m, a in zip(moves, strengths):
        out = move(out, m.vector, a, m.layers)
    return out


def search_tolerance(spec: ControlSpec, target: float) -> float:
    """The tolerance in the search's units (a probability's tolerance as a logit's, at the target)."""
    if spec.unit != "probability":
        return spec.tolerance
    t = min(max(target, 0.02), 0.98)
    return spec.tolerance / (t * (1 - t))


def steer(sampler: Sampler, ws: np.ndarray, targets: dict[str, float], keep: list[str] | None = None,
          reader: Reader | None = None, identity: Identity | None = identity_distance,
          iterations: int = ITERATIONS, limit: float = ODD_STRENGTH, describe: Describe | None = None) -> ControlResult:
    """Move W+ `ws` along the fitted controls' directions until the estimators read `targets` (name -> value)
    on the image, holding the `keep` attributes where the source reads them (and, when `keep` names identity,
    the person, by `describe`'s descriptor: controls.identity_hold); `identity` compares source and result."""
    keep = keep or []
    moves, kept = plan_moves(sampler.net, targets, keep)
    if reader is None:
        wants_pose = any(m.spec.reader in POSE for m in moves) or any(k.reader in POSE for k in kept)
        reader = lambda images: read_face(images, pose=wants_pose)  # noqa: E731
    rendered: dict[bytes, tuple[np.ndarray, dict]] = {}

    def render(latent: np.ndarray) -> tuple[np.ndarray, dict]:
        key = np.round(latent, 6).tobytes()
        if key not in rendered:
            image = sampler.images(latent[None])[0]
            rendered[key] = image, {k: float(v[0]) for k, v in reader(image[None]).items()}
        return rendered[key]

    source_image, before = render(ws)
    holds = [h for h in (hold(k, before, lambda h: render(moved(ws, [h], np.array([PROBE])))[1],
                              min(limit, HOLD_LIMIT))
                         for k in kept) if h is not None]
    span = moves + holds

    def misses(latent: np.ndarray) -> np.ndarray:
        values = render(latent)[1]
        return np.array([to_search(m.spec, values.get(m.spec.reader, math.nan)) - to_search(m.spec, m.target)
                         for m in span], np.float64)

    tolerance = np.array([search_tolerance(m.spec, m.target) for m in span])
    limits = np.array([limit] * len(moves) + [min(limit, HOLD_LIMIT)] * len(holds))
    a, _, _ = broyden(lambda a: misses(moved(ws, span, a)), np.diag([m.slope for m in span]), tolerance, limits,
                      iterations + HOLD_ITERATIONS * len(holds))
    latent, pull = moved(ws, span, a), None
    if keeps_identity(keep):
        latent, a, pull = held_person(sampler, ws, span, a, limits, source_image,
                                      lambda w: (misses(w) / tolerance, render(w)[0]), describe)
    strengths = {m.name: float(x) for m, x in zip(span, a)} | ({IDENTITY: pull} if pull is not None else {})
    image, after = render(latent)
    achieved = {m.name: after[m.spec.reader] for m in moves}
    distance = None
    if identity is not None:
        try:
            distance = identity(source_image, image)
        except NoFace:
            distance = None
    return ControlResult(
        requested={m.name: m.target for m in moves}, achieved=achieved,
        met={m.name: bool(abs(achieved[m.name] - m.target) <= m.spec.tolerance) for m in moves},
        strengths=strengths,
        kept_before={k.name: before.get(k.reader) for k in kept},
        kept_after={k.name: after.get(k.reader) for k in kept},
        identity_distance=distance, renders=len(rendered), ws=latent, image=image)


def held_person(sampler: Sampler, ws: np.ndarray, span: list[Move], strengths: np.ndarray, limits: np.ndarray,
                source_image: np.ndarray, look: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                describe: Describe | None) -> tuple[np.ndarray, np.ndarray, float]:
    """The search's latent (`span` at `strengths`) moved along the network's identity axes, and the strengths
    refined with them, so the face's descriptor comes back towards the source's (controls.identity_hold);
    `look(latent)` gives the misses in tolerances and the image. Returns the latent, the span's strengths and
    how far the latent moved along the axes (W units)."""
    describe = describe or shared_model().descriptor
    axes = identity_axes(sampler.net)

    def placed(c: np.ndarray) -> np.ndarray:
        return moved(ws, span, c[:len(span)]) + (c[len(span):] @ axes).astype(np.float32)

    def evaluate(c: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        miss, image = look(placed(c))
        try:
            return miss, describe(image)
        except NoFace:
            return miss, None

    try:
        source = describe(source_image)
    except NoFace:
        return moved(ws, span, strengths), strengths, 0.0
    start = np.concatenate([strengths, np.zeros(len(axes))])
    best, _ = refine_identity(evaluate, start, np.concatenate([limits, np.full(len(axes), AXIS_LIMIT)]), source)
    return placed(best), best[:len(span)], float(np.linalg.norm(best[len(span):]))


def hold(kept: Kept, before: dict[str, float], probe: Callable[[Move], dict[str, float]],
         limit: float) -> Move | None:
    """A kept attribute as a target of the search (its reading on the source), or None where it cannot
    take part: nothing read on the source, or its direction cannot move the reading by its tolerance within
    `limit` units (a kept direction with no fitted slope is probed `PROBE` units out)."""
    value = before.get(kept.reader, math.nan)
    if not math.isfinite(value):
        return None
    spec = kept.spec
    move = Move(kept.name, spec, value, kept.vector, kept.layers, kept.slope or 0.0)
    if kept.slope is None:
        probed = probe(move).get(kept.reader, math.nan)
        move.slope = float(to_search(spec, probed) - to_search(spec, value)) / PROBE
    if not math.isfinite(move.slope) or abs(move.slope) * limit < search_tolerance(spec, value):
        return None
    return move


def run_controls(sampler: Sampler, source: Source, targets: dict[str, float], out: str | Path,
                 keep: list[str] | None = None, save_latents: bool = False,
                 iterations: int = ITERATIONS) -> tuple[list[Path], ControlResult]:
    """`steer` the latent `source` and save the image (and its W+ when asked) under `out`."""
    plan_moves(sampler.net, targets, keep or [])  # every refusal before the network draws anything
    result = steer(sampler, read_latent(sampler, source), targets, keep, iterations=iterations)
    stem = f"{source_name(source)}-" + "-".join(f"{k}{v:g}" for k, v in result.requested.items())
    paths = [save_image(result.image, Path(out) / f"{stem}.png")]
    if save_latents:
        paths.append(save_latent(Path(out) / f"{stem}.npy", result.ws))
    return paths, result

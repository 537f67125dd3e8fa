"""Fit the explicit controls of `weights/default.safetensors` (`facegen edit SRC --set Age=60 ...`).

    .venv/bin/python tools/fit_shipped_controls.py [--samples 800] [--slope-seeds 16] [--identity-seeds 12]

1. Sample --samples faces of the default model (seeds 0.., psi 1) and read each with the estimators
   (facegen_cli.estimators.face.read_face: age in years, yaw and pitch in degrees).
2. Continuous controls (Age, Yaw, Pitch): ridge regression of the reading on W (the penalty chosen by
   5-fold cross-validation, whose R^2 is kept); the unit vector of the coefficients is the direction,
   saved as `Age_years`, `Yaw`, `Pitch` beside the shipped directions. The others (Smiling,
   Mouth_Slightly_Open, Eyeglasses, the four hair colours) take the shipped InterFaceGAN boundaries where
   one ships. A control whose direction does not move its own reading as read from the image
   (controls.reach.own_reach, the shipping gate) is left out, its regressed direction not saved.
   Age, Smiling, Mouth_Slightly_Open and Blond_Hair move along their directions with the 8 leading axes of the
   network's identity span projected out (IDENTITY_FREE; latent.identity_span, measured on --identity-seeds
   faces at psi 0.7 and shipped as weights/directions/<network id>/identity-span.npy, kept when already
   there): so freed, they move their readings about as far per unit with less of the person going along.
   Yaw is what the descriptor itself is most sensitive to (freed, it hardly turns the head), freed Black_Hair
   no longer passes the gate below, and freed Pitch holds its kept readings less often: those three move
   along their directions as fitted. The gate and the slopes judge the direction a control moves along; one whose
   freed direction fails the gate tries two axes fewer, and so on down to its direction as fitted (a network
   whose identity span holds much of the attribute: on the 939 kimg model, Age_years freed of 8 axes moved 0.7
   years a unit). Age has two candidates, the regression and the shipped InterFaceGAN boundary `Age`: the one
   freed of more identity axes moves it, the regression on a tie (on the 939 kimg model the boundary freed of 8
   kept the person within 0.5 on 79-94 % of edits to 20 and 40 years, the regression freed of 4 on 53-78 %).
3. Each control's slope, the search's first guess: seeds 100000.. (--slope-seeds of them, none used
   above) moved -2 and +2 along its direction and read; the median change per unit in the search's
   units (years, degrees, logit of the probability).
4. `controls.json` beside the directions in weights/directions/<network id>/.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from facegen_cli.controls.entanglement import read_along, unit_effects
from facegen_cli.controls.reach import GATE_PSI, own_reach
from facegen_cli.controls.store import CONTROLS, Control, save_controls, to_search
from facegen_cli.estimators.face import read_face
from facegen_cli.latent.directions import Direction, direction_files, load_direction, save_direction, shipped_dir
from facegen_cli.latent.identity_span import (FILE, IdentitySpan, measure_identity_span, read_identity_span,
                                              save_identity_span)
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler

REGRESSED = {"Age": "Age_years", "Yaw": "Yaw", "Pitch": "Pitch"}  # control -> the direction fitted for it
PENALTIES = np.logspace(-1, 4, 11)
# control -> identity-span axes projected out of its direction (benchmarks/RESULTS.md, "Controls that keep the
# person"): 8 of 256 halve the identity distance an Age edit costs at the same change in years.
IDENTITY_FREE = {"Age": 8, "Smiling": 8, "Mouth_Slightly_Open": 8, "Blond_Hair": 8}
# A freed direction that fails the gate tries this many axes fewer (halving went from 8 straight to 4): on the
# 1,099 kimg model the `Age` boundary freed of 6 passes where 8 does not, and its edits to 20 / 40 / 60 years keep
# the person within 0.5 on 72 / 60 / 41 of 100 faces where the regression freed of 4 (halving's choice) kept 64 / 29
# / 10 (benchmarks/RESULTS.md, "Controls that keep the person").
FREE_STEP = 2
IDENTITY_PSI = 0.7


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Coefficients of y on centred x with an L2 penalty."""
    xc, yc = x - x.mean(0), y - y.mean()
    return np.linalg.solve(xc.T @ xc + penalty * np.eye(x.shape[1]), xc.T @ yc)


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int = 5) -> tuple[np.ndarray, float, float]:
    """Ridge coefficients at the penalty with the best 5-fold R^2; that R^2 and the penalty."""
    fold = np.arange(len(y)) % folds
    scores = []
    for penalty in PENALTIES:
        pred = np.empty(len(y))
        for k in range(folds):
            train, test = fold != k, fold == k
            beta = ridge(x[train], y[train], penalty)
            pred[test] = (x[test] - x[train].mean(0)) @ beta + y[train].mean()
        scores.append(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
    best = int(np.argmax(scores))
    return ridge(x, y, PENALTIES[best]), float(scores[best]), float(PENALTIES[best])


def sample_readings(sampler: Sampler, samples: int, batch: int = 64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """W of seeds 0..samples-1 and their faces' readings (NaN pose where dlib finds no face)."""
    ws, read = [], []
    for start in range(0, samples, batch):
        w = np.stack([sampler.seed_latent(s) for s in range(start, min(start + batch, samples))])
        ws.append(w[:, 0])
        read.append(read_face(sampler.images(w)))
        print(f"read {start + len(w)} of {samples} faces", file=sys.stderr, flush=True)
    return np.concatenate(ws).astype(np.float64), {k: np.concatenate([r[k] for r in read]) for k in read[0]}


def identity_span(net, seeds: range) -> IdentitySpan:
    """The network's identity span: the shipped one, else measured on `seeds` and shipped."""
    if (shipped_dir(net) / FILE).exists():
        return read_identity_span(shipped_dir(net) / FILE, net)
    span = measure_identity_span(Sampler(net, psi=IDENTITY_PSI), seeds, on_progress=lambda done, total: print(
        f"identity span: {done} of {total} faces", file=sys.stderr, flush=True))
    print(save_identity_span(span, shipped_dir(net)), flush=True)
    return span


def passes(gate: Sampler, direction: Direction, how: str = "") -> bool:
    """Whether `direction` moves its own reading (the shipping gate), printed either way."""
    reach = own_reach(gate, direction)
    print(f"{direction.name}{how}: {'ships' if reach.passed else 'left out'}: {reach}", flush=True)
    return reach.passed


def moved_along(gate: Sampler, control: str, direction: Direction, span: IdentitySpan) -> tuple[Direction, int] | None:
    """What the control moves along and the identity axes projected out of it: `direction` freed of its
    IDENTITY_FREE axes when that still passes the shipping gate, else of FREE_STEP fewer, and so on down to none
    (as fitted); None when not even that passes."""
    axes = IDENTITY_FREE.get(control, 0)
    while axes > 0:
        freed = span.free_direction(direction, axes)
        if passes(gate, freed, f" freed of {axes} identity axes"):
            return freed, axes
        axes -= FREE_STEP
    return (direction, 0) if passes(gate, direction, " as fitted") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=800, help="faces to sample for the regressions")
    parser.add_argument("--slope-seeds", type=int, default=16, help="faces the slopes are measured on")
    parser.add_argument("--identity-seeds", type=int, default=12, help="faces the identity span is measured on")
    args = parser.parse_args()
    start = time.time()
    net = load_network(None, "cpu")
    sampler = Sampler(net)
    folder = shipped_dir(net)
    gate = Sampler(net, psi=GATE_PSI)
    span = identity_span(net, range(1000, 1000 + args.identity_seeds))
    w, read = sample_readings(sampler, args.samples)
    directions = {}
    for control, name in REGRESSED.items():
        y = read[CONTROLS[control].reader]
        ok = np.isfinite(y)
        beta, r2, penalty = cross_validated(w[ok], y[ok])
        norm = float(np.linalg.norm(beta))
        info = {"method": "ridge regression of the estimator's reading on W", "reader": CONTROLS[control].reader,
                "samples": int(ok.sum()), "seed_start": 0, "psi": 1.0, "cv_r2": round(r2, 4), "penalty": penalty,
                "units_per_w_unit": round(norm, 4)}
        direction = Direction(name, (beta / norm).astype(np.float32), net.network_id, None, info)
        print(f"{control}: {ok.sum()} faces read, cross-validated R^2 {r2:.3f} (penalty {penalty:g}), "
              f"{norm:.2f} {CONTROLS[control].unit} per unit of W", flush=True)
        chosen = moved_along(gate, control, direction, span)
        if chosen:
            directions[control] = chosen
            save_direction(direction, folder)
        else:
            for stale in direction_files(folder / f"{name}.npy"):
                stale.unlink(missing_ok=True)
    for control in CONTROLS:
        path = folder / f"{control}.npy"
        if REGRESSED.get(control) == control or not path.exists():
            continue
        chosen = moved_along(gate, control, load_direction(str(path), net), span)
        if chosen and (control not in directions or chosen[1] > directions[control][1]):
            directions[control] = chosen  # the shipped boundary, or one freed of more identity axes than the regressed
    slope_seeds = range(100_000, 100_000 + args.slope_seeds)
    readings = read_along(sampler, [d for d, _ in directions.values()], slope_seeds, step=2.0, identity=None)
    effects = unit_effects(readings, lambda name, v: to_search(CONTROLS[name], v) if name in CONTROLS else v)
    controls = []
    for i, (control, (d, axes)) in enumerate(directions.items()):
        slope = float(effects[CONTROLS[control].reader][i])
        controls.append(Control(control, d.name, round(slope, 4), d.layers,
                                {"slope_seeds": f"{slope_seeds.start}-{slope_seeds.stop - 1}", "slope_step": 2.0,
                                 **({"cv_r2": d.info["cv_r2"]} if "cv_r2" in d.info else {})}, axes))
        print(f"{control}: direction {d.name}, slope {slope:.3f} per unit "
              f"({'logit' if CONTROLS[control].unit == 'probability' else CONTROLS[control].unit})", flush=True)
    print(save_controls(controls, net.network_id, folder))
    print(f"{time.time() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Keep the person through a control edit (`edit --set Yaw=20 --keep identity`).

Once the search has found strengths that read the targets and hold the kept attributes (controls.steer), the
face's dlib descriptor is pulled back towards the source's along the leading axes of the network's identity
span (latent.identity_span: the ways in W that change the descriptor most) while the targets and kept readings
are held. Unknowns: the search's strengths and one coefficient per axis; residuals: each target's and kept
reading's miss in units of its tolerance, and the descriptor's change from the source's. The Jacobian is
measured by forward differences (one render per unknown) and updated by Broyden's rule over a few damped
Gauss-Newton steps, each the step that lowers the descriptor's residual most while the linearised readings
go to their targets, scaled down to move no coefficient further than the probes did (each strength within its
bound, each axis within AXIS_LIMIT). Of the faces tried, the one nearest the source's
descriptor wins among those that miss no target or kept reading by more than the search left it (or its
tolerance, if larger); the search's own result stands when none is nearer.

Every step stays in the span of the fitted directions and the identity axes, as the search's do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from facegen_cli.errors import BadInput
from facegen_cli.latent.directions import shipped_dir, store_dir
from facegen_cli.latent.identity_span import FILE as SPAN_FILE
from facegen_cli.latent.identity_span import read_identity_span
from facegen_cli.networks import Network

IDENTITY = "identity"  # the name `keep` takes for the person
IDENTITY_AXES = 16  # leading axes of the identity span the hold moves along
AXIS_LIMIT = 4.0  # |coefficient| per axis, in units of W
IDENTITY_ITERATIONS = 6  # Gauss-Newton steps after the forward differences
TRUST = 1.0  # no coefficient moves further in one step than the forward differences probed
DAMPING = 0.3  # Marquardt's damping of each step, relative to the descriptor's curvature along each unknown

# coefficients -> (each target's and kept reading's miss in tolerances, the face's descriptor or None)
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def identity_axes(net: Network, count: int = IDENTITY_AXES) -> np.ndarray:
    """The `count` leading axes [count, w_dim] of the network's identity span (the user's store's over the
    shipped one), or one line saying there is none."""
    for folder in (store_dir(net), shipped_dir(net)):
        path = Path(folder) / SPAN_FILE
        if path.exists():
            return read_identity_span(path, net).axes()[1][:count].astype(np.float32)
    raise BadInput(f"cannot keep {IDENTITY}: this network has no identity span ({SPAN_FILE} beside its directions; "
                   "tools/fit_shipped_controls.py measures one)")


def refine_identity(evaluate: Evaluate, start: np.ndarray, limits: np.ndarray, source: np.ndarray,
                    iterations: int = IDENTITY_ITERATIONS) -> tuple[np.ndarray, float | None]:
    """Coefficients from `start` (the search's strengths, then zeros for the axes) whose face is nearest the
    `source` descriptor while no reading misses by more than at `start` (or by one tolerance); and that face's
    descriptor distance, None when no face was described at `start`."""
    limits = np.asarray(limits, np.float64)
    misses, descriptor = evaluate(start)
    if descriptor is None or not np.isfinite(misses).all():
        return start, None
    allowed = np.maximum(np.abs(misses), 1.0)

    def residual(miss: np.ndarray, desc: np.ndarray) -> np.ndarray:
        return np.concatenate([miss, desc - source])

    def distance(desc: np.ndarray) -> float:
        return float(np.linalg.norm(desc - source))

    readings = len(misses)
    current = residual(misses, descriptor)
    best, best_distance = start, distance(descriptor)
    jacobian = np.zeros((len(current), len(start)))
    for i in range(len(start)):
        step = np.zeros(len(start))
        step[i] = 1.0 if start[i] + 1.0 <= limits[i] else -1.0
        miss, desc = evaluate(start + step)
        if desc is None or not np.isfinite(miss).all():
            return best, best_distance
        jacobian[:, i] = (residual(miss, desc) - current) / step[i]
    c = start.copy()
    for _ in range(iterations):
        step = constrained_step(jacobian[:readings], current[:readings], jacobian[readings:], current[readings:])
        step *= min(1.0, TRUST / max(np.abs(step).max(), 1e-12))
        step = np.clip(c + step, -limits, limits) - c
        if not step.any():
            break
        miss, desc = evaluate(c + step)
        if desc is None or not np.isfinite(miss).all():
            break
        new = residual(miss, desc)
        jacobian += np.outer(new - current - jacobian @ step, step) / (step @ step)
        c, current = c + step, new
        if np.all(np.abs(miss) <= allowed) and distance(desc) < best_distance:
            best, best_distance = c.copy(), distance(desc)
    return best, best_distance


def constrained_step(reads: np.ndarray, misses: np.ndarray, describes: np.ndarray, apart: np.ndarray) -> np.ndarray:
    """The damped Gauss-Newton step that brings the descriptor residual `apart` down as far as it can while the
    linearised readings go to their targets (`reads` @ step = -`misses`): the KKT system, solved by least squares."""
    n, k = reads.shape[1], len(misses)
    curvature = describes.T @ describes
    damping = DAMPING * np.diag(np.diag(curvature)) + 1e-9 * np.eye(n)
    kkt = np.block([[curvature + damping, reads.T], [reads, np.zeros((k, k))]])
    rhs = np.concatenate([-describes.T @ apart, -misses])
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n]

"""Morph through keyframe latents: lerp in W, slerp in Z; written as GIF, MP4, PNG strip or frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.latent.sources import Source, read_latent
from facegen_cli.sampler import Sampler
from facegen_cli.video import check_fps, output_kind, write_frames

MAX_FRAMES = 10_000  # all frames are held in memory before they are written

SPACES = ("w", "z")


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Straight line from a (t = 0) to b (t = 1)."""
    return (a * (1 - t) + b * t).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Great-circle path from a to b (norms interpolated linearly), as suits Gaussian z."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    if omega < 1e-6:
        return lerp(a, b, t)
    direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return (direction * (na + (nb - na) * t)).astype(np.float32)


def frame_times(keys: int, frames: int, loop: bool) -> np.ndarray:
    """Positions along the keyframes (0 = first key): end on the last key, or come back to the first."""
    if loop:
        return np.arange(frames) * keys / frames
    return np.linspace(0, keys - 1, frames)


def path_latents(keys: np.ndarray, frames: int, loop: bool, space: str) -> np.ndarray:
    """The latent of every frame along the keyframes `keys`."""
    step = slerp if space == "z" else lerp
    out = []
    for t in frame_times(len(keys), frames, loop):
        i = min(int(t), len(keys) - 1 if loop else len(keys) - 2)
        a, b = keys[i], keys[(i + 1) % len(keys)]
        out.append(step(a, b, t - i))
    return np.stack(out)


def run_interpolate(sampler: Sampler, sources: list[Source], out: str | Path, frames: int = 60,
                    space: str | None = None, loop: bool = False, fps: float = 24.0) -> list[Path]:
    """Render the path through `sources` and write it to `out` (format from its suffix)."""
    out = Path(out)
    output_kind(out)
    check_fps(fps)
    space = space or ("w" if sampler.has_wplus else "z")
    if space not in SPACES:
        raise BadParameter("space", f"space must be w or z, got {space!r}")
    if space == "w" and not sampler.has_wplus:
        raise BadParameter("space", f"space: {sampler.net.arch} has no W space; use z")
    check_keyframes(len(sources), frames, loop)
    keys = np.stack([read_latent(sampler, s, space) for s in sources])
    return write_frames(morph_frames(sampler, keys, frames, loop, space), out, fps)


def check_keyframes(keys: int, frames: int, loop: bool) -> None:
    """Refuse fewer than two keyframes, too few frames to show each of them, or more than MAX_FRAMES."""
    if keys < 2:
        raise BadInput("interpolation needs at least two latents")
    if frames < keys - (0 if loop else 1) + 1:
        raise BadParameter("frames", f"frames {frames} is too few for {keys} keyframes")
    if frames > MAX_FRAMES:
        raise BadParameter("frames", f"frames {frames} is more than {MAX_FRAMES}, the most held in memory at once")


def morph_frames(sampler: Sampler, keys: np.ndarray, frames: int, loop: bool, space: str) -> np.ndarray:
    """NHWC uint8 frames along the keyframe latents `keys` (W+ in space w, z in space z)."""
    check_keyframes(len(keys), frames, loop)
    latents = path_latents(keys, frames, loop, space)
    if space == "z" and sampler.has_wplus:
        latents = sampler.map(latents)
    return sampler.images(latents)

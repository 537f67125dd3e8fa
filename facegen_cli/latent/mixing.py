"""Style mixing (some W+ layers from B, the rest from A) and weighted averages of latents."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.images import make_grid, save_image
from facegen_cli.latent.io import save_latent
from facegen_cli.latent.layers import resolve_layers
from facegen_cli.latent.sources import Source, read_latent, source_name
from facegen_cli.sampler import Sampler, require_wplus

DEFAULT_LAYERS = ["coarse"]


def style_mix(ws_a: np.ndarray, ws_b: np.ndarray, layers: list[int]) -> np.ndarray:
    """A's W+ with the entries in `layers` taken from B."""
    if ws_a.shape != ws_b.shape:
        raise BadInput(f"cannot mix latents of shapes {ws_a.shape} and {ws_b.shape}")
    mixed = ws_a.copy()
    mixed[layers] = ws_b[layers]
    return mixed


def normalized_weights(weights: Sequence[float] | None, count: int) -> np.ndarray:
    """`weights` scaled to sum to 1 (None: equal weights) for `count` latents."""
    if weights is None:
        return np.full(count, 1 / count)
    values = np.asarray(weights, np.float64)
    if len(values) != count:
        raise BadParameter("weights", f"weights has {len(values)} values for {count} latents")
    if not np.isfinite(values).all():
        raise BadParameter("weights", f"weights {list(weights)}: give finite numbers")
    if abs(values.sum()) < 1e-12:
        raise BadParameter("weights", "weights sum to zero")
    return values / values.sum()


def weighted_average(latents: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum of `weights[i] * latents[i]` (W+ or z alike)."""
    return np.tensordot(weights, latents.astype(np.float64), axes=1).astype(np.float32)


def mixing_figure(row_images: np.ndarray, col_images: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The paper's figure: column sources along the top, row sources down the left, mixes inside."""
    rows, cols = len(row_images), len(col_images)
    blank = np.zeros_like(row_images[:1])
    tiles = [blank, col_images]
    for r in range(rows):
        tiles += [row_images[r:r + 1], cells[r * cols:(r + 1) * cols]]
    return make_grid(np.concatenate(tiles), rows + 1, cols + 1)


def run_average(sampler: Sampler, sources: list[Source], out: str | Path, weights: Sequence[float] | None = None,
                save_latents: bool = False) -> Iterator[Path]:
    """Write the weighted average of the latents `sources` (W+ or z) as `average.png`; yield each path."""
    out = Path(out)
    if len(sources) < 2:
        raise BadInput("an average needs at least two latents")
    share = normalized_weights(weights, len(sources))
    mean = weighted_average(np.stack([read_latent(sampler, s) for s in sources]), share)
    yield save_image(sampler.images(mean[None])[0], out / "average.png")
    if save_latents:
        yield save_latent(out / "average.npy", mean)


def run_mix(sampler: Sampler, rows: list[Source], cols: list[Source], out: str | Path,
            layers: list[int] | None = None, grid: bool = False, save_latents: bool = False) -> Iterator[Path]:
    """Mix every A in `rows` with every B in `cols` (the W+ `layers` from B, default the coarse ones) and write
    the results under `out`, one image each or one figure; yield each path."""
    out = Path(out)
    require_wplus(sampler.net, "style mixing")
    chosen = resolve_layers(sampler.G, DEFAULT_LAYERS) if layers is None else layers
    ws_rows = np.stack([read_latent(sampler, s) for s in rows])
    ws_cols = np.stack([read_latent(sampler, s) for s in cols])
    mixed = np.stack([style_mix(a, b, chosen) for a in ws_rows for b in ws_cols])
    images = sampler.images(mixed)
    names = [f"mix-{source_name(a)}-{source_name(b)}" for a in rows for b in cols]
    if grid:
        yield save_image(mixing_figure(sampler.images(ws_rows), sampler.images(ws_cols), images), out / "mix-grid.png")
    else:
        for name, image in zip(names, images):
            yield save_image(image, out / f"{name}.png")
    if save_latents:
        for name, ws in zip(names, mixed):
            yield save_latent(out / f"{name}.npy", ws)

"""Style mixing (some W+ layers from B, the rest from A) and weighted averages of latents."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from facegen_cli.checkpoint import Network
from facegen_cli.errors import BadInput
from facegen_cli.generate import label_vector
from facegen_cli.images import make_grid, save_image
from facegen_cli.latent.io import save_latent
from facegen_cli.latent.sources import (expand_sources, parse_layers, read_latent, render, require_wplus,
                                        source_name)
from facegen_cli.precision import resolve_precision

DEFAULT_LAYERS = "coarse"


def style_mix(ws_a: np.ndarray, ws_b: np.ndarray, layers: list[int]) -> np.ndarray:
    """A's W+ with the entries in `layers` taken from B."""
    if ws_a.shape != ws_b.shape:
        raise BadInput(f"cannot mix latents of shapes {ws_a.shape} and {ws_b.shape}")
    mixed = ws_a.copy()
    mixed[layers] = ws_b[layers]
    return mixed


def parse_weights(spec: str | None, count: int) -> np.ndarray:
    """`0.3,0.7` -> weights normalised to sum to 1; None -> equal weights."""
    if spec is None:
        return np.full(count, 1 / count)
    try:
        weights = np.asarray([float(v) for v in spec.split(",")], np.float64)
    except ValueError:
        raise BadInput(f"--weights {spec!r}: give comma-separated numbers like 0.3,0.7") from None
    if len(weights) != count:
        raise BadInput(f"--weights has {len(weights)} values for {count} latents")
    if not np.isfinite(weights).all():
        raise BadInput(f"--weights {spec!r}: give finite numbers")
    if abs(weights.sum()) < 1e-12:
        raise BadInput("--weights sum to zero")
    return weights / weights.sum()


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


def run_mix(net: Network, sources: list[str], out: str | Path, layers: str | None = None, average: bool = False,
            weights: str | None = None, grid: bool = False, save_latents: bool = False, psi: float = 1.0,
            noise_mode: str = "const", label: str | None = None, attrs: str | None = None,
            precision: str = "fp32") -> Iterator[Path]:
    """Mix or average the latents `sources` names and write the results under `out`; yield each path."""
    out = Path(out)
    precision = resolve_precision(precision, next(net.G_ema.parameters()).device)
    c = label_vector(net, label, attrs)
    if average:
        if layers is not None or grid:
            raise BadInput("--average takes neither --layers nor --grid")
        specs = expand_sources(sources)
        if len(specs) < 2:
            raise BadInput("--average needs at least two latents")
        latents = np.stack([read_latent(net, s, psi, c) for s in specs])
        mean = weighted_average(latents, parse_weights(weights, len(specs)))
        yield save_image(render(net, mean[None], c, psi, noise_mode, precision=precision)[0], out / "average.png")
        if save_latents:
            yield save_latent(out / "average.npy", mean)
        return
    require_wplus(net, "style mixing")
    if weights is not None:
        raise BadInput("--weights goes with --average")
    if len(sources) != 2:
        raise BadInput(f"style mixing takes two inputs, A and B (seed lists or files); got {len(sources)}")
    rows, cols = expand_sources([sources[0]]), expand_sources([sources[1]])
    chosen = parse_layers(layers or DEFAULT_LAYERS, net.G_ema)
    ws_rows = np.stack([read_latent(net, s, psi, c) for s in rows])
    ws_cols = np.stack([read_latent(net, s, psi, c) for s in cols])
    mixed = np.stack([style_mix(a, b, chosen) for a in ws_rows for b in ws_cols])
    images = render(net, mixed, noise_mode=noise_mode, precision=precision)
    names = [f"mix-{source_name(a)}-{source_name(b)}" for a in rows for b in cols]
    if grid:
        figure = mixing_figure(render(net, ws_rows, noise_mode=noise_mode, precision=precision),
                               render(net, ws_cols, noise_mode=noise_mode, precision=precision), images)
        yield save_image(figure, out / "mix-grid.png")
    else:
        for name, image in zip(names, images):
            yield save_image(image, out / f"{name}.png")
    if save_latents:
        for name, ws in zip(names, mixed):
            yield save_latent(out / f"{name}.npy", ws)

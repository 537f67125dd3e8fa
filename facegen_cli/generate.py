"""Draw images for a list of seeds and write them: one file per seed (and its W+), or one grid."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.images import check_format, make_grid, save_image
from facegen_cli.latent.io import save_latent
from facegen_cli.sampler import Sampler
from facegen_cli.seeds import check_seeds

MAX_GRID_SIDE = 16384  # pixels; a grid image is built whole in memory


def write_samples(sampler: Sampler, seeds: Sequence[int], out: str | Path, grid: tuple[int, int] | None = None,
                  save_latents: bool = False, fmt: str = "png",
                  on_image: Callable[[], None] | None = None) -> Iterator[dict]:
    """Generate `seeds` and save them under `out` (one file per seed, or one grid); yield a record per file.

    Every option is checked here, before the first image is drawn or the caller iterates.
    """
    net = sampler.net
    if grid and len(seeds) > grid[0] * grid[1]:
        raise BadParameter("grid", f"grid {grid[0]}x{grid[1]} does not fit {len(seeds)} seeds")
    side = max(grid or (1,)) * int(sampler.G.img_resolution)
    if side > MAX_GRID_SIDE:
        raise BadParameter("grid", f"grid {grid[0]}x{grid[1]} of {sampler.G.img_resolution} px images is {side} px "
                                   f"wide; at most {MAX_GRID_SIDE} px")
    if save_latents and not sampler.has_wplus:
        raise BadParameter("save_latents", f"save_latents needs a W+ model; {net.arch} has none")
    check_format(fmt)
    check_seeds(seeds)
    sampler.require_label()
    if Path(out).exists() and not Path(out).is_dir():
        raise BadInput(f"{out}: exists and is not a folder")
    return _save_samples(sampler, seeds, Path(out), grid, save_latents, fmt, on_image)


def _save_samples(sampler: Sampler, seeds: Sequence[int], out: Path, grid: tuple[int, int] | None,
                  save_latents: bool, fmt: str, on_image: Callable[[], None] | None) -> Iterator[dict]:
    cells, latents = [], []
    moved = {k: v for k, v in (("translate", sampler.translate), ("rotate", sampler.rotate)) if v is not None}
    about = {"psi": sampler.psi, "noise_mode": sampler.noise_mode}
    for sample in sampler.samples(seeds):
        record = {"seed": sample.seed, **about, **moved}
        if save_latents:
            record["latent"] = str(save_latent(out / f"seed{sample.seed:04d}.npy", sample.ws))
        if grid:
            cells.append(sample.image)
            latents += [record["latent"]] if save_latents else []
        else:
            record["path"] = str(save_image(sample.image, out / f"seed{sample.seed:04d}.{fmt}", fmt))
            yield record
        if on_image:
            on_image()
    if grid:
        path = save_image(make_grid(np.stack(cells), *grid), out / f"grid.{fmt}", fmt)
        yield {"path": str(path), "seeds": list(seeds), **about, **({"latents": latents} if save_latents else {})}

"""`facegen generate`: images for a list of seeds."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from facegen_cli.cli.common import emit, out_option, progress
from facegen_cli.cli.options import sampling, save_latents_option, seed_list, typed
from facegen_cli.specs import parse_grid

if TYPE_CHECKING:
    from facegen_cli.sampler import SampleOptions


@sampling
def generate(
    seeds: list = typer.Option("0-7", "--seeds", "-s", parser=typed(seed_list, "--seeds"), metavar="SEEDS",
                               help="Seeds like 0-99,120,200-205; '-' reads them from stdin."),
    options: SampleOptions = None,
    out: Path = out_option(Path("out"), "Output folder."),
    grid: Optional[tuple] = typer.Option(None, "--grid", parser=typed(parse_grid, "--grid"), metavar="ROWSxCOLS",
                                         help="Write one grid image instead of one per seed."),
    save_latents: bool = save_latents_option,
    fmt: str = typer.Option("png", "--format", help="png or jpg."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per image instead of paths."),
    network: Optional[str] = None,
    device: str = "auto",
) -> None:
    """Generate faces for a list of seeds (seed -> z exactly as NVIDIA's tools draw it)."""
    from facegen_cli import api

    bar = progress()
    task = bar.add_task("generate", total=len(seeds))
    # api.generate checks every option before returning; the progress bar starts only after that.
    records = api.generate(seeds, out, network=network, options=options, grid=grid, save_latents=save_latents,
                           fmt=fmt, device=device, on_progress=lambda done, total: bar.update(task, completed=done))
    with bar:
        for record in records:
            if as_json:
                emit(record, as_json)
            else:  # the image, then its latent (or, for a grid, every seed's latent)
                for path in [record["path"], *([record["latent"]] if "latent" in record else []),
                             *record.get("latents", [])]:
                    emit(path)

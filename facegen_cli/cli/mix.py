"""`facegen mix`: style mixing of two latents, or a weighted average of several."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from facegen_cli.cli.common import emit, out_option
from facegen_cli.cli.options import (layers_help, layers_option, read_sources, sampling, save_latents_option,
                                     weights_option)

if TYPE_CHECKING:
    from facegen_cli.sampler import SampleOptions


@sampling
def mix(
    sources: List[str] = typer.Argument(..., help="Latents: .npy files or seed:N (seed:0-3 for a list); '-' reads stdin."),
    layers: Optional[list] = layers_option(f"W+ layers taken from B: {layers_help} (default coarse)."),
    grid: bool = typer.Option(False, "--grid", help="One figure: A as rows, B as columns, sources on the borders."),
    average: bool = typer.Option(False, "--average", help="Weighted average of all inputs instead of mixing."),
    weights: Optional[list] = weights_option(),
    save_latents: bool = save_latents_option,
    options: SampleOptions = None,
    out: Path = out_option(Path("out/mix"), "Output folder."),
    network: Optional[str] = None,
    device: str = "auto",
) -> None:
    """Mix styles of A and B (layers from B, the rest from A), or average latents with --average."""
    from facegen_cli import api
    from facegen_cli.errors import BadInput

    if average and (layers is not None or grid):
        raise BadInput("--average takes neither --layers nor --grid")
    if not average and weights is not None:
        raise BadInput("--weights goes with --average")
    if not average and len(sources) != 2:
        raise BadInput(f"style mixing takes two inputs, A and B (seed lists or files); got {len(sources)}")
    if average:
        paths = api.average(read_sources(sources), out, network, options, weights, save_latents, device)
    else:
        paths = api.mix(read_sources(sources[:1]), read_sources(sources[1:]), out, network, options, layers, grid,
                        save_latents, device)
    for path in paths:
        emit(path)

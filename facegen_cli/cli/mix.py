"""`facegen mix`: style mixing of two latents, or a weighted average of several."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option)
from facegen_cli.cli.options import (attr_option, label_option, layer_indices, layers_help, make_sampler,
                                     psi_option, read_sources, save_latents_option)


def mix(
    sources: List[str] = typer.Argument(..., help="Latents: .npy files or seed:N (seed:0-3 for a list); '-' reads stdin."),
    network: Optional[str] = network_option,
    layers: Optional[str] = typer.Option(None, "--layers", help=f"W+ layers taken from B: {layers_help} "
                                                                 "(default coarse)."),
    grid: bool = typer.Option(False, "--grid", help="One figure: A as rows, B as columns, sources on the borders."),
    average: bool = typer.Option(False, "--average", help="Weighted average of all inputs instead of mixing."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Weights for --average, e.g. 0.3,0.7."),
    save_latents: bool = save_latents_option,
    psi: float = psi_option,
    noise_mode: str = noise_mode_option,
    label: Optional[str] = label_option,
    attr: Optional[str] = attr_option,
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/mix"), "Output folder."),
) -> None:
    """Mix styles of A and B (layers from B, the rest from A), or average latents with --average."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.errors import BadInput
    from facegen_cli.latent.mixing import run_average, run_mix
    from facegen_cli.networks import load_network
    from facegen_cli.sampler import require_wplus
    from facegen_cli.specs import parse_numbers

    if average and (layers is not None or grid):
        raise BadInput("--average takes neither --layers nor --grid")
    if not average and weights is not None:
        raise BadInput("--weights goes with --average")
    if not average and len(sources) != 2:
        raise BadInput(f"style mixing takes two inputs, A and B (seed lists or files); got {len(sources)}")
    share = parse_numbers(weights, "weights") if weights is not None else None
    net = load_network(network, resolve_device(device))
    sampler = make_sampler(net, psi, noise_mode, label, attr, precision=precision)
    if average:
        paths = run_average(sampler, read_sources(sources), out, share, save_latents)
    else:
        require_wplus(net, "style mixing")
        paths = run_mix(sampler, read_sources(sources[:1]), read_sources(sources[1:]), out,
                        layer_indices(net.G_ema, layers), grid, save_latents)
    for path in paths:
        emit(path)

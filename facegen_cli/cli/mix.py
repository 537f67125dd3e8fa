"""`facegen mix`: style mixing of two latents, or a weighted average of several."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option)


def mix(
    sources: List[str] = typer.Argument(..., help="Latents: .npy files or seed:N (seed:0-3 for a list); '-' reads stdin."),
    network: Optional[str] = network_option,
    layers: Optional[str] = typer.Option(None, "--layers", help="W+ layers taken from B: coarse, middle, fine or "
                                                                 "ranges like 0-3,8- (default coarse)."),
    grid: bool = typer.Option(False, "--grid", help="One figure: A as rows, B as columns, sources on the borders."),
    average: bool = typer.Option(False, "--average", help="Weighted average of all inputs instead of mixing."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Weights for --average, e.g. 0.3,0.7."),
    save_latents: bool = typer.Option(False, "--save-latents", help="Also write each result's latent as .npy."),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi for seed:N inputs."),
    noise_mode: str = noise_mode_option,
    label: Optional[str] = typer.Option(None, "--label", help="Class index or label vector (conditional networks)."),
    attr: Optional[str] = typer.Option(None, "--attr", help="Attributes like Male=1 (conditional networks)."),
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/mix"), "Output folder."),
) -> None:
    """Mix styles of A and B (layers from B, the rest from A), or average latents with --average."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.latent.mixing import run_mix
    from facegen_cli.networks import load_network

    net = load_network(network, resolve_device(device))
    for path in run_mix(net, sources, out, layers=layers, average=average, weights=weights, grid=grid,
                        save_latents=save_latents, psi=psi, noise_mode=noise_mode, label=label, attrs=attr,
                        precision=precision):
        emit(path)

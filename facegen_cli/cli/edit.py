"""`facegen edit`: move a latent along a direction."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option)


def _check_range(value: Optional[str]) -> Optional[str]:
    """--range is checked while parsing, before the network loads."""
    from facegen_cli.latent.directions import parse_range

    if value is not None:
        parse_range(value, 2)
    return value


def edit(
    latent: str = typer.Argument(..., help="A W+ .npy file or seed:N."),
    direction: str = typer.Option(..., "--direction", "-d", help="A direction name (from `facegen directions`) "
                                                                  "or a .npy file."),
    strength: Optional[float] = typer.Option(None, "--strength", help="How far to move (one image)."),
    span: Optional[str] = typer.Option(None, "--range", callback=_check_range, help="LOW:HIGH for a strip, e.g. -3:3."),
    steps: int = typer.Option(7, "--steps", min=2, max=1000, help="Images in a --range strip."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Only these W+ layers: coarse, middle, fine or "
                                                                 "ranges like 0-3,8-."),
    conditional: Optional[str] = typer.Option(None, "--conditional", help="Directions to keep fixed, e.g. Male "
                                                                          "(projected out of the edit)."),
    save_latents: bool = typer.Option(False, "--save-latents", help="Also write the edited W+ as .npy."),
    network: Optional[str] = network_option,
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi for a seed:N input."),
    noise_mode: str = noise_mode_option,
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/edit"), "Output folder."),
) -> None:
    """Change one attribute of a face by moving its latent along a direction."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.latent.directions import run_edit
    from facegen_cli.networks import load_network

    net = load_network(network, resolve_device(device))
    others = [c.strip() for c in conditional.split(",") if c.strip()] if conditional else None
    for path in run_edit(net, latent, direction, out, strength=strength, span=span, steps=steps, layers=layers,
                         conditional=others, save_latents=save_latents, psi=psi, noise_mode=noise_mode,
                         precision=precision):
        emit(path)

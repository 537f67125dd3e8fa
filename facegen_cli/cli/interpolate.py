"""`facegen interpolate`: a morph through two or more latents."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option)
from facegen_cli.cli.options import attr_option, label_option, make_sampler, psi_option, read_sources

MAX_FRAMES = 10_000  # all frames are held in memory before they are written


def interpolate(
    sources: List[str] = typer.Argument(..., help="Keyframes: .npy files or seed:N (seed:0-3 for a list)."),
    network: Optional[str] = network_option,
    frames: int = typer.Option(60, "--frames", min=2, max=MAX_FRAMES, help="Frames in all."),
    space: Optional[str] = typer.Option(None, "--space", help="w (lerp) or z (slerp, seeds only); default w, "
                                                               "z for networks without W."),
    loop: bool = typer.Option(False, "--loop", help="Come back to the first keyframe."),
    fps: float = typer.Option(24.0, "--fps", help="Frames per second of a GIF or MP4, 1-120."),
    psi: float = psi_option,
    noise_mode: str = noise_mode_option,
    label: Optional[str] = label_option,
    attr: Optional[str] = attr_option,
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/interpolation.gif"), "A .gif, an .mp4, a .png strip, or a folder for numbered "
                                                           "frames.", kind="either"),
) -> None:
    """Morph from A to B (to C ...): lerp in W or slerp in Z, written as GIF, MP4, PNG strip or frames."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.latent.interpolate import run_interpolate
    from facegen_cli.networks import load_network

    net = load_network(network, resolve_device(device))
    sampler = make_sampler(net, psi, noise_mode, label, attr, precision=precision)
    for path in run_interpolate(sampler, read_sources(sources), out, frames=frames, space=space, loop=loop, fps=fps):
        emit(path)

"""`facegen interpolate`: a morph through two or more latents."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from facegen_cli.cli.common import emit, out_option
from facegen_cli.cli.options import read_sources, sampling

if TYPE_CHECKING:
    from facegen_cli.sampler import SampleOptions


@sampling
def interpolate(
    sources: List[str] = typer.Argument(..., help="Keyframes: .npy files or seed:N (seed:0-3 for a list)."),
    frames: int = typer.Option(60, "--frames", help="Frames in all, 2-10000 (at least one per keyframe)."),
    space: Optional[str] = typer.Option(None, "--space", help="w (lerp) or z (slerp, seeds only); default w, "
                                                               "z for networks without W."),
    loop: bool = typer.Option(False, "--loop", help="Come back to the first keyframe."),
    fps: float = typer.Option(24.0, "--fps", help="Frames per second of a GIF or MP4, 1-120."),
    options: SampleOptions = None,
    out: Path = out_option(Path("out/interpolation.gif"), "A .gif, an .mp4, a .png strip, or a folder for numbered "
                                                           "frames.", kind="either"),
    network: Optional[str] = None,
    device: str = "auto",
) -> None:
    """Morph from A to B (to C ...): lerp in W or slerp in Z, written as GIF, MP4, PNG strip or frames."""
    from facegen_cli import api

    for path in api.interpolate(read_sources(sources), out, network, options, frames=frames, space=space, loop=loop,
                                fps=fps, device=device):
        emit(path)

"""`facegen generate`: images for a list of seeds."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option, progress, read_stdin_tokens)


def generate(
    seeds: str = typer.Option("0-7", "--seeds", "-s", help="Seeds like 0-99,120,200-205; '-' reads them from stdin."),
    network: Optional[str] = network_option,
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi in [-2, 2]; 1 = none, 0.5-0.7 = cleaner faces."),
    cutoff: Optional[int] = typer.Option(None, "--cutoff", min=0, help="Truncate only the first N layers of W+."),
    noise_mode: str = noise_mode_option,
    label: Optional[str] = typer.Option(None, "--label", help="Class index or comma-separated label vector."),
    attr: Optional[str] = typer.Option(None, "--attr", help="Attributes like Male=1,Smiling=1 (conditional networks)."),
    attr_default: Optional[str] = typer.Option(None, "--attr-default",
                                               help="Attributes --attr leaves unnamed: mean (data frequency) or N."),
    batch: int = typer.Option(8, "--batch", min=1, help="Images per forward pass."),
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out"), "Output folder."),
    grid: Optional[str] = typer.Option(None, "--grid", help="ROWSxCOLS: write one grid image instead of one per seed."),
    save_latents: bool = typer.Option(False, "--save-latents", help="Write each image's W+ as seedNNNN.npy."),
    fmt: str = typer.Option("png", "--format", help="png or jpg."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per image instead of paths."),
    translate: Optional[str] = typer.Option(None, "--translate",
                                            help="X,Y: shift a StyleGAN3 image by fractions of its size."),
    rotate: Optional[float] = typer.Option(None, "--rotate", help="Turn a StyleGAN3 image by DEG degrees."),
) -> None:
    """Generate faces for a list of seeds (seed -> z exactly as NVIDIA's tools draw it)."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.errors import BadInput
    from facegen_cli.generate import check_psi, parse_translate, write_samples
    from facegen_cli.images import check_format, parse_grid
    from facegen_cli.latent.seeds import count_seeds, parse_seeds
    from facegen_cli.networks import load_network

    shape = parse_grid(grid) if grid else None
    spec = read_stdin_tokens() if seeds == "-" else seeds
    if shape and count_seeds(spec) > shape[0] * shape[1]:  # before a long list is built
        raise BadInput(f"{count_seeds(spec)} seeds do not fit a {shape[0]}x{shape[1]} grid")
    seed_list = parse_seeds(spec)
    check_psi(psi)
    check_format(fmt)
    shift = parse_translate(translate)
    net = load_network(network, resolve_device(device))
    bar = progress()
    task = bar.add_task("generate", total=len(seed_list))
    # write_samples checks every option before returning; the progress bar starts only after that.
    records = write_samples(net, seed_list, out, psi=psi, cutoff=cutoff, noise_mode=noise_mode, label=label,
                            attrs=attr, batch=batch, grid=shape, save_latents=save_latents, fmt=fmt,
                            on_image=lambda: bar.advance(task), attr_default=attr_default, precision=precision,
                            translate=shift, rotate=rotate)
    with bar:
        for record in records:
            emit(record if as_json else record["path"], as_json)

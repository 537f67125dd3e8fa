"""`facegen generate`: images for a list of seeds."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option, progress, read_stdin_tokens)
from facegen_cli.cli.options import (attr_default_option, attr_option, batch_option, cutoff_option, label_option,
                                     make_sampler, psi_option, rotate_option, save_latents_option, translate_option)


def generate(
    seeds: str = typer.Option("0-7", "--seeds", "-s", help="Seeds like 0-99,120,200-205; '-' reads them from stdin."),
    network: Optional[str] = network_option,
    psi: float = psi_option,
    cutoff: Optional[int] = cutoff_option,
    noise_mode: str = noise_mode_option,
    label: Optional[str] = label_option,
    attr: Optional[str] = attr_option,
    attr_default: Optional[str] = attr_default_option,
    batch: int = batch_option,
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out"), "Output folder."),
    grid: Optional[str] = typer.Option(None, "--grid", help="ROWSxCOLS: write one grid image instead of one per seed."),
    save_latents: bool = save_latents_option,
    fmt: str = typer.Option("png", "--format", help="png or jpg."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per image instead of paths."),
    translate: Optional[str] = translate_option,
    rotate: Optional[float] = rotate_option,
) -> None:
    """Generate faces for a list of seeds (seed -> z exactly as NVIDIA's tools draw it)."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.errors import BadInput
    from facegen_cli.generate import write_samples
    from facegen_cli.images import check_format
    from facegen_cli.networks import load_network
    from facegen_cli.sampler import check_psi
    from facegen_cli.specs import count_seeds, parse_grid, parse_seeds, parse_translate

    shape = parse_grid(grid) if grid else None
    spec = read_stdin_tokens() if seeds == "-" else seeds
    if shape and count_seeds(spec) > shape[0] * shape[1]:  # before a long list is built
        raise BadInput(f"{count_seeds(spec)} seeds do not fit a {shape[0]}x{shape[1]} grid")
    seed_list = parse_seeds(spec)
    check_psi(psi)  # these three before the network loads
    check_format(fmt)
    if translate is not None:
        parse_translate(translate)
    net = load_network(network, resolve_device(device))
    sampler = make_sampler(net, psi, noise_mode, label, attr, attr_default, precision, batch, cutoff, translate,
                           rotate)
    bar = progress()
    task = bar.add_task("generate", total=len(seed_list))
    # write_samples checks every option before returning; the progress bar starts only after that.
    records = write_samples(sampler, seed_list, out, grid=shape, save_latents=save_latents, fmt=fmt,
                            on_image=lambda: bar.advance(task))
    with bar:
        for record in records:
            if as_json:
                emit(record, as_json)
            else:  # the image, then its latent (or, for a grid, every seed's latent)
                for path in [record["path"], *([record["latent"]] if "latent" in record else []),
                             *record.get("latents", [])]:
                    emit(path)

"""`facegen project`: find the latent that reproduces a photo."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import (console, device_option, emit, network_option, out_option, precision_option,
                                    progress)


def project(
    photo: Path = typer.Argument(..., help="A photo with a face (aligned like `prepare` unless --align none)."),
    network: Optional[str] = network_option,
    steps: int = typer.Option(500, "--steps", min=1, help="Optimisation steps."),
    wplus: bool = typer.Option(False, "--wplus", help="Optimise one w per layer (W+) instead of one w."),
    align: str = typer.Option("ffhq", "--align", help="ffhq (detect and align the largest face) or none "
                                                      "(centre square, for aligned images)."),
    lr: float = typer.Option(0.1, "--lr", help="Peak learning rate."),
    perceptual_weight: float = typer.Option(1.0, "--perceptual-weight", help="Weight of the Inception perceptual "
                                                                              "distance; 0 = pixels only."),
    pixel_weight: float = typer.Option(1.0, "--pixel-weight", help="Weight of the pixel MSE."),
    noise_weight: float = typer.Option(1e5, "--noise-weight", help="Weight of the noise-map regulariser."),
    video: bool = typer.Option(False, "--video", help="Also write a progress video (target | projection)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise maps."),
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/project"), "Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (distances, PSNR, steps, paths) on "
                                                       "stdout instead of the paths."),
) -> None:
    """Align PHOTO, optimise W (or W+) and the noise maps to reproduce it; write image, latent, distances."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.latent.project import ProjectOptions, run_project
    from facegen_cli.networks import load_network

    net = load_network(network, resolve_device(device))
    opts = ProjectOptions(steps=steps, wplus=wplus, lr=lr, perceptual_weight=perceptual_weight,
                          pixel_weight=pixel_weight, noise_weight=noise_weight, seed=seed, precision=precision)
    with progress("step") as bar:
        task = bar.add_task("project", total=steps)
        paths, stats = run_project(net, photo, out, opts, how=align, video=video,
                                   on_step=lambda i, s: bar.update(task, completed=i + 1))
    if as_json:
        emit({**stats, "steps": steps, "wplus": wplus, "paths": [str(p) for p in paths]}, as_json=True)
        return
    console.print(json.dumps(stats))
    for path in paths:
        emit(path)

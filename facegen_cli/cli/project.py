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
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimisation steps, 1-100000 (default 500; "
                                                                     "150 with --tune)."),
    wplus: bool = typer.Option(False, "--wplus", help="Optimise one w per layer (W+) instead of one w."),
    tune: bool = typer.Option(False, "--tune", help="Pivotal tuning: after the W projection, fine-tune the "
                                                    "network around it; writes STEM-tuned.png and the tuned "
                                                    "network STEM-tuned.safetensors (use it as --network)."),
    tune_steps: Optional[int] = typer.Option(None, "--tune-steps", help="Fine-tuning steps, 1-100000 (--tune; "
                                                                                 "default 150)."),
    locality_weight: Optional[float] = typer.Option(None, "--locality-weight",
                                                    help="Weight of the regulariser that keeps the tuned network's "
                                                         "other faces as they were (--tune; default 0.5); 0 = off."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Take the latent from this encoder file in one "
                                                                  "forward pass (`default`: the network's shipped "
                                                                  "one) instead of optimising; with --tune, the "
                                                                  "tuning starts from it."),
    align: str = typer.Option("ffhq", "--align", help="ffhq (detect and align the largest face) or none "
                                                      "(centre square, for aligned images; used as it is when "
                                                      "already the network's size)."),
    lr: float = typer.Option(0.1, "--lr", help="Peak learning rate."),
    perceptual_weight: float = typer.Option(1.0, "--perceptual-weight", help="Weight of the Inception perceptual "
                                                                              "distance; 0 = pixels only."),
    pixel_weight: float = typer.Option(1.0, "--pixel-weight", help="Weight of the pixel MSE."),
    noise_weight: float = typer.Option(1e5, "--noise-weight", help="Weight of the noise-map regulariser."),
    video: bool = typer.Option(False, "--video", help="Also write a progress video (target | projection)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise maps (and of the tuning's samples)."),
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/project"), "Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (distances, PSNR, steps, paths) on "
                                                       "stdout instead of the paths."),
) -> None:
    """Align PHOTO, optimise W (or W+) and the noise maps to reproduce it (and with --tune, the network around
    that W); write image, latent, distances."""
    from facegen_cli import api

    def faces(count: int) -> None:
        if count > 1:
            console.print(f"{photo}: {count} faces found; projecting the largest")

    with progress("step") as bar:
        task = bar.add_task("project", total=None, visible=encoder is None)
        tuning = bar.add_task("tune", total=None, visible=tune)
        done = api.project(photo, out, network, steps=steps, wplus=wplus, tune=tune, tune_steps=tune_steps,
                           locality_weight=locality_weight, encoder=encoder, align=align, lr=lr,
                           perceptual_weight=perceptual_weight, pixel_weight=pixel_weight, noise_weight=noise_weight,
                           video=video, seed=seed, precision=precision, device=device,
                           on_progress=lambda i, total: bar.update(task, completed=i, total=total),
                           on_tune_progress=lambda i, total: bar.update(tuning, completed=i, total=total),
                           on_faces=faces)
    if as_json:
        emit({**done.stats, "steps": done.steps, "wplus": wplus, "encoder": encoder, "tune_steps": done.tune_steps,
              "paths": [str(p) for p in done.paths]}, as_json=True)
        return
    console.print(json.dumps(done.stats))
    for path in done.paths:
        emit(path)

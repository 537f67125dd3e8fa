"""`facegen project`: find the latent that reproduces a photo."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import (console, device_option, emit, network_option, out_option, precision_option,
                                    progress)
from facegen_cli.errors import BadInput

STEPS = 500  # of a projection on its own
PIVOT_STEPS = 150  # of the W projection pivotal tuning starts from (benchmarks/RESULTS.md, "Your own photo")


def project(
    photo: Path = typer.Argument(..., help="A photo with a face (aligned like `prepare` unless --align none)."),
    network: Optional[str] = network_option,
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help=f"Optimisation steps (default {STEPS}; "
                                                                     f"{PIVOT_STEPS} with --tune)."),
    wplus: bool = typer.Option(False, "--wplus", help="Optimise one w per layer (W+) instead of one w."),
    tune: bool = typer.Option(False, "--tune", help="Pivotal tuning: after the W projection, fine-tune the "
                                                    "network around it; writes STEM-tuned.png and the tuned "
                                                    "network STEM-tuned.safetensors (use it as --network)."),
    tune_steps: Optional[int] = typer.Option(None, "--tune-steps", min=1, help="Fine-tuning steps (--tune; "
                                                                                 "default 100)."),
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
    from facegen_cli.devices import resolve_device
    from facegen_cli.encoder.encode import run_encode
    from facegen_cli.latent.project import ProjectOptions, run_project
    from facegen_cli.latent.tuning import TuneOptions, run_tune
    from facegen_cli.networks import load_network

    steps_given, steps = steps, steps or (PIVOT_STEPS if tune else STEPS)
    opts = ProjectOptions(steps=steps, wplus=wplus, lr=lr, perceptual_weight=perceptual_weight,
                          pixel_weight=pixel_weight, noise_weight=noise_weight, seed=seed, precision=precision)
    given = {k: v for k, v in (("steps", tune_steps), ("locality_weight", locality_weight)) if v is not None}
    tune_opts = TuneOptions(perceptual_weight=perceptual_weight, pixel_weight=pixel_weight, seed=seed,
                            precision=precision, **given) if tune else None
    if tune and wplus:
        raise BadInput("--tune starts from a W projection; leave out --wplus")
    if encoder is not None and (wplus or video or steps_given is not None):
        raise BadInput("--encoder gives the latent in one forward pass; leave out --steps, --wplus and --video")
    net = load_network(network, resolve_device(device))

    def faces(count: int) -> None:
        if count > 1:
            console.print(f"{photo}: {count} faces found; projecting the largest")

    with progress("step") as bar:
        task = bar.add_task("project", total=steps, visible=encoder is None)
        tuning = bar.add_task("tune", total=tune_opts.steps if tune_opts else 0, visible=tune)
        if encoder is not None:
            paths, stats = run_encode(net, photo, out, encoder, how=align, precision=precision, tune_opts=tune_opts,
                                      on_tune_step=lambda i, s: bar.update(tuning, completed=i + 1), on_faces=faces)
        elif tune_opts:
            paths, stats = run_tune(net, photo, out, opts, tune_opts, how=align, video=video,
                                    on_step=lambda i, s: bar.update(task, completed=i + 1),
                                    on_tune_step=lambda i, s: bar.update(tuning, completed=i + 1), on_faces=faces)
        else:
            paths, stats = run_project(net, photo, out, opts, how=align, video=video,
                                       on_step=lambda i, s: bar.update(task, completed=i + 1), on_faces=faces)
    if as_json:
        emit({**stats, "steps": 0 if encoder else steps, "wplus": wplus, "encoder": encoder,
              "tune_steps": tune_opts.steps if tune_opts else 0, "paths": [str(p) for p in paths]}, as_json=True)
        return
    console.print(json.dumps(stats))
    for path in paths:
        emit(path)

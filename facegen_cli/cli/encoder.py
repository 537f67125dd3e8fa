"""`facegen encoder train`: train an encoder that projects a photo into a network in one forward pass."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, device_option, emit, out_option, precision_option, progress
from facegen_cli.cli.options import network_argument

LOG_EVERY = 50  # steps between loss lines on stderr

app = typer.Typer(help="Encoders: a photo's latent in one forward pass (`project --encoder`).", no_args_is_help=True)


def train(
    network: Optional[str] = network_argument,
    data: Optional[Path] = typer.Option(None, "--data", help="A prepared dataset of real faces at the network's "
                                                             "size, mixed into each batch (image losses only)."),
    out: Optional[Path] = out_option(None, "The encoder file; default: the --resume file, else "
                                           "out/encoders/NETWORK_ID.safetensors.", kind="file"),
    kimg: float = typer.Option(100.0, "--kimg", help="Train until this many thousand images in all, (0, "
                                                     "10^6] (a resumed file's count included)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop after this many minutes, (0, 10^6] (the "
                                                                    "file is written then; resume it later)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Go on training this encoder file (weights, "
                                                                 "optimizer, record)."),
    start_from: Optional[Path] = typer.Option(None, "--start-from", help="Start from this encoder's weights: one "
                                                                         "trained for another network of the same "
                                                                         "sizes (an earlier snapshot of the run); a "
                                                                         "fresh optimizer and count."),
    batch: int = typer.Option(8, "--batch", help="Images per step, 1-4096."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate, (0, 1]."),
    perceptual_weight: float = typer.Option(1.0, "--perceptual-weight", help="Weight of the perceptual distance, "
                                                                             "0-10^4; 0 = off (faster)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled latents and real-face picks."),
    device: str = device_option,
    precision: str = precision_option,
) -> None:
    """Train an encoder for NETWORK on its own samples (known latents) and optionally real faces; print the
    file and its training record."""
    from facegen_cli import api

    with progress("img") as bar:
        task = bar.add_task("train encoder", total=None)  # sized at the first step, once the engine took kimg

        def step(stats: dict) -> None:
            bar.update(task, total=round(kimg * 1000), completed=round(stats["kimg"] * 1000))
            if stats["steps"] % LOG_EVERY == 0:
                console.print(" ".join(f"{k} {v:.4g}" for k, v in stats.items()))

        path, record = api.train_encoder(network, out, data=data, resume=resume, start_from=start_from, kimg=kimg,
                                         minutes=minutes, batch=batch, lr=lr, perceptual_weight=perceptual_weight,
                                         seed=seed, precision=precision, device=device, on_step=step)
    console.print(json.dumps({k: record[k] for k in ("kimg", "seconds", "steps")}))
    emit(path)

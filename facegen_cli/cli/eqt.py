"""`facegen eqt`: translation equivariance of a StyleGAN3 network, as the alias-free paper measures it."""
from __future__ import annotations

import math
from typing import Optional

import typer

from facegen_cli.cli.common import device_option, emit, network_option
from facegen_cli.cli.options import network_argument, one_network, psi_option
from facegen_cli.seeds import MAX_SEED


def eqt(
    network_arg: Optional[str] = network_argument,
    network: Optional[str] = network_option,
    samples: int = typer.Option(16, "--samples", help="Latents to draw, 1-100000."),
    shifts: int = typer.Option(4, "--shifts", help="Whole-pixel translations per latent, each axis within 1/8 of the "
                                                   "image, 1-1000."),
    seed: int = typer.Option(0, "--seed", help=f"Seed of the latents and the translations, 0-{MAX_SEED}."),
    psi: float = psi_option,
    device: str = device_option,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the bare number."),
) -> None:
    """EQ-T in dB: PSNR between the image of a translated input and the translated image (higher is better)."""
    from facegen_cli import api

    value = api.eqt(one_network(network_arg, network), samples=samples, shifts=shifts, seed=seed, psi=psi,
                    device=device)
    if as_json:
        emit({"eqt_db": value if math.isfinite(value) else "inf", "samples": samples, "shifts": shifts,
              "seed": seed, "psi": psi}, as_json=True)
    else:
        emit(f"{value:.4f}")

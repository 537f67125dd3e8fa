"""`facegen eqt`: translation equivariance of a StyleGAN3 network, as the alias-free paper measures it."""
from __future__ import annotations

import math
from typing import Optional

import typer

from facegen_cli.cli.common import device_option, emit, network_option
from facegen_cli.cli.options import network_argument, one_network, psi_option


def eqt(
    network_arg: Optional[str] = network_argument,
    network: Optional[str] = network_option,
    samples: int = typer.Option(16, "--samples", min=1, max=100_000, help="Latents to draw."),
    shifts: int = typer.Option(4, "--shifts", min=1, max=1000,
                               help="Whole-pixel translations per latent, each axis within 1/8 of the image."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latents and the translations, 0-4294967295."),
    psi: float = psi_option,
    device: str = device_option,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the bare number."),
) -> None:
    """EQ-T in dB: PSNR between the image of a translated input and the translated image (higher is better)."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.errors import BadInput
    from facegen_cli.metrics.equivariance import generator_eqt
    from facegen_cli.networks import load_network, resolve_network
    from facegen_cli.sampler import check_psi

    name = one_network(network_arg, network)
    net = load_network(name, resolve_device(device))
    if net.arch != "stylegan3":
        raise BadInput(f"{resolve_network(name)}: a {net.arch} network; EQ-T needs StyleGAN3, whose input can be "
                       "translated")
    value = generator_eqt(net.G_ema, num_samples=samples, num_shifts=shifts, seed=seed, psi=check_psi(psi))
    if as_json:
        emit({"eqt_db": value if math.isfinite(value) else "inf", "samples": samples, "shifts": shifts,
              "seed": seed, "psi": psi}, as_json=True)
    else:
        emit(f"{value:.4f}")

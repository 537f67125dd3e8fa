"""`facegen info`: what a network is and where it came from."""
from __future__ import annotations

from typing import Optional

import typer

from facegen_cli.cli.common import emit, network_option
from facegen_cli.cli.options import network_argument, one_network


def info(
    network: Optional[str] = network_argument,
    network_opt: Optional[str] = network_option,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ops: bool = typer.Option(False, "--ops", help="Say which implementation each op takes (CUDA kernel or reference) and why."),
) -> None:
    """Print a network's architecture, resolution, latent sizes, conditioning and provenance."""
    from facegen_cli import api

    details = api.info(one_network(network, network_opt), ops=ops)
    if as_json:
        emit(details, as_json=True)
        return
    for key, value in details.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                emit(f"{key}.{sub}: {v}")
        else:
            emit(f"{key}: {value}")

"""`facegen convert`: import an NVIDIA pickle or rosinality checkpoint into facegen's format."""
from __future__ import annotations

from pathlib import Path

import typer

from facegen_cli.cli.common import emit, writable_argument


def convert(
    source: Path = typer.Argument(..., help="NVIDIA network-snapshot-*.pkl, rosinality .pt, or a facegen checkpoint."),
    dest: Path = typer.Argument(..., callback=writable_argument("DEST", lambda path: False),
                                help="Output checkpoint (.safetensors)."),
    ema_only: bool = typer.Option(False, "--ema-only", help="Keep only G_ema (what generate uses)."),
    half: bool = typer.Option(False, "--half", help="Store tensors as fp16 (half the size)."),
) -> None:
    """Import a foreign StyleGAN2 or StyleGAN3 network without running any code from it, or slim a checkpoint."""
    from facegen_cli import api

    emit(str(api.convert(source, dest, ema_only=ema_only, half=half)))

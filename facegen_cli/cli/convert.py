"""`facegen convert`: import an NVIDIA pickle or rosinality checkpoint into facegen's format."""
from __future__ import annotations

from pathlib import Path

import typer

from facegen_cli.cli.common import emit


def convert(
    source: Path = typer.Argument(..., help="NVIDIA network-snapshot-*.pkl or rosinality .pt file."),
    dest: Path = typer.Argument(..., help="Output checkpoint (.safetensors)."),
) -> None:
    """Import a foreign StyleGAN2 network without running any code from it."""
    from facegen_cli.convert.importer import convert_file

    emit(str(convert_file(source, dest)))

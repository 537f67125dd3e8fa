"""`facegen identity A B`: how far apart the faces in two photos are as people (dlib's face descriptor)."""
from __future__ import annotations

from pathlib import Path

import typer

from facegen_cli.cli.common import emit


def identity(
    a: Path = typer.Argument(..., help="A photo or image file with a face."),
    b: Path = typer.Argument(..., help="Another photo or image file with a face."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the bare number."),
) -> None:
    """Identity distance between the faces in A and B (under 0.6: the same person by dlib's rule)."""
    from facegen_cli import api

    found = api.identity(a, b)
    if as_json:
        emit({"distance": found.distance, "same_person": found.same_person, "threshold": found.threshold,
              "a": str(a), "b": str(b)}, as_json=True)
    else:
        emit(f"{found.distance:.4f}")

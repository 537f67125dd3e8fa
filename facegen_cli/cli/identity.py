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
    from facegen_cli.metrics.identity import SAME_PERSON_THRESHOLD, photo_distance

    value = photo_distance(a, b)
    if as_json:
        emit({"distance": value, "same_person": value < SAME_PERSON_THRESHOLD, "threshold": SAME_PERSON_THRESHOLD,
              "a": str(a), "b": str(b)}, as_json=True)
    else:
        emit(f"{value:.4f}")

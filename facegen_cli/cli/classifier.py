"""`facegen classifier train`: the attribute classifier `directions fit` labels faces with."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, emit, out_option

app = typer.Typer(help="Train the face attribute classifier used by `facegen directions fit`.", no_args_is_help=True)


def train(
    dataset: Path = typer.Argument(..., exists=True, help="A dataset from `facegen prepare --labels` (folder or zip)."),
    attrs: Optional[str] = typer.Option(None, "--attrs", help="Attributes to learn, e.g. Smiling,Male; default all."),
    size: int = typer.Option(64, "--size", min=16, help="Input side in pixels."),
    epochs: int = typer.Option(5, "--epochs", min=1),
    batch: int = typer.Option(64, "--batch", min=2),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate (one-cycle schedule)."),
    holdout: float = typer.Option(0.1, "--holdout", min=0.01, max=0.9,
                                  help="Fraction of images kept out to measure accuracy."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = out_option(Path("classifier.safetensors"), "Classifier file to write.", kind="file"),
) -> None:
    """Train a small CNN on CPU; report held-out accuracy (binary) or mean error (numeric, e.g. age)."""
    from facegen_cli.classifier import train_classifier

    names = [a.strip() for a in attrs.split(",") if a.strip()] if attrs else None
    report = train_classifier(dataset, out, names, size=size, epochs=epochs, batch=batch, lr=lr, holdout=holdout,
                              seed=seed, on_epoch=lambda e, loss: console.print(f"epoch {e}/{epochs}: loss {loss:.4f}"),
                              on_note=lambda note: console.print(note, markup=False))
    console.print(json.dumps(report["holdout"]))
    emit(report["path"])

"""`facegen classifier train`: the attribute classifier `directions fit` labels faces with."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, emit, out_option
from facegen_cli.cli.options import name_list

app = typer.Typer(help="Train the face attribute classifier used by `facegen directions fit`.", no_args_is_help=True)


def train(
    dataset: Path = typer.Argument(..., exists=True, help="A dataset from `facegen prepare --labels` (folder or zip)."),
    attrs: Optional[list] = typer.Option(None, "--attrs", parser=name_list, metavar="NAMES",
                                         help="Attributes to learn, e.g. Smiling,Male; default all."),
    size: int = typer.Option(64, "--size", help="Input side in pixels, 16 or more."),
    epochs: int = typer.Option(5, "--epochs", help="Passes over the data, 1-10000."),
    batch: int = typer.Option(64, "--batch", help="Images per step, 2 or more."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate (one-cycle schedule)."),
    holdout: float = typer.Option(0.1, "--holdout", help="Fraction of images kept out to measure accuracy, "
                                                         "0.01-0.9."),
    seed: int = typer.Option(0, "--seed"),
    balance: float = typer.Option(0.0, "--balance", help="For one numeric attribute (age): draw training faces "
                                  "with weight (faces in their tenth of its range)^-BALANCE, so rare values are not "
                                  "read as common ones; 0 draws all alike, 1 every tenth alike. 0-1."),
    out: Path = out_option(Path("classifier.safetensors"), "Classifier file to write.", kind="file"),
) -> None:
    """Train a small CNN on CPU; report held-out accuracy (binary) or mean error (numeric, e.g. age)."""
    from facegen_cli import api

    report = api.train_classifier(dataset, out, attrs or None, size=size, epochs=epochs, batch=batch, lr=lr,
                                  holdout=holdout, seed=seed, balance=balance,
                                  on_epoch=lambda e, loss: console.print(f"epoch {e}/{epochs}: loss {loss:.4f}"),
                                  on_note=lambda note: console.print(note, markup=False))
    console.print(json.dumps(report["holdout"]))
    emit(report["path"])

"""`facegen fid`: FID (and KID, precision and recall) between two image folders / zips / datasets / networks."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, device_option, emit, precision_option, progress
from facegen_cli.cli.options import psi_option, seed_list, typed


def fid(
    a: str = typer.Argument(..., help="Image folder, zip, prepared dataset, or a network (file or name)."),
    b: str = typer.Argument(..., help="The other side, any of the same kinds."),
    mode: str = typer.Option("clean", "--mode", help="clean, legacy_tensorflow or legacy_pytorch (as clean-fid)."),
    kid: bool = typer.Option(False, "--kid", help="Also compute KID from the same features."),
    pr: bool = typer.Option(False, "--pr", help="Also precision and recall (k-NN manifolds) from the same features; "
                                                "the real side is the image set facing a network, else B."),
    pr_k: Optional[int] = typer.Option(None, "--pr-k",
                                       help="Neighbours for precision and recall (default 3); implies --pr."),
    num: int = typer.Option(50_000, "--num", help="Images to draw from a network (random seeds), 2-1000000."),
    seeds: Optional[list] = typer.Option(None, "--seeds", "-s", parser=typed(seed_list, "--seeds"), metavar="SEEDS",
                                         help="Seeds for networks, like 0-49999; overrides --num."),
    psi: float = psi_option,
    batch: int = typer.Option(32, "--batch", help="Images per Inception (and generator) forward pass, "
                                                  "1 or more."),
    workers: int = typer.Option(2, "--workers", help="Processes decoding image files, 0 or more."),
    device: str = device_option,
    precision: str = precision_option,
    inception: Optional[Path] = typer.Option(None, "--inception", envvar="FACEGEN_INCEPTION", exists=True,
                                             dir_okay=False,
                                             help="Inception TorchScript file (inception-2015-12-05.pt)."),
    labels_from: Optional[Path] = typer.Option(None, "--labels-from", exists=True,
                                               help="A conditional network draws each image with the labels of one "
                                                    "of this data set's images (its training data)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write cached data-set features."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the bare number."),
) -> None:
    """Frechet Inception Distance between A and B; data-set features are cached for the next run."""
    from facegen_cli import api
    from facegen_cli.metrics.precision_recall import DEFAULT_K

    with progress() as bar:
        tasks: dict[str, int] = {}

        def track(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"fid {Path(name).name or name}", total=total)
            bar.update(tasks[name], completed=done)

        result = api.fid(a, b, mode=mode, kid=kid, pr_k=pr_k if pr_k is not None else DEFAULT_K if pr else None,
                         num=num, seeds=seeds, psi=psi, batch=batch, workers=workers, precision=precision,
                         inception=inception, labels_from=labels_from, use_cache=not no_cache, device=device,
                         on_progress=track)
    for name in result.cached:
        console.print(f"features of {name} read from the cache")
    if result.real is not None:
        console.print(f"precision and recall: {result.fake} against {result.real} as the real data")
    if as_json:
        emit(result.as_dict(), as_json=True)
    else:
        numbers = [f"{result.fid:.4f}"] + ([f"{result.kid:.6f}"] if result.kid is not None else [])
        numbers += [f"{result.precision:.4f}", f"{result.recall:.4f}"] if result.precision is not None else []
        emit("\t".join(numbers))

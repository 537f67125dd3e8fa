"""`facegen directions sefa|fit`: find latent directions for a network and store them with its id."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, device_option, emit, network_option, out_option, progress
from facegen_cli.cli.options import (layers_help, layers_option, name_list, network_argument, one_network, psi_option,
                                     seed_list, typed)

app = typer.Typer(help="Find latent directions (SeFa, or InterFaceGAN boundaries from a classifier) and report "
                       "how they entangle.",
                  no_args_is_help=True)
out_folder = out_option(None, "Output folder; default: the network's direction store, where "
                              "`edit --direction NAME` finds them.")


def sefa(
    network_arg: Optional[str] = network_argument,
    network: Optional[str] = network_option,
    k: int = typer.Option(10, "--top", "-k", help="How many directions to keep (at most the network's w_dim)."),
    layers: Optional[list] = layers_option(f"Factorise only these layers' modulations: {layers_help}."),
    device: str = device_option,
    out: Optional[Path] = out_folder,
) -> None:
    """Closed-form factorisation of the modulation weights: the top-k directions, no data needed."""
    from facegen_cli import api

    for written in api.sefa(one_network(network_arg, network), k=k, layers=layers, out=out, device=device):
        emit(written)


def fit(
    network_arg: Optional[str] = network_argument,
    attr: str = typer.Option(..., "--attr", help="The attribute to find, e.g. Smiling (as the classifier names it)."),
    classifier: Path = typer.Option(Path("classifier.safetensors"), "--classifier", "-c", exists=True,
                                    dir_okay=False, help="From `facegen classifier train`."),
    samples: int = typer.Option(2000, "--samples", help="Faces to sample and label, at most 1000000 (the fit "
                                                             "needs 10 each side at --ratio)."),
    ratio: float = typer.Option(0.25, "--ratio", help="Fit on this fraction of highest and of lowest scored faces."),
    seed_start: int = typer.Option(0, "--seed-start", help="First seed of the samples."),
    psi: float = psi_option,
    network: Optional[str] = network_option,
    device: str = device_option,
    out: Optional[Path] = out_folder,
) -> None:
    """InterFaceGAN: label sampled faces with the classifier, fit a linear boundary in W, save its normal."""
    from facegen_cli import api

    with progress() as bar:
        task = bar.add_task(f"label {attr}", total=samples)
        fitted = api.fit_direction(attr, classifier, one_network(network_arg, network), samples=samples, ratio=ratio,
                                   seed_start=seed_start, psi=psi, out=out, device=device,
                                   on_progress=lambda done, total: bar.update(task, completed=done))
    console.print(f"{attr}: held-out accuracy of the boundary {fitted.accuracy:.1%}")
    for written in fitted.paths:
        emit(written)


def report(
    network_arg: Optional[str] = network_argument,
    network: Optional[str] = network_option,
    seeds: list = typer.Option("0-15", "--seeds", parser=typed(seed_list, "--seeds"), metavar="SEEDS",
                               help="The faces each direction moves, e.g. 0-15."),
    step: float = typer.Option(2.0, "--step", help="How far each face moves either way along a direction."),
    psi: float = psi_option,
    conditional: Optional[list] = typer.Option(None, "--conditional", parser=name_list, metavar="NAMES",
                                               help="Report each direction with these directions projected out, "
                                                    "as edit --conditional moves (e.g. Male,Smiling,Yaw)."),
    as_json: bool = typer.Option(False, "--json", help="Print the matrix as one JSON object instead of a table."),
    device: str = device_option,
    out: Path = out_option(Path("out/directions-report.png"), "The heatmap PNG.", kind="file"),
) -> None:
    """The entanglement matrix: how one unit along each direction moves every estimator (age, pose,
    attributes, identity), as a table (or JSON) and a heatmap."""
    from facegen_cli import api

    with progress("dir") as bar:
        task = bar.add_task("read directions", total=None)
        result = api.directions_report(out, one_network(network_arg, network), seeds, step, psi, device,
                                       on_progress=lambda done, total: bar.update(task, completed=done),
                                       conditional=conditional or ())
    if as_json:
        emit(result, as_json=True)
        return
    width = max(len(d) for d in result["directions"])
    emit(" " * width + "".join(f"{e[:10]:>11}" for e in result["estimators"]))
    for name, row in zip(result["directions"], result["matrix"]):
        emit(f"{name:<{width}}" + "".join(f"{v:>11.3g}" if v is not None else f"{'-':>11}" for v in row))
    console.print("per unit of W: " + ", ".join(f"{e} in {u}" for e, u in result["units"].items()
                                                if u != "probability") + ", the rest in probability")
    emit(result["heatmap"])

"""`facegen edit`: move a latent along a direction, or set controls to values (`--set Age=60`)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from facegen_cli.cli.common import emit, out_option, progress
from facegen_cli.cli.options import (layers_help, layers_option, name_list, names_as_typed, read_sources, sampling,
                                     save_latents_option, span_option, typed)
from facegen_cli.specs import parse_attrs

if TYPE_CHECKING:
    from facegen_cli.sampler import SampleOptions


def _targets(values: Optional[list[dict[str, float]]]) -> Optional[dict[str, float]]:
    """The --set values (each Name=value, or several comma-separated) as one dict; a control set twice is refused."""
    from facegen_cli.errors import BadInput

    if not values:
        return None
    wanted: dict[str, float] = {}
    for value in values:
        for name, number in value.items():
            if name.lower() in {w.lower() for w in wanted}:
                raise BadInput(f"--set {name} is given twice")
            wanted[name] = number
    return wanted


@sampling
def edit(
    latent: str = typer.Argument(..., help="A W+ .npy file or seed:N."),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="A direction name (from `facegen "
                                                                            "directions`) or a .npy file."),
    targets: Optional[list[dict]] = typer.Option(None, "--set", parser=typed(lambda text: parse_attrs(text, "targets"),
                                                                             "--set"),
                                                 metavar="CONTROL=VALUE",
                                                 help="Set a control to a value, read on the image: Age=60 (years), "
                                                      "Yaw=-20, Pitch=10 (degrees), Smiling=0.9 (probability); "
                                                      "repeatable."),
    keep: Optional[list] = typer.Option(None, "--keep", parser=names_as_typed, metavar="NAMES",
                                        help="With --set: attributes to hold, e.g. Male,Black_Hair (their directions "
                                             "projected out of the step), or identity (as --keep-identity)."),
    as_json: bool = typer.Option(False, "--json", help="With --set: print requested and achieved values, kept "
                                                       "values and the identity distance as JSON; with "
                                                       "--keep-identity: the strengths, the held probability's "
                                                       "change and the identity distances of the kept and the "
                                                       "plain edit."),
    keep_identity: bool = typer.Option(False, "--keep-identity",
                                       help="With --direction and --strength: correct the edit in the model's "
                                            "principal latent span so the face stays the same person (its inner "
                                            "face held, the direction's classifier change kept); about 8 s a face "
                                            "on a CPU. With --set: pull the face's dlib descriptor back towards "
                                            "the source's along the identity span, targets and kept readings "
                                            "held; a few seconds more."),
    strength: Optional[float] = typer.Option(None, "--strength", help="How far to move (one image)."),
    span: Optional[tuple] = span_option(),
    steps: int = typer.Option(7, "--steps", help="Images in a --range strip, 2-1000."),
    layers: Optional[list] = layers_option(f"Only these W+ layers: {layers_help}."),
    conditional: Optional[list] = typer.Option(None, "--conditional", parser=name_list, metavar="NAMES",
                                               help="Directions to keep fixed, e.g. Male (projected out of the "
                                                    "edit)."),
    save_latents: bool = save_latents_option,
    options: SampleOptions = None,
    out: Path = out_option(Path("out/edit"), "Output folder."),
    network: Optional[str] = None,
    device: str = "auto",
) -> None:
    """Change one attribute of a face by moving its latent along a direction, or set controls to values."""
    from facegen_cli import api
    from facegen_cli.errors import BadInput

    wanted = _targets(targets)
    if wanted is not None:
        if direction is not None or strength is not None or span is not None or conditional or layers:
            raise BadInput("--set moves along the fitted controls; it takes no --direction, --strength, --range, "
                           "--layers or --conditional")
    elif direction is None:
        raise BadInput("give --direction NAME (with --strength or --range) or --set CONTROL=VALUE")
    elif keep:
        raise BadInput("--keep goes with --set")
    elif keep_identity and (strength is None or span is not None or layers or conditional):
        raise BadInput("--keep-identity makes one image: give --strength, and no --range, --layers or --conditional")
    elif as_json and not keep_identity:
        raise BadInput("--json goes with --set or --keep-identity")
    specs = read_sources([latent])
    if len(specs) != 1:
        raise BadInput(f"edit takes one latent; {latent!r} names {len(specs)}")
    if keep_identity and wanted is None:
        with progress("step") as bar:
            task = bar.add_task("keep identity", total=None)
            paths, summary = api.kept_edit(specs[0], direction, out, strength, network, options,
                                           save_latents=save_latents, device=device,
                                           on_progress=lambda i, total: bar.update(task, completed=i, total=total))
        for path in paths:
            emit({"path": str(path), **(summary if path.suffix == ".png" else {})} if as_json else path, as_json)
        return
    if wanted is None:
        for path in api.edit(specs[0], direction, out, network, options, strength=strength, span=span, steps=steps,
                             layers=layers, conditional=conditional, save_latents=save_latents, device=device):
            emit(path)
        return
    paths, result = api.set_controls(specs[0], wanted, out, network, options,
                                     keep=[*(keep or ()), *(["identity"] if keep_identity else [])],
                                     save_latents=save_latents, device=device)
    for path in paths:
        emit({"path": str(path), **(result.summary() if path.suffix == ".png" else {})} if as_json else path, as_json)

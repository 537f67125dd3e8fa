"""`facegen edit`: move a latent along a direction, or set controls to values (`--set Age=60`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import (device_option, emit, network_option, noise_mode_option, out_option,
                                    precision_option)
from facegen_cli.cli.options import (attr_option, label_option, layer_indices, layers_help, make_sampler,
                                     psi_option, read_sources, save_latents_option)


def _check_range(value: Optional[str]) -> Optional[str]:
    """--range is checked while parsing, before the network loads."""
    from facegen_cli.specs import parse_span

    if value is not None:
        parse_span(value, "--range")  # raised while parsing, outside the command: named as the user wrote it
    return value


def _parse_targets(values: Optional[list[str]]) -> Optional[dict[str, float]]:
    """Each --set Name=value (or several, comma-separated) as one dict; a control set twice is refused."""
    from facegen_cli.errors import BadInput
    from facegen_cli.specs import parse_attrs

    if not values:
        return None
    wanted: dict[str, float] = {}
    for value in values:
        for name, number in parse_attrs(value, "targets").items():
            if name.lower() in {w.lower() for w in wanted}:
                raise BadInput(f"--set {name} is given twice")
            wanted[name] = number
    return wanted


def edit(
    latent: str = typer.Argument(..., help="A W+ .npy file or seed:N."),
    direction: Optional[str] = typer.Option(None, "--direction", "-d", help="A direction name (from `facegen "
                                                                            "directions`) or a .npy file."),
    targets: Optional[list[str]] = typer.Option(None, "--set", help="Set a control to a value, read on the image: "
                                                                    "Age=60 (years), Yaw=-20, Pitch=10 (degrees), "
                                                                    "Smiling=0.9 (probability); repeatable."),
    keep: Optional[str] = typer.Option(None, "--keep", help="With --set: attributes to hold, e.g. Male,Eyeglasses "
                                                            "(their directions projected out of the step)."),
    as_json: bool = typer.Option(False, "--json", help="With --set: print requested and achieved values, kept "
                                                       "values and the identity distance as JSON."),
    strength: Optional[float] = typer.Option(None, "--strength", help="How far to move (one image)."),
    span: Optional[str] = typer.Option(None, "--range", callback=_check_range, help="LOW:HIGH for a strip, e.g. -3:3."),
    steps: int = typer.Option(7, "--steps", min=2, max=1000, help="Images in a --range strip."),
    layers: Optional[str] = typer.Option(None, "--layers", help=f"Only these W+ layers: {layers_help}."),
    conditional: Optional[str] = typer.Option(None, "--conditional", help="Directions to keep fixed, e.g. Male "
                                                                          "(projected out of the edit)."),
    save_latents: bool = save_latents_option,
    network: Optional[str] = network_option,
    psi: float = psi_option,
    noise_mode: str = noise_mode_option,
    label: Optional[str] = label_option,
    attr: Optional[str] = attr_option,
    device: str = device_option,
    precision: str = precision_option,
    out: Path = out_option(Path("out/edit"), "Output folder."),
) -> None:
    """Change one attribute of a face by moving its latent along a direction, or set controls to values."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.errors import BadInput
    from facegen_cli.latent.directions import run_edit
    from facegen_cli.networks import load_network
    from facegen_cli.sampler import require_wplus
    from facegen_cli.specs import parse_span

    wanted = _parse_targets(targets)
    if wanted is not None:
        if direction is not None or strength is not None or span is not None or conditional or layers:
            raise BadInput("--set moves along the fitted controls; it takes no --direction, --strength, --range, "
                           "--layers or --conditional")
    elif direction is None:
        raise BadInput("give --direction NAME (with --strength or --range) or --set CONTROL=VALUE")
    elif keep or as_json:
        raise BadInput("--keep and --json go with --set")
    elif (strength is None) == (span is None):
        raise BadInput("give either --strength S or --range LOW:HIGH")
    net = load_network(network, resolve_device(device))
    require_wplus(net, "edit")
    sampler = make_sampler(net, psi, noise_mode, label, attr, precision=precision)
    specs = read_sources([latent])
    if len(specs) != 1:
        raise BadInput(f"edit takes one latent; {latent!r} names {len(specs)}")
    if wanted is not None:
        from facegen_cli.controls.steer import run_controls

        kept = [k.strip() for k in keep.split(",") if k.strip()] if keep else []
        paths, result = run_controls(sampler, specs[0], wanted, out, keep=kept, save_latents=save_latents)
        for path in paths:
            emit({"path": str(path), **(result.summary() if path.suffix == ".png" else {})} if as_json else path,
                 as_json)
        return
    others = [c.strip() for c in conditional.split(",") if c.strip()] if conditional else None
    for path in run_edit(sampler, specs[0], direction, out, strength=strength,
                         span=parse_span(span) if span is not None else None, steps=steps,
                         layers=layer_indices(net.G_ema, layers), conditional=others, save_latents=save_latents):
        emit(path)

"""Options shared by the commands that run a network, declared once with their help text, and the one
place their text is turned into a `Sampler`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from facegen_cli.cli.common import read_stdin
from facegen_cli.errors import BadInput
from facegen_cli.specs import (parse_attr_default, parse_attrs, parse_label, parse_layers, parse_sources,
                               parse_translate)

if TYPE_CHECKING:
    import torch

    from facegen_cli.checkpoint import Network
    from facegen_cli.sampler import Sampler

psi_option = typer.Option(1.0, "--psi", help="Truncation psi in [-2, 2] for seeds: 1 = none (as published FIDs "
                                             "use), 0.5-0.7 = cleaner faces.")
cutoff_option = typer.Option(None, "--cutoff", min=0, help="Truncate only the first N layers of W+.")
label_option = typer.Option(None, "--label", help="Class index or comma-separated label vector (conditional "
                                                  "networks).")
attr_option = typer.Option(None, "--attr", help="Attributes like Male=1,Smiling=1 (conditional networks).")
attr_default_option = typer.Option(None, "--attr-default", help="Attributes --attr leaves unnamed: mean (data "
                                                                "frequency) or N.")
batch_option = typer.Option(8, "--batch", min=1, help="Images per forward pass.")
save_latents_option = typer.Option(False, "--save-latents", help="Also write each image's latent as .npy beside it "
                                                                 "(W+; z on the classic families).")
translate_option = typer.Option(None, "--translate", help="X,Y: shift a StyleGAN3 image by fractions of its size.")
rotate_option = typer.Option(None, "--rotate", help="Turn a StyleGAN3 image by DEG degrees.")
layers_help = "coarse, middle, fine or ranges like 0-3,8-"
network_argument = typer.Argument(None, metavar="NETWORK", help="The network (same as --network); default: the "
                                                                  "shipped model.")


def one_network(positional: Optional[str], option: Optional[str]) -> Optional[str]:
    """The network a command names as its argument or with --network (the same one, if both)."""
    if positional is not None and option is not None and positional != option:
        raise BadInput(f"two networks given: {positional} and --network {option}")
    return positional if positional is not None else option


def make_sampler(net: Network, psi: float = 1.0, noise_mode: str = "const", label: Optional[str] = None,
                 attr: Optional[str] = None, attr_default: Optional[str] = None, precision: str = "fp32",
                 batch: int = 8, cutoff: Optional[int] = None, translate: Optional[str] = None,
                 rotate: Optional[float] = None) -> Sampler:
    """The Sampler for a network and the run options as typed on the command line."""
    from facegen_cli.sampler import Sampler, conditioning

    c = conditioning(net, parse_label(label) if label is not None else None,
                     parse_attrs(attr) if attr is not None else None,
                     parse_attr_default(attr_default) if attr_default is not None else None)
    return Sampler(net, psi=psi, cutoff=cutoff, noise_mode=noise_mode, label=c, precision=precision, batch=batch,
                   translate=parse_translate(translate) if translate is not None else None, rotate=rotate)


def read_sources(specs: list[str]) -> list:
    """Latent sources from the command line: `seed:N`/`seed:A-B` and files, `-` read from stdin."""
    tokens: list[str] = []
    for spec in specs:
        if spec == "-":
            read = read_stdin("latent").split()
            if not read:
                raise BadInput("'-': stdin holds no latents (seed:N or .npy paths)")
            tokens += read
        else:
            tokens.append(spec)
    return parse_sources(tokens)


def layer_indices(G: torch.nn.Module, spec: Optional[str], name: str = "layers") -> Optional[list[int]]:
    """W+ indices of G for a `--layers` text, or None when it is not given."""
    from facegen_cli.latent.layers import resolve_layers

    return None if spec is None else resolve_layers(G, parse_layers(spec, name))

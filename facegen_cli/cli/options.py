"""Options shared by the commands that run a network, declared once with their help text and parsed into
typed values while the command line is read; `sampling` gives a command the whole drawing block at once."""
from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer

from facegen_cli.cli.common import DEVICE_HELP, PRECISION_HELP, network_option, read_stdin, read_stdin_tokens
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.specs import (parse_attr_default, parse_attrs, parse_label, parse_layers, parse_numbers,
                               parse_seeds, parse_sources, parse_span, parse_translate)

T = TypeVar("T")


def typed(parse: Callable[[str], T], flag: str) -> Callable[[str], T]:
    """A Typer parser: the text parsed by `parse`, a BadParameter shown with `flag` (it is raised while the
    command line is read, before the command names its options)."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except BadParameter as error:
            raise BadInput(error.naming(flag)) from None

    return convert


def names_as_typed(spec: str) -> list[str]:
    """A comma-separated list of names, blanks kept for the engine to refuse."""
    return [name.strip() for name in spec.split(",")]


def name_list(spec: str) -> list[str]:
    """A comma-separated list of names, blanks dropped."""
    return [name for name in names_as_typed(spec) if name]


def seed_list(spec: str) -> list[int]:
    """A seed list as typed, `-` read from stdin."""
    return parse_seeds(read_stdin_tokens() if spec == "-" else spec)


psi_option = typer.Option(1.0, "--psi", help="Truncation psi in [-2, 2] for seeds: 1 = none (as published FIDs "
                                             "use), 0.5-0.7 = cleaner faces.")
layers_help = "coarse, middle, fine or ranges like 0-3,8-"
save_latents_option = typer.Option(False, "--save-latents", help="Also write each image's latent as .npy beside it "
                                                                 "(W+; z on the classic families).")
network_argument = typer.Argument(None, metavar="NETWORK", help="The network (same as --network); default: the "
                                                                  "shipped model.")


def layers_option(help: str) -> Any:
    """`--layers`, parsed into groups and index ranges (resolved against the network by the engine)."""
    return typer.Option(None, "--layers", parser=typed(parse_layers, "--layers"), metavar="LAYERS", help=help)


def span_option() -> Any:
    return typer.Option(None, "--range", parser=typed(parse_span, "--range"), metavar="LOW:HIGH",
                        help="LOW:HIGH for a strip, e.g. -3:3.")


def weights_option() -> Any:
    return typer.Option(None, "--weights", parser=typed(lambda text: parse_numbers(text, "weights"), "--weights"),
                        metavar="W,W,...", help="Weights for --average, e.g. 0.3,0.7.")


# The drawing block: name -> (type, option). `sampling` adds it to a command, which receives it as `options`.
SAMPLING: dict[str, tuple[Any, Any]] = {
    "network": (Optional[str], network_option),
    "device": (str, typer.Option("auto", "--device", help=DEVICE_HELP)),
    "psi": (float, psi_option),
    "cutoff": (Optional[int], typer.Option(None, "--cutoff", help="Truncate only the first N layers of W+ (0 to the "
                                                                  "network's count).")),
    "noise_mode": (str, typer.Option("const", "--noise-mode", help="const, random or none.")),
    "label": (Optional[list], typer.Option(None, "--label", parser=typed(parse_label, "--label"), metavar="LABEL",
                                           help="Class index or comma-separated label vector (conditional "
                                                "networks).")),
    "attr": (Optional[dict], typer.Option(None, "--attr", parser=typed(parse_attrs, "--attr"), metavar="NAME=V,...",
                                          help="Attributes like Male=1,Smiling=1 (conditional networks).")),
    "attr_default": (Optional[Any], typer.Option(None, "--attr-default",
                                                 parser=typed(parse_attr_default, "--attr-default"),
                                                 metavar="mean|N", help="Attributes --attr leaves unnamed: mean "
                                                                        "(data frequency) or N.")),
    "batch": (int, typer.Option(8, "--batch", help="Images per forward pass, 1 or more.")),
    "precision": (str, typer.Option("fp32", "--precision", help=PRECISION_HELP)),
    "translate": (Optional[tuple], typer.Option(None, "--translate", parser=typed(parse_translate, "--translate"),
                                                metavar="X,Y", help="Shift a StyleGAN3 image by fractions of its "
                                                                    "size.")),
    "rotate": (Optional[float], typer.Option(None, "--rotate", help="Turn a StyleGAN3 image by DEG degrees.")),
}


def sampling(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with the drawing block declared in SAMPLING in place of its `options` parameter: it receives
    `network`, `device` and `options`, a SampleOptions checked before any network loads."""
    signature = inspect.signature(command)
    block = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
             for name, (kind, option) in SAMPLING.items()]
    params = []
    for param in signature.parameters.values():
        if param.name == "options":
            params += block
        elif param.name not in SAMPLING:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def run(**kwargs: Any) -> None:
        from facegen_cli.sampler import SampleOptions

        block_values = {name: kwargs.pop(name) for name in SAMPLING}
        network, device = block_values.pop("network"), block_values.pop("device")
        block_values["attrs"] = block_values.pop("attr")
        return command(network=network, device=device, options=SampleOptions(**block_values), **kwargs)

    run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run


def one_network(positional: Optional[str], option: Optional[str]) -> Optional[str]:
    """The network a command names as its argument or with --network (the same one, if both)."""
    if positional is not None and option is not None and positional != option:
        raise BadInput(f"two networks given: {positional} and --network {option}")
    return positional if positional is not None else option


def read_sources(specs: list[str]) -> list[int | Path]:
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


"""The `facegen` command: a Typer app whose commands live one per module in this package."""
from __future__ import annotations

import functools
from typing import Callable

import typer

from facegen_cli import __version__
from facegen_cli.errors import FacegenError

app = typer.Typer(
    name="facegen",
    help="Generate human faces with GANs: prepare data, train, generate, edit, measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def command(name: str, fn: Callable) -> None:
    """Register `fn` as a subcommand whose FacegenErrors become one stderr line and an exit code."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacegenError as error:
            typer.echo(f"facegen: error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None

    app.command(name)(run)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"facegen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Generate human faces with GANs: prepare data, train, generate, edit, measure."""


def _register() -> None:
    from facegen_cli.cli import convert, generate, info, prepare, train

    command("generate", generate.generate)
    command("convert", convert.convert)
    command("info", info.info)
    command("prepare", prepare.prepare)
    command("train", train.train)


_register()


def main() -> None:
    """Console-script entry point."""
    app()

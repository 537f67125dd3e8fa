"""The `facegen` command: a Typer app whose commands live one per module in this package."""
from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from facegen_cli import __version__
from facegen_cli.errors import FacegenError


class CommandFailed(click.ClickException):
    """Carries a FacegenError out of a command as one stderr line and its exit code."""

    def __init__(self, error: FacegenError):
        super().__init__(str(error))
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:  # noqa: D102 - click's signature
        click.echo(f"facegen: error: {self.message}", err=True)


class FacegenGroup(TyperGroup):
    """Turns engine errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FacegenError as error:
            raise CommandFailed(error) from error


app = typer.Typer(
    cls=FacegenGroup,
    name="facegen",
    help="Generate human faces with GANs: prepare data, train, generate, edit, measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


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
    from facegen_cli.cli import convert, generate, info

    app.command("generate")(generate.generate)
    app.command("convert")(convert.convert)
    app.command("info")(info.info)


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())

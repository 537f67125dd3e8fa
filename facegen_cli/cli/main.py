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


def command(name: str, fn: Callable, group: typer.Typer | None = None) -> None:
    """Register `fn` as a subcommand (of `group`, default the root) whose FacegenErrors become one stderr line
    and an exit code."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacegenError as error:
            typer.echo(f"facegen: error: {error}", err=True)
            raise typer.Exit(error.exit_code) from None

    (group or app).command(name)(run)


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
    from facegen_cli.cli import (classifier, convert, directions, edit, generate, info, interpolate, mix, prepare,
                                 project, train)
    from facegen_cli.cli import fid, studio

    command("generate", generate.generate)
    command("convert", convert.convert)
    command("info", info.info)
    command("prepare", prepare.prepare)
    command("train", train.train)
    command("mix", mix.mix)
    command("interpolate", interpolate.interpolate)
    command("edit", edit.edit)
    command("project", project.project)
    command("fid", fid.fid)
    command("studio", studio.studio)
    command("sefa", directions.sefa, directions.app)
    command("fit", directions.fit, directions.app)
    app.add_typer(directions.app, name="directions")
    command("train", classifier.train, classifier.app)
    app.add_typer(classifier.app, name="classifier")


_register()


def main() -> None:
    """Console-script entry point."""
    app()

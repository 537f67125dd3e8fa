"""The `facegen` command: a Typer app whose commands live one per module in this package.

Every way a command can fail ends in one `facegen: error: ...` line on stderr and an exit code
(2 bad usage, 1 failure): Typer's own usage errors, FacegenErrors, and as a last resort any
other exception (its traceback only with FACEGEN_DEBUG=1).
"""
from __future__ import annotations

import functools
import inspect
import math
import os
import sys
import warnings
from typing import Any, Callable, NoReturn

import typer
from typer.core import TyperGroup

from facegen_cli import __version__
from facegen_cli.errors import BadInput, BadParameter, FacegenError, ParameterWarning

DEBUG_ENV = "FACEGEN_DEBUG"


def fail(message: str, code: int) -> NoReturn:
    """Print one error line (whatever `message` holds) and exit with `code`."""
    line = " ".join(str(message).split()) or "failed"
    typer.echo(f"facegen: error: {line}", err=True)
    raise SystemExit(code)


def report(error: BaseException) -> NoReturn:
    """Turn any exception that escaped a command into one line and an exit code."""
    if isinstance(error, FacegenError):
        fail(str(error), error.exit_code)
    if os.environ.get(DEBUG_ENV):
        raise error
    torch = sys.modules.get("torch")  # not imported here: `facegen --help` stays quick
    if isinstance(error, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        fail(f"out of memory ({type(error).__name__}); ask for fewer or smaller images", 1)
    if isinstance(error, OSError) and error.filename is not None:
        fail(f"{error.filename}: {error.strerror or error}", 1)
    fail(f"internal error {type(error).__name__}: {error} (set {DEBUG_ENV}=1 for the traceback)", 1)


def refuse_empty_words(argv: list[str] | None) -> None:
    """Refuse an empty word on the command line (`--grid ''`, `--seeds=`, `prepare '' OUT`): it would silently
    mean 'none' or, for a path, the current folder. Named by its option, or by the word before it."""
    words = list(sys.argv[1:] if argv is None else argv)
    for i, word in enumerate(words):
        option = word[:-1] if word.startswith("--") and word.endswith("=") else None
        if option or not word.strip():
            before, shown = (option, "") if option else (words[i - 1] if i else "facegen", word)
            if before.startswith("-"):
                raise BadInput(f"{before} {shown!r} is empty; give a value")
            raise BadInput(f"an empty argument {word!r} after {before!r}; give a value")


class OneLineErrors(TyperGroup):
    """The root group: Typer's usage errors (bad option values, missing arguments) as one line."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            refuse_empty_words(kwargs.get("args", args[0] if args else None))
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as error:  # click's UsageError and friends
            if type(error).__name__ == "NoArgsIsHelpError":
                typer.echo(error.format_message(), err=True)
                raise SystemExit(getattr(error, "exit_code", 2)) from None
            fail(error.format_message(), getattr(error, "exit_code", 2))
        except typer.Abort:
            fail("aborted", 1)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:  # noqa: BLE001 - option callbacks raise outside the command wrapper
            report(error)
        raise SystemExit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="facegen",
    help="Generate human faces with GANs: prepare data, train, generate, edit, measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineErrors,
)


def option_name(param: inspect.Parameter) -> str:
    """How the user wrote a parameter: its first declared flag, else --name-with-dashes."""
    decls = [d for d in getattr(param.default, "param_decls", None) or () if d.startswith("--")]
    return decls[0] if decls else "--" + param.name.replace("_", "-")


def flag_of(fn: Callable, param: str) -> str:
    """The option of command `fn` that sets the engine parameter `param` (same name), else --param-name."""
    found = inspect.signature(fn).parameters.get(param)
    return option_name(found) if found is not None else "--" + param.replace("_", "-")


def check_finite(fn: Callable, values: dict) -> None:
    """Refuse NaN and infinite values of any number option of `fn`."""
    for name, param in inspect.signature(fn).parameters.items():
        value = values.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{option_name(param)} {value}: give a finite number")


def show_warning(fn: Callable, shown: Callable, message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """`warnings.showwarning` while command `fn` runs: a ParameterWarning as one `facegen: warning: ...` line
    naming `fn`'s option; any other warning as `shown` shows it."""
    if isinstance(message, ParameterWarning):
        line = " ".join(message.naming(flag_of(fn, message.param)).split())
        typer.echo(f"facegen: warning: {line}", err=True)
    else:
        shown(message, *args, **kwargs)


def command(name: str, fn: Callable, group: typer.Typer | None = None) -> None:
    """Register `fn` as a subcommand (of `group`, default the root) whose errors become one stderr line
    and an exit code."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            check_finite(fn, kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("always", ParameterWarning)
                warnings.showwarning = functools.partial(show_warning, fn, warnings.showwarning)
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, KeyboardInterrupt, BrokenPipeError):
            raise  # Typer's own handling (a closed pipe ends quietly, as `| head` expects)
        except BadParameter as error:  # the engine names its parameter; the user knows the option
            fail(error.naming(flag_of(fn, error.param)), error.exit_code)
        except BaseException as error:  # noqa: BLE001 - every failure ends in one line
            report(error)

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
    from facegen_cli.cli import (classifier, convert, directions, edit, encoder, eqt, generate, identity, info,
                                 interpolate, mix, prepare, project, train)
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
    command("eqt", eqt.eqt)
    command("identity", identity.identity)
    command("studio", studio.studio)
    command("sefa", directions.sefa, directions.app)
    command("fit", directions.fit, directions.app)
    command("report", directions.report, directions.app)
    app.add_typer(directions.app, name="directions")
    command("train", classifier.train, classifier.app)
    app.add_typer(classifier.app, name="classifier")
    command("train", encoder.train, encoder.app)
    app.add_typer(encoder.app, name="encoder")


_register()


def main() -> None:
    """Console-script entry point."""
    app()

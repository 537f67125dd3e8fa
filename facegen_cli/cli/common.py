"""Pieces every command shares: the stderr console, progress bars, reading `-` from stdin, and typed
options checked while the command line is parsed (output paths)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from facegen_cli.errors import BadInput
from facegen_cli.fileio import check_writable, special_kind

console = Console(stderr=True, soft_wrap=True)  # log lines stay whole in files and pipes

NETWORK_HELP = "Network file (facegen .safetensors, NVIDIA .pkl, rosinality .pt) or name; default: the shipped model."
DEVICE_HELP = "auto, cpu or cuda[:N]."

network_option = typer.Option(None, "--network", "-n", help=NETWORK_HELP)
device_option = typer.Option("auto", "--device", help=DEVICE_HELP)


PRECISION_HELP = ("fp32 (the reference: NVIDIA's pixels), bf16 (faster on CPUs with native bf16; images within a "
                  "few 1/255 of fp32) or auto (bf16 where the CPU has it, else fp32).")
precision_option = typer.Option("fp32", "--precision", help=PRECISION_HELP)  # checked by the engine
train_precision_option = typer.Option(None, "--precision",  # checked by the engine
                                      help=PRECISION_HELP + " Default fp32; with --resume, the run's own.")


def _writable_folder(value: Optional[Path]) -> Optional[Path]:
    return None if value is None else check_writable(value, folder=True, what="--out")


def _writable_file(value: Optional[Path]) -> Optional[Path]:
    return None if value is None else check_writable(value, folder=False, what="--out")


def _writable_file_or_folder(value: Optional[Path]) -> Optional[Path]:
    return None if value is None else check_writable(value, folder=not value.suffix, what="--out")


def _nonempty_path(value: str | Path) -> Path:
    """--out as typed: an empty text would become Path('.'), the current folder, so it is refused."""
    if not str(value).strip():
        raise BadInput(f"--out {str(value)!r} is empty; name a file or folder ('.' for the current folder)")
    return Path(value)


def out_option(default: Optional[Path], help: str, kind: str = "folder") -> Any:
    """`--out/-o`, checked before any work: not empty, and a folder, a file, or `either` (a folder when it has no
    suffix) that can be written."""
    check = {"folder": _writable_folder, "file": _writable_file, "either": _writable_file_or_folder}[kind]
    return typer.Option(default, "--out", "-o", parser=_nonempty_path, callback=check, help=help)


def writable_argument(name: str, folder: Callable[[Path], bool]) -> Callable[[Path], Path]:
    """A callback for an output path given as the argument `name` (DEST, OUT), checked as --out is, before any
    work: a folder where `folder(path)` says so, else a file."""
    return lambda value: check_writable(value, folder=folder(value), what=name)


class RateColumn(ProgressColumn):
    """Items per second, e.g. '3.2 img/s'."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} {self.unit}/s" if task.speed else f"- {self.unit}/s")


class LazyProgress(Progress):
    """A progress bar that appears at its first update, so an error found before any work prints alone."""

    def __enter__(self) -> "LazyProgress":
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        if not self.live.is_started:
            self.start()
        super().update(*args, **kwargs)

    def advance(self, *args: Any, **kwargs: Any) -> None:
        if not self.live.is_started:
            self.start()
        super().advance(*args, **kwargs)

    def stop(self) -> None:
        if self.live.is_started:  # Rich ends even a bar never shown with a blank line
            super().stop()


def progress(unit: str = "img") -> Progress:
    """A Rich progress bar on stderr showing count, rate and elapsed time, from its first update on."""
    return LazyProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
                        TimeElapsedColumn(), console=console)


def emit(value: Any, as_json: bool = False) -> None:
    """One result on stdout: a path per line, or one JSON object per line (a file name that is not valid
    UTF-8 goes out as its own bytes)."""
    line = json.dumps(value) if as_json else str(value)
    try:
        print(line, flush=True)
    except UnicodeEncodeError:
        sys.stdout.buffer.write(line.encode("utf-8", "surrogateescape") + b"\n")
        sys.stdout.buffer.flush()


def read_stdin(what: str) -> str:
    """All of stdin for a `-` argument; refused when stdin is a terminal, where reading would wait forever."""
    if sys.stdin is None or sys.stdin.isatty():
        raise BadInput(f"{what} '-' reads stdin, which is a terminal here; pipe the values in")
    try:
        kind = special_kind(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # a replaced stdin (tests) has no descriptor
        kind = None
    if kind in ("character device", "block device"):  # /dev/zero or a disk would be read forever
        raise BadInput(f"{what} '-' reads stdin, which is a {kind} here; pipe the values in")
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise BadInput(f"{what} '-': stdin is not text") from None


def read_stdin_tokens() -> str:
    """Whitespace/comma separated tokens from stdin joined by commas (for `--seeds -`)."""
    return ",".join(tok for tok in read_stdin("--seeds").replace(",", " ").split())

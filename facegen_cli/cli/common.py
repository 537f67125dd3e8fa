"""Pieces every command shares: the stderr console, progress bars, reading `-` from stdin."""
from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

console = Console(stderr=True, soft_wrap=True)  # log lines stay whole in files and pipes

NETWORK_HELP = "Network file (facegen .safetensors, NVIDIA .pkl, rosinality .pt) or name; default: the shipped model."
DEVICE_HELP = "auto, cpu or cuda[:N]."

network_option = typer.Option(None, "--network", "-n", help=NETWORK_HELP)
device_option = typer.Option("auto", "--device", help=DEVICE_HELP)


class RateColumn(ProgressColumn):
    """Items per second, e.g. '3.2 img/s'."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} {self.unit}/s" if task.speed else f"- {self.unit}/s")


def progress(unit: str = "img") -> Progress:
    """A Rich progress bar on stderr showing count, rate and elapsed time."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
                    TimeElapsedColumn(), console=console)


def emit(value: Any, as_json: bool = False) -> None:
    """One result on stdout: a path per line, or one JSON object per line."""
    print(json.dumps(value) if as_json else value, flush=True)


def read_stdin_tokens() -> str:
    """Whitespace/comma separated tokens from stdin joined by commas (for `--seeds -`)."""
    return ",".join(tok for tok in sys.stdin.read().replace(",", " ").split())

"""`facegen prepare`: from a folder of photos to an aligned, labelled training set."""
from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from facegen_cli.cli.common import LazyProgress, console, emit, writable_argument
from facegen_cli.cli.options import name_list
from facegen_cli.errors import BadInput, FacegenError


def prepare(
    raw: Path = typer.Argument(..., help="Folder of photos, searched recursively (JPEG, PNG, WebP, BMP)."),
    out: Path = typer.Argument(..., callback=writable_argument("OUT", lambda path: path.suffix.lower() != ".zip"),
                               help="Output dataset: a folder, or a file ending in .zip."),
    detector: str = typer.Option("dlib", "--detector", help="haar (OpenCV), dlib (HOG) or dlib-cnn (mmod)."),
    upsample: Optional[Any] = typer.Option("auto", "--upsample", parser=lambda text: _upsample(text), metavar="auto|N",
                                 help="Upsample the detection copy N times (0-3) to find small faces; auto: once for "
                                      "dlib when the copy is at most 1024 px (dlib-cnn 512 px, haar never)."),
    min_face: int = typer.Option(0, "--min-face", min=0, help="Skip faces smaller than PX pixels."),
    max_faces: int = typer.Option(0, "--max-faces", min=0, help="Keep the N largest faces per photo; 0 = all."),
    align: str = typer.Option("ffhq", "--align", help="ffhq, celeba (fixed crop, no detector), box or none."),
    landmarks: int = typer.Option(68, "--landmarks", help="dlib landmark model for ffhq: 68 or 5 points."),
    size: int = typer.Option(256, "--size", help="Output side: 64, 128, 256, 512 or 1024."),
    gray: bool = typer.Option(False, "--gray", help="Write single-channel grayscale images."),
    quality: str = typer.Option("good", "--quality", help="Resampling: fast, good (2x supersampling) or best (4x)."),
    margin: float = typer.Option(0.25, "--margin", help="For --align box: margin around the box, per side."),
    detect_size: int = typer.Option(1024, "--detect-size", min=0,
                                    help="Detect on a copy at most PX pixels wide/high; 0 = full size."),
    labels: Optional[str] = typer.Option(None, "--labels",
                                         help="list_attr_celeba.txt, a CSV `file,label...`, or `utkface`."),
    attrs: Optional[list] = typer.Option(None, "--attrs", parser=name_list, metavar="NAMES",
                                         help="Label columns to keep, e.g. Smiling,Male."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Worker processes, 1 or more; default all "
                                                                        "cores."),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run into the same OUT."),
) -> None:
    """Detect, align and crop every face in RAW into the dataset OUT (prints OUT)."""
    from facegen_cli import api
    from facegen_cli.prepare.pipeline import PrepareOptions, REPORT_FILE, Stopped

    options = PrepareOptions(detector=detector, upsample=upsample, min_face=min_face, max_faces=max_faces,
                             align=align, landmarks=landmarks, size=size, gray=gray, quality=quality, margin=margin,
                             detect_size=detect_size)
    try:
        with _PhotoProgress() as bar:
            report = api.prepare(raw, out, options, labels=labels, attrs=attrs or None, workers=workers,
                                 resume=resume, on_progress=bar.show)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: one line, no traceback
        signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
        typer.echo(f"facegen: error: prepare stopped ({signal.Signals(signum).name}); finished "
                   f"photos are kept in {out}, continue with --resume and the same options", err=True)
        raise typer.Exit(128 + signum) from None
    console.print(_summary_table(report))
    if not report["faces"]:
        raise FacegenError(f"{raw}: no face written from {report['photos']} files (see {out}/{REPORT_FILE})")
    emit(str(out))


def _upsample(value: str) -> int | None:
    """--upsample: a count of 0 or more, or auto (None)."""
    if value == "auto":
        return None
    if not value.isdigit():
        raise BadInput(f"--upsample must be auto or a whole number of 0 or more, got {value}")
    return int(value)


class _PhotoProgress(LazyProgress):
    """The bar on stderr: photos done of all, photos/s of this run, faces written, elapsed; shown from the
    first call."""

    def __init__(self) -> None:
        super().__init__(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("photos"), TextColumn("{task.fields[rate]:.1f} photos/s"),
                         TextColumn("{task.fields[faces]} faces"), TimeElapsedColumn(), console=console)
        self.task: TaskID | None = None
        self.first = 0
        self.began = 0.0

    def show(self, done: int, total: int, faces: int) -> None:
        """prepare's on_progress: the counts so far, resumed photos included (the rate counts this run's)."""
        if self.task is None:
            self.task = self.add_task("prepare", total=total, completed=done, rate=0.0, faces=faces)
            self.first, self.began = done, time.perf_counter()
        rate = (done - self.first) / max(time.perf_counter() - self.began, 1e-9)
        self.update(self.task, total=total, completed=done, rate=rate, faces=faces)


def _summary_table(report: dict[str, Any]) -> Table:
    """The end-of-run summary: photos, faces, and what was skipped or converted and why."""
    table = Table(title="facegen prepare", show_header=False)
    table.add_row("photos", str(report["photos"]))
    table.add_row("photos with faces", str(report["photos_used"]))
    table.add_row("faces written", str(report["faces"]))
    for reason, count in report["skipped"].items():
        table.add_row(f"skipped: {reason}", str(count))
    for mode, count in report["converted"].items():
        table.add_row(f"converted from {mode}", str(count))
    table.add_row("photos/s", str(report["photos_per_second"]))
    return table

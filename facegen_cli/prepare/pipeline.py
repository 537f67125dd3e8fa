"""Turn a folder of photos into an aligned dataset: parallel workers, skip-and-report, resume."""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from facegen_cli.data.writer import DatasetWriter, encode_png
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.fileio import refuse_special
from facegen_cli.prepare import align
from facegen_cli.prepare.detect import DETECTORS, Skip, detect_faces, pick_faces, read_photo
from facegen_cli.prepare.labels import Labels, load_labels
from facegen_cli.prepare.landmarks import PREDICTORS, face_points, plausible_face
from facegen_cli.prepare.listing import JOURNAL_FILE, REPORT_FILE, find_photos, public_name

__all__ = ["REPORT_FILE", "OnProgress", "PrepareOptions", "Stopped", "prepare", "process_photo"]

OnProgress = Callable[[int, int, int], None]
"""Called as on_progress(photos done, photos in all, faces written), resumed ones included."""


class Stopped(KeyboardInterrupt):
    """prepare was stopped by a signal (SIGINT or SIGTERM); finished photos stay for --resume."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


MAX_UPSAMPLE = 3
MAX_MARGIN = 4


@dataclass(frozen=True)
class PrepareOptions:
    """How photos become samples: detection, alignment and output format."""

    detector: str = "dlib"
    upsample: int | None = None  # None: by the detection copy's size (detect.auto_upsample)
    min_face: int = 0
    max_faces: int = 0
    align: str = "ffhq"
    landmarks: int = 68
    size: int = 256
    gray: bool = False
    quality: str = "good"
    margin: float = 0.25
    detect_size: int = 1024

    def check(self) -> None:
        """Raise BadInput for an option value outside its range."""
        choices = {"detector": DETECTORS, "align": align.ALIGNS, "size": align.SIZES,
                   "quality": tuple(align.QUALITY), "landmarks": tuple(PREDICTORS)}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise BadParameter(key, f"{key} must be one of {', '.join(map(str, allowed))}, got {getattr(self, key)}")
        for key in ("upsample", "min_face", "max_faces", "margin", "detect_size"):
            if (getattr(self, key) or 0) < 0:
                raise BadParameter(key, f"{key} {getattr(self, key)} cannot be negative")
        if self.margin > MAX_MARGIN:
            raise BadParameter("margin", f"margin {self.margin:g} is outside 0-{MAX_MARGIN} (per side, in box sides: at "
                                         f"{MAX_MARGIN} the face is a ninth of the crop's width)")
        if (self.upsample or 0) > MAX_UPSAMPLE:  # each step doubles the copy's sides: 3 is 64 times its pixels
            raise BadParameter("upsample", f"upsample {self.upsample} is outside 0-{MAX_UPSAMPLE} (each step doubles "
                                           "the detection copy's width and height)")

    @property
    def needs_detector(self) -> bool:
        """celeba and none crop a fixed region, so they find no faces."""
        return self.align in ("ffhq", "box")


@dataclass
class PhotoResult:
    """What one photo gave: encoded samples with their boxes, or the reason it was skipped."""

    samples: list[tuple[bytes, list[int]]] = field(default_factory=list)
    skip: str | None = None
    converted: str | None = None
    rejected: int = 0  # boxes whose landmarks do not look like a face (see landmarks.plausible_face)


def _samples(rgb: np.ndarray, opts: PrepareOptions) -> tuple[list[tuple[np.ndarray, list[int]]], int]:
    """Aligned crops of one photo, each with the box it came from, and how many boxes were not face-like."""
    h, w = rgb.shape[:2]
    if not opts.needs_detector:
        rect = align.celeba_rect(w, h) if opts.align == "celeba" else align.centre_rect(w, h)
        return [(align.crop(rgb, rect, opts.size, opts.quality), [round(v) for v in rect])], 0
    found = detect_faces(rgb, opts.detector, opts.upsample, opts.detect_size)
    rejected = 0
    if opts.detector == "haar":  # the cascade also fires on collars, fur and textures
        kept = [f for f in found if plausible_face(rgb, f.box)]
        rejected, found = len(found) - len(kept), kept
    faces = pick_faces(found, opts.min_face, opts.max_faces)
    if not faces:
        if found:
            raise Skip(f"face below the minimum size ({max(f.side for f in found)} px < {opts.min_face} px)", rejected)
        raise Skip("no face", rejected)
    crops = []
    for face in faces:
        if opts.align == "ffhq":
            img = align.align_ffhq(rgb, face_points(rgb, face.box, opts.landmarks), opts.size, opts.quality)
        else:
            img = align.crop(rgb, align.box_rect(face.box, opts.margin), opts.size, opts.quality)
        crops.append((img, list(face.box)))
    return crops, rejected


def process_photo(path: Path, opts: PrepareOptions) -> PhotoResult:
    """Read one photo, find and align its faces, and encode them as PNG (runs in a worker)."""
    try:
        photo = read_photo(path)
        crops, rejected = _samples(photo.rgb, opts)
    except Skip as reason:
        return PhotoResult(skip=str(reason), rejected=reason.rejected)
    except OSError as e:
        return PhotoResult(skip=f"unreadable ({e.strerror or e})")
    encoded = [(encode_png(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if opts.gray else img), box) for img, box in crops]
    return PhotoResult(encoded, converted=photo.converted, rejected=rejected)


def _read_journal(path: Path, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Records of the photos a killed run finished; a torn last line is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    if records:
        _same_options(records[0].get("options"), options, path.parent)
    return records[1:]


def _same_options(found: Any, options: dict[str, Any], out: Path) -> None:
    """Refuse to resume or reuse an output that was made with other options."""
    if found != options:
        raise FacegenError(f"{out}: was started with other options ({found}); "
                           "rerun with the same options or choose a new output")


def _run(paths: list[Path], opts: PrepareOptions, workers: int) -> Iterator[PhotoResult]:
    """Process photos in order, in a pool of `workers` processes (in this process when 1)."""
    work = partial(process_photo, opts=opts)
    if workers <= 1 or len(paths) <= 1:
        yield from map(work, paths)
        return
    # spawn, not fork: a fork of a process whose OpenCV/dlib thread pools have started can hang.
    # The workers start with SIGINT ignored (exec keeps an ignored signal ignored, and Python then
    # installs no KeyboardInterrupt handler), so Ctrl-C reaches this process alone, which ends the
    # pool: no worker prints a traceback.
    with _signal_ignored(signal.SIGINT):
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=cv2.setNumThreads, initargs=(1,))
    with pool:
        yield from pool.imap(work, paths, chunksize=1)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _signal_ignored(signum: int) -> Iterator[None]:
    """Ignore `signum` inside the block (in the main thread; elsewhere signals cannot be set)."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signum, previous)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise Stopped, so the pool is ended and the semaphores freed in order."""
    if not _in_main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _report(records: list[dict[str, Any]], raw: Path, out: Path, options: dict[str, Any], new: int,
            seconds: float) -> dict:
    """The summary written to prepare-report.json."""
    skipped = [{**public_name(r["file"]), "reason": r["skip"]} for r in records if r.get("skip")]
    converted = [{**public_name(r["file"]), "from": r["converted"]} for r in records if r.get("converted")]
    used = sum(1 for r in records if r["samples"])
    return {
        "raw": str(raw), "out": str(out), "options": options,
        "photos": sum(1 for r in records if not r["file"].endswith("/")), "photos_used": used,
        "faces": sum(len(r["samples"]) for r in records), "faces_rejected": sum(r.get("rejected", 0) for r in records),
        "skipped": dict(Counter(s["reason"].split(" (")[0] for s in skipped).most_common()),
        "converted": dict(Counter(c["from"] for c in converted).most_common()),
        "photos_this_run": new, "seconds": round(seconds, 2),
        "photos_per_second": round(new / seconds, 2) if seconds else None,
        "skipped_files": skipped, "converted_files": converted,
    }


def _dataset(records: list[dict[str, Any]], label_names: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    """Sample names and dataset.json: NVIDIA's `labels`, plus label names and each sample's source."""
    samples = [(s, r["file"]) for r in records for s in r["samples"]]
    names = [s["name"] for s, _ in samples]
    labels = [[s["name"], s["label"]] for s, _ in samples] if label_names is not None else None
    sources = [[s["name"], {**public_name(f), "box": s["box"]}] for s, f in samples]
    return names, {"labels": labels, "label_names": label_names, "sources": sources}


def prepare(raw: str | os.PathLike, out: str | os.PathLike, options: PrepareOptions = PrepareOptions(),
            labels: str | None = None, attrs: list[str] | None = None, workers: int | None = None,
            resume: bool = False, on_progress: OnProgress | None = None) -> dict[str, Any]:
    """Detect, align and write every face under `raw` to the dataset `out`; returns the report.

    `on_progress` is called once before the first photo and again after each one."""
    raw, out = Path(raw), Path(out)
    options.check()
    if attrs is not None and labels is None:
        raise BadParameter("attrs", f"attrs {','.join(attrs)} picks columns of the labels; give the labels too")
    if not refuse_special(raw, "a folder of photos").is_dir():
        raise BadInput(f"{raw}: not a folder of photos")
    if out.resolve() == raw.resolve():
        raise BadInput(f"{out}: is the photo folder itself; name a new folder or .zip for the dataset")
    table: Labels | None = load_labels(labels, attrs) if labels else None
    settings = {**asdict(options), "labels": labels, "attrs": table.names if table else None}
    if not resume:
        _refuse_nothing_to_read(raw, out)
    writer = DatasetWriter(out, resume=resume, work_file=JOURNAL_FILE)
    if writer.complete:  # nothing left to do, if it was made the same way
        report = writer.read_json(REPORT_FILE)
        _same_options(report.get("options") if isinstance(report, dict) else None, settings, out)
        return report
    with _stop_on_signals():
        try:
            return _prepare(raw, out, writer, options, settings, table, workers, resume, on_progress)
        except Stopped:
            writer.drop_temporaries()
            raise


def _refuse_nothing_to_read(raw: Path, out: Path) -> None:
    """A folder with no file to read is refused before the dataset is begun."""
    listing = find_photos(raw, exclude=[out])
    if not listing.files:
        passed = f" ({len(listing.skipped)} passed over: hidden, special or unreadable)" if listing.skipped else ""
        raise BadInput(f"{raw}: holds no files to read{passed}; nothing written")


def _prepare(raw: Path, out: Path, writer: DatasetWriter, options: PrepareOptions, settings: dict[str, Any],
             table: Labels | None, workers: int | None, resume: bool,
             on_progress: OnProgress | None) -> dict[str, Any]:
    """The run itself: list, journal, process in the pool, write samples, finish the dataset."""
    journal_path = writer.folder / JOURNAL_FILE
    records = _read_journal(journal_path, settings) if resume else []
    done = {r["file"] for r in records}
    listing = find_photos(raw, exclude=[writer.folder, out])
    photos = [p for p in listing.files if p not in done]
    passed_over = [(rel, why) for rel, why in listing.skipped if rel not in done]
    start, index = time.perf_counter(), sum(len(r["samples"]) for r in records)
    total = len(done) + len(photos) + len(passed_over)

    def advance() -> None:
        if on_progress:
            on_progress(len(records), total, index)

    advance()
    with open(journal_path, "a" if records else "w", encoding="utf-8") as journal:
        if not records:
            _append(journal, {"options": settings})
        todo = []
        for rel, why in passed_over:
            records.append(_append(journal, {"file": rel, "samples": [], "skip": why}))
            advance()
        for rel in photos:
            label = table.lookup(rel) if table else None
            if table and label is None:
                no_label = {"file": rel, "samples": [], "skip": f"no label ({settings['labels']})"}
                records.append(_append(journal, no_label))
                advance()
            else:
                todo.append((raw / rel, rel, label))
        pool = _run([path for path, _, _ in todo], options, workers or os.cpu_count() or 1)
        with contextlib.closing(pool) as results:  # ends the pool now if this loop is stopped
            for (_, rel, label), result in zip(todo, results):
                samples = []
                for png, box in result.samples:
                    samples.append({"name": writer.write_png(index, png), "box": box, "label": label})
                    index += 1
                records.append(_append(journal, {"file": rel, "samples": samples, "skip": result.skip,
                                                 "converted": result.converted, "rejected": result.rejected}))
                advance()
    report = _report(records, raw, out, settings, len(photos), time.perf_counter() - start)
    names, dataset = _dataset(records, table.names if table else None)
    writer.finish(names, dataset, {REPORT_FILE: report})
    return report


def _append(journal, record: dict[str, Any]) -> dict[str, Any]:
    """Add one line to the journal and flush it, so a killed run keeps every finished photo."""
    journal.write(json.dumps(record) + "\n")
    journal.flush()
    return record

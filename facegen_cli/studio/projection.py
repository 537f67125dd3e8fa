"""Project page: an uploaded photo aligned like `prepare`, then given a latent like `facegen project` does: at
once by the network's shipped encoder (`--encoder default`) or by optimising W or W+; then, when asked, the
network fine-tuned around that latent (pivotal tuning, `--tune`). It runs in a background thread whose
progress the page polls; each result joins the tab's faces (a tuned one drawn by its own tuned network).
One projection runs at a time."""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegen_cli.encoder.encode import encode
from facegen_cli.encoder.store import EncoderFile, find_encoder, shipped_encoder_path
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.latent.project import ALIGNS, ProjectOptions, align_photo, image_stats, project
from facegen_cli.latent.tuning import TuneOptions, tune
from facegen_cli.sampler import require_wplus
from facegen_cli.studio.service import Studio, display_name, png
from facegen_cli.studio.state import Face, NotFound, Tab, new_id
from facegen_cli.studio.uploads import photo_kind

log = logging.getLogger("facegen.studio")
MAX_STEPS = 2000
MAX_TUNE_STEPS = 1000
PREVIEWS = 25  # preview images over a run
METHODS = ("encoder", "w", "wplus")  # the shipped encoder, or optimising W or W+


class Cancelled(Exception):
    """The studio is stopping or the tab went away."""


@dataclass(frozen=True)
class ProjectRequest:
    """What the page asks for: how to find the latent, and whether (and how long) to tune around it."""

    method: str = "encoder"
    steps: int = 100  # of an optimisation
    align: str = "ffhq"
    perceptual: bool = True  # the perceptual distance in the losses (off: pixels only)
    tune: bool = False
    tune_steps: int = TuneOptions.steps  # what `project --tune` runs

    def check(self, has_encoder: bool) -> None:
        if self.method not in METHODS:
            raise BadInput(f"method must be one of {', '.join(METHODS)}")
        if self.method == "encoder" and not has_encoder:
            raise BadInput("no encoder ships for this network; project by optimising W or W+")
        if not 1 <= self.steps <= MAX_STEPS:
            raise BadInput(f"steps must lie in 1-{MAX_STEPS}")
        if not 1 <= self.tune_steps <= MAX_TUNE_STEPS:
            raise BadInput(f"tune_steps must lie in 1-{MAX_TUNE_STEPS}")
        if self.align not in ALIGNS:
            raise BadInput(f"align must be one of {', '.join(ALIGNS)}")
        if self.tune and self.method == "wplus":
            raise BadInput("tuning starts from the encoder's latent or a W projection, not W+")


def request_defaults() -> dict:
    """The page's starting values and bounds for the optimisation's and the tuning's steps."""
    return {"steps": {"default": ProjectRequest.steps, "max": MAX_STEPS},
            "tune_steps": {"default": ProjectRequest.tune_steps, "max": MAX_TUNE_STEPS}}


@dataclass
class Job:
    id: str
    name: str
    steps: int  # of the optimisation (0 with the encoder)
    tune_steps: int  # 0 without tuning
    phase: str = "aligning"  # aligning, encoding or projecting, tuning, done
    step: int = 0
    tune_step: int = 0
    done: bool = False
    error: str | None = None
    stats: dict = field(default_factory=dict)  # the running phase's losses
    quality: dict = field(default_factory=dict)  # PSNR and identity distance to the photo: "latent", "tuned"
    seconds: dict = field(default_factory=dict)  # each phase's wall time
    face: dict | None = None  # the latent's face, there as soon as it is found
    tuned: dict | None = None  # the tuned face, once tuning ends
    target: bytes = b""
    preview: bytes = b""
    cancelled: bool = False

    def status(self, tab: str) -> dict:
        base = f"/api/t/{tab}/project/{self.id}"
        return {"id": self.id, "name": self.name, "phase": self.phase, "step": self.step, "steps": self.steps,
                "tune_step": self.tune_step, "tune_steps": self.tune_steps, "done": self.done, "error": self.error,
                "stats": self.stats, "quality": self.quality, "seconds": self.seconds, "face": self.face, "tuned": self.tuned,
                "target": f"{base}/target.png" if self.target else None,
                "preview": f"{base}/preview.png?step={self.step + self.tune_step}" if self.preview else None}


def rounded(stats: dict) -> dict:
    """Numbers as the page shows them; one that is not finite (an exact reconstruction's PSNR) as None."""
    return {k: (round(v, 5) if math.isfinite(v) else None) if isinstance(v, float) else v for k, v in stats.items()}


class Projector:
    """Runs projections for the studio's tabs."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.busy = threading.Lock()
        self.threads: list[threading.Thread] = []
        net = studio.net
        self.encoder: EncoderFile | None = find_encoder("default", net) if shipped_encoder_path(net).is_file() else None
        studio.extras.append(self.close)

    def start(self, tab: Tab, data: bytes, name: str, request: ProjectRequest) -> Job:
        """Check the request, then project (and tune) in the background; the job reports progress."""
        shown = display_name(name)
        kind = photo_kind(data, shown)
        require_wplus(self.studio.net, "projection")
        request.check(self.encoder is not None)
        opts = None if request.method == "encoder" else ProjectOptions(
            steps=request.steps, wplus=request.method == "wplus", perceptual_weight=1.0 if request.perceptual else 0.0)
        tune_opts = TuneOptions(steps=request.tune_steps,
                                perceptual_weight=1.0 if request.perceptual else 0.0) if request.tune else None
        if not self.busy.acquire(blocking=False):
            raise FacegenError("a projection is already running in this studio; wait for it to finish")
        try:
            path = tab.path(f"photo-{new_id()}.{kind}")
            path.write_bytes(data)
            job = Job(new_id(), shown, opts.steps if opts else 0, tune_opts.steps if tune_opts else 0)
            tab.jobs = {k: j for k, j in tab.jobs.items() if not j.done}
            tab.jobs[job.id] = job
            thread = threading.Thread(target=self._run, args=(tab, job, path, request.align, opts, tune_opts),
                                      daemon=True, name=f"project-{job.id}")
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
        except BaseException:
            self.busy.release()
            raise
        return job

    def _latent(self, job: Job, target: np.ndarray, opts: ProjectOptions | None) -> tuple[np.ndarray, np.ndarray]:
        """The photo's W+ and its image: the encoder's at once, or an optimisation's with progress."""
        if opts is None:
            job.phase = "encoding"
            ws, image, _ = encode(self.studio.net, self.encoder, target)
            return ws, image

        def on_step(step: int, frame: np.ndarray | None, stats: dict) -> None:
            if job.cancelled:
                raise Cancelled
            job.step, job.stats = step + 1, rounded(stats)
            if frame is not None:
                job.preview = png(frame)

        job.phase = "projecting"
        ws, image, _ = project(self.studio.net, target, opts, on_step, max(1, opts.steps // PREVIEWS))
        return ws, image

    def _add(self, tab: Tab, name: str, ws: np.ndarray, photo: bytes, network: str | None = None) -> dict:
        face = Face(new_id(), name, ws, self.studio.default_c, network=network, photo=photo)
        with self.studio.lock:  # the face as edits and mixes will draw it: with the network's own noise maps
            face.png = self.studio.render(face)
        return tab.add_face(face).summary(tab.id)

    def _run(self, tab: Tab, job: Job, path: Path, align: str, opts: ProjectOptions | None,
             tune_opts: TuneOptions | None) -> None:
        def on_tune_step(step: int, stats: dict) -> None:
            if job.cancelled:
                raise Cancelled
            job.tune_step, job.stats = step + 1, rounded(stats)

        try:
            started = time.perf_counter()
            target = align_photo(path, self.studio.net.G_ema.img_resolution, align)
            job.target = png(target)
            job.seconds["align"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            ws, image = self._latent(job, target, opts)
            job.seconds[job.phase] = round(time.perf_counter() - started, 3)
            job.preview = png(image)
            job.face = self._add(tab, f"{'encoded' if opts is None else 'projected'} {job.name}", ws, job.target)
            job.quality["latent"] = rounded(image_stats(image, target))
            if tune_opts is not None:
                job.phase, started = "tuning", time.perf_counter()
                tuned, image, _ = tune(self.studio.net, target, ws, tune_opts, on_tune_step)
                job.seconds["tuning"] = round(time.perf_counter() - started, 3)
                job.preview = png(image)
                job.tuned = self._add(tab, f"tuned {job.name}", ws, job.target, self.studio.add_tuned(tuned))
                job.quality["tuned"] = rounded(image_stats(image, target))
            job.phase = "done"
        except Cancelled:
            job.error = "cancelled"
        except FacegenError as error:
            job.error = str(error).replace(str(path), job.name)
        except Exception as error:  # noqa: BLE001 - the page gets one line, the log the traceback
            log.exception("projection %s failed", job.id)
            job.error = f"internal error ({type(error).__name__}); see the studio's log"
        finally:
            path.unlink(missing_ok=True)
            job.done = True
            self.busy.release()

    def job(self, tab: Tab, job_id: str) -> Job:
        try:
            return tab.jobs[job_id]
        except KeyError:
            raise NotFound(f"this tab has no projection {job_id!r}") from None

    def close(self) -> None:
        """Stop every running projection at its next step and wait for it."""
        for tab in self.studio.tabs.all():
            for job in tab.jobs.values():
                job.cancelled = True
        for thread in self.threads:
            thread.join(timeout=30)

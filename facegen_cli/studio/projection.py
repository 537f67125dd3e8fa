"""Project page: an uploaded photo aligned like `prepare` and projected like `facegen project`, in a
background thread whose progress the page polls. One projection runs at a time."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.latent.project import ALIGNS, ProjectOptions, align_photo, project
from facegen_cli.sampler import require_wplus
from facegen_cli.studio.service import Studio, display_name, png
from facegen_cli.studio.state import Face, NotFound, Tab, new_id
from facegen_cli.studio.uploads import photo_kind

log = logging.getLogger("facegen.studio")
MAX_STEPS = 2000
PREVIEWS = 25  # preview images over a run


class Cancelled(Exception):
    """The studio is stopping or the tab went away."""


@dataclass
class Job:
    id: str
    name: str
    steps: int
    step: int = 0
    done: bool = False
    error: str | None = None
    stats: dict = field(default_factory=dict)
    face: dict | None = None
    target: bytes = b""
    preview: bytes = b""
    cancelled: bool = False

    def status(self, tab: str) -> dict:
        base = f"/api/t/{tab}/project/{self.id}"
        return {"id": self.id, "name": self.name, "step": self.step, "steps": self.steps, "done": self.done,
                "error": self.error, "stats": self.stats, "face": self.face,
                "target": f"{base}/target.png" if self.target else None,
                "preview": f"{base}/preview.png?step={self.step}" if self.preview else None}


class Projector:
    """Runs projections for the studio's tabs."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.busy = threading.Lock()
        self.threads: list[threading.Thread] = []
        studio.extras.append(self.close)

    def start(self, tab: Tab, data: bytes, name: str, steps: int, align: str, wplus: bool, perceptual: bool) -> Job:
        """Check the request, then project in the background; the job reports progress."""
        shown = display_name(name)
        kind = photo_kind(data, shown)
        require_wplus(self.studio.net, "projection")
        if not 1 <= steps <= MAX_STEPS:
            raise BadInput(f"steps must lie in 1-{MAX_STEPS}")
        if align not in ALIGNS:
            raise BadInput(f"align must be one of {', '.join(ALIGNS)}")
        if not self.busy.acquire(blocking=False):
            raise FacegenError("a projection is already running in this studio; wait for it to finish")
        try:
            path = tab.path(f"photo-{new_id()}.{kind}")
            path.write_bytes(data)
            job = Job(new_id(), shown, steps)
            tab.jobs = {k: j for k, j in tab.jobs.items() if not j.done}
            tab.jobs[job.id] = job
            opts = ProjectOptions(steps=steps, wplus=wplus, perceptual_weight=1.0 if perceptual else 0.0)
            thread = threading.Thread(target=self._run, args=(tab, job, path, align, opts), daemon=True,
                                      name=f"project-{job.id}")
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
        except BaseException:
            self.busy.release()
            raise
        return job

    def _run(self, tab: Tab, job: Job, path, align: str, opts: ProjectOptions) -> None:
        net = self.studio.net

        def on_step(step: int, frame: np.ndarray | None, stats: dict) -> None:
            if job.cancelled:
                raise Cancelled
            job.step, job.stats = step + 1, {k: round(v, 5) for k, v in stats.items()}
            if frame is not None:
                job.preview = png(frame)

        try:
            target = align_photo(path, net.G_ema.img_resolution, align)
            job.target = png(target)
            ws, image, stats = project(net, target, opts, on_step, max(1, opts.steps // PREVIEWS))
            face = Face(new_id(), f"projected {job.name}", ws, self.studio.default_c)
            job.preview = png(image)
            with self.studio.lock:  # the face as edits and mixes will draw it: with the network's own noise maps
                face.png = self.studio.render(face)
            job.stats = {k: round(v, 5) for k, v in stats.items()}
            job.face = tab.add_face(face).summary(tab.id)
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

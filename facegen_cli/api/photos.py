"""Photos: a data set prepared from them, and a photo's latent (projection, an encoder, pivotal tuning)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from facegen_cli.api.draw import Progress, open_network
from facegen_cli.errors import BadParameter
from facegen_cli.networks import Network
from facegen_cli.prepare.pipeline import PrepareOptions

PROJECT_STEPS = 500  # of a projection on its own
PIVOT_STEPS = 150  # of the W projection pivotal tuning starts from (benchmarks/RESULTS.md, "Your own photo")


@dataclass(frozen=True)
class Projected:
    """What `project` wrote (images, latent, tuned network) and measured, with the steps it took."""

    paths: list[Path]
    stats: dict
    steps: int
    tune_steps: int


def project(photo: str | Path, out: str | Path, network: Network | str | None = None, steps: int | None = None,
            wplus: bool = False, tune: bool = False, tune_steps: int | None = None,
            locality_weight: float | None = None, encoder: str | None = None, align: str = "ffhq", lr: float = 0.1,
            perceptual_weight: float = 1.0, pixel_weight: float = 1.0, noise_weight: float = 1e5,
            video: bool = False, seed: int = 0, precision: str = "fp32", device: str = "auto",
            on_progress: Progress | None = None, on_tune_progress: Progress | None = None,
            on_faces: Callable[[int], None] | None = None) -> Projected:
    """Align `photo` (`align` ffhq or none) and find the latent that reproduces it: W (or W+ with `wplus`)
    optimised for `steps` (default PROJECT_STEPS, PIVOT_STEPS with `tune`), or one forward pass of `encoder`
    (a file, or `default`); with `tune`, the synthesis fine-tuned around it for `tune_steps`."""
    from facegen_cli.encoder.encode import run_encode
    from facegen_cli.latent.project import ProjectOptions, run_project
    from facegen_cli.latent.tuning import TuneOptions, run_tune

    resolved = steps if steps is not None else PIVOT_STEPS if tune else PROJECT_STEPS
    opts = ProjectOptions(steps=resolved, wplus=wplus, lr=lr, perceptual_weight=perceptual_weight,
                          pixel_weight=pixel_weight, noise_weight=noise_weight, seed=seed, precision=precision)
    given = {k: v for k, v in (("steps", tune_steps), ("locality_weight", locality_weight)) if v is not None}
    try:
        tune_opts = TuneOptions(perceptual_weight=perceptual_weight, pixel_weight=pixel_weight, seed=seed,
                                precision=precision, **given) if tune else None
    except BadParameter as error:  # the tuning's own steps are this function's tune_steps
        if error.param != "steps":
            raise
        raise BadParameter("tune_steps", error.naming("tune_steps")) from None
    if tune and wplus:
        raise BadParameter("wplus", "wplus: tuning starts from a W projection; leave wplus out")
    if encoder is not None and (wplus or video or steps is not None):
        raise BadParameter("encoder", "encoder gives the latent in one forward pass; give it no steps, wplus or video")
    net = open_network(network, device)
    step = (lambda i, _: on_progress(i + 1, resolved)) if on_progress else None
    tune_step = (lambda i, _: on_tune_progress(i + 1, tune_opts.steps)) if on_tune_progress and tune_opts else None
    if encoder is not None:
        paths, stats = run_encode(net, photo, out, encoder, how=align, precision=precision, tune_opts=tune_opts,
                                  on_tune_step=tune_step, on_faces=on_faces)
    elif tune_opts:
        paths, stats = run_tune(net, photo, out, opts, tune_opts, how=align, video=video, on_step=step,
                                on_tune_step=tune_step, on_faces=on_faces)
    else:
        paths, stats = run_project(net, photo, out, opts, how=align, video=video, on_step=step, on_faces=on_faces)
    return Projected(paths, stats, 0 if encoder is not None else resolved, tune_opts.steps if tune_opts else 0)


def prepare(raw: str | Path, out: str | Path, options: PrepareOptions | None = None, labels: str | None = None,
            attrs: Sequence[str] | None = None, workers: int | None = None, resume: bool = False,
            on_progress: Callable[[int, int, int], None] | None = None) -> dict:
    """Detect, align and write every face of the photos under `raw` into the data set `out` (a folder or .zip),
    with `labels` (CelebA's attribute list, a CSV, or `utkface`; the `attrs` columns) in its dataset.json, in
    `workers` processes (default all cores), going on from a stopped run with `resume`. Returns the report
    (photos, faces, what was skipped and why); `on_progress(done, total, faces)` after each photo."""
    from facegen_cli.prepare.pipeline import prepare as run_prepare

    if workers is not None and workers < 1:
        raise BadParameter("workers", f"workers {workers} is less than 1")
    return run_prepare(raw, out, options or PrepareOptions(), labels=labels, attrs=list(attrs) if attrs else None,
                       workers=workers, resume=resume, on_progress=on_progress)

"""facegen from Python: one function per command, typed parameters in, paths, numbers and records out.

Each takes the network as a loaded `Network` or as what `--network` takes (a path or a name; None: the
shipped model, loaded on `device`), and the drawing commands take how to draw it as one `SampleOptions`,
checked before any network loads. The `facegen` commands parse their options and call these; nothing here
prints, and long work reports through `on_progress(done, total)` (total None where it is not known ahead).

    from facegen_cli import api
    paths = api.mix([1], [2], "out/mix")
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

from dataclasses import dataclass

from facegen_cli.controls.steer import ControlResult, run_controls
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.generate import write_samples
from facegen_cli.latent.directions import run_edit
from facegen_cli.latent.interpolate import run_interpolate
from facegen_cli.latent.layers import resolve_layers
from facegen_cli.latent.mixing import run_average, run_mix
from facegen_cli.latent.sources import Source
from facegen_cli.networks import Network, load_network
from facegen_cli.sampler import SampleOptions, Sampler, check_psi, check_seed, require_wplus

Layers = Sequence["str | tuple[int, int | None]"]  # coarse, middle, fine, or (first, last) index ranges
Progress = Callable[[int, "int | None"], None]  # (done, total)
MAX_EQT_SAMPLES = 100_000  # latents EQ-T draws
MAX_EQT_SHIFTS = 1000  # translations per latent


def open_network(spec: Network | str | None = None, device: str = "auto") -> Network:
    """`spec` itself when it is a loaded Network, else the network it names loaded on `device`."""
    from facegen_cli.devices import resolve_device

    return spec if isinstance(spec, Network) else load_network(spec, resolve_device(device))


def sampler(net: Network | str | None = None, options: SampleOptions | None = None, device: str = "auto") -> Sampler:
    """The Sampler drawing a network as `options` say (default SampleOptions())."""
    return Sampler.from_options(open_network(net, device), options or SampleOptions())


def generate(seeds: Sequence[int], out: str | Path, network: Network | str | None = None,
             options: SampleOptions | None = None, grid: tuple[int, int] | None = None, save_latents: bool = False,
             fmt: str = "png", device: str = "auto",
             on_progress: Callable[[int, int], None] | None = None) -> Iterator[dict]:
    """Images for `seeds` under `out`, one file per seed or one `grid` (rows, cols); yields one record per file
    written (path, seed, psi, noise mode; latent paths with `save_latents`). Every option is checked before this
    returns; `on_progress(done, total)` after each image."""
    seeds = list(seeds)
    done = iter(range(1, len(seeds) + 1))
    return write_samples(sampler(network, options, device), seeds, out, grid=grid, save_latents=save_latents,
                         fmt=fmt, on_image=(lambda: on_progress(next(done), len(seeds))) if on_progress else None)


def _layers(s: Sampler, layers: Layers | None) -> list[int] | None:
    return None if layers is None else resolve_layers(s.G, list(layers))


def mix(rows: Sequence[Source], cols: Sequence[Source], out: str | Path, network: Network | str | None = None,
        options: SampleOptions | None = None, layers: Layers | None = None, grid: bool = False,
        save_latents: bool = False, device: str = "auto") -> list[Path]:
    """Style mixing: every A in `rows` (seeds or latent files) with every B in `cols`, B giving the W+ `layers`
    (default coarse); one image per pair, or one figure with `grid`. Returns the paths written."""
    s = sampler(network, options, device)
    return list(run_mix(s, list(rows), list(cols), out, _layers(s, layers), grid, save_latents))


def average(sources: Sequence[Source], out: str | Path, network: Network | str | None = None,
            options: SampleOptions | None = None, weights: Sequence[float] | None = None,
            save_latents: bool = False, device: str = "auto") -> list[Path]:
    """The weighted average of two or more latents (`mix --average`), drawn; returns the paths written."""
    return list(run_average(sampler(network, options, device), list(sources), out, weights, save_latents))


def interpolate(sources: Sequence[Source], out: str | Path, network: Network | str | None = None,
                options: SampleOptions | None = None, frames: int = 60, space: str | None = None,
                loop: bool = False, fps: float = 24.0, device: str = "auto") -> list[Path]:
    """A morph through the keyframes `sources` written to `out` (.gif, .mp4, a .png strip, or a folder of
    frames): lerp in W or slerp in z (`space`, default w where the network has W). Returns the paths."""
    return run_interpolate(sampler(network, options, device), list(sources), out, frames=frames, space=space,
                           loop=loop, fps=fps)


def edit(source: Source, direction: str, out: str | Path, network: Network | str | None = None,
         options: SampleOptions | None = None, strength: float | None = None, span: tuple[float, float] | None = None,
         steps: int = 7, layers: Layers | None = None, conditional: Sequence[str] | None = None,
         save_latents: bool = False, device: str = "auto") -> list[Path]:
    """Move the latent `source` along `direction` (a name or .npy file) by `strength` (one image) or across
    `span` (LOW, HIGH) in `steps` images (a strip), on `layers` (default the direction's), with the
    `conditional` directions projected out. Returns the paths written."""
    s = sampler(network, options, device)
    return list(run_edit(s, source, direction, out, strength=strength, span=span, steps=steps,
                         layers=_layers(s, layers), conditional=list(conditional) if conditional else None,
                         save_latents=save_latents))


def set_controls(source: Source, targets: dict[str, float], out: str | Path, network: Network | str | None = None,
                 options: SampleOptions | None = None, keep: Sequence[str] = (), save_latents: bool = False,
                 device: str = "auto") -> tuple[list[Path], ControlResult]:
    """Steer the latent `source` until the image reads `targets` ({control: value}, e.g. {"Age": 60}) on the
    network's fitted controls, holding the `keep` ones (`edit --set`). Returns the paths and what was read."""
    s = sampler(network, options, device)
    require_wplus(s.net, "edit")
    return run_controls(s, source, targets, out, keep=list(keep), save_latents=save_latents)


@dataclass(frozen=True)
class Identity:
    """How far apart two faces are as people (dlib's descriptor distance) and whether that is the same person."""

    distance: float
    same_person: bool
    threshold: float


def identity(a: str | Path, b: str | Path) -> Identity:
    """The identity distance between the faces in the images `a` and `b`."""
    from facegen_cli.metrics.identity import SAME_PERSON_THRESHOLD, photo_distance

    value = photo_distance(a, b)
    return Identity(value, value < SAME_PERSON_THRESHOLD, SAME_PERSON_THRESHOLD)


def convert(source: str | Path, dest: str | Path, ema_only: bool = False, half: bool = False) -> Path:
    """A foreign network file (NVIDIA, rosinality) or a checkpoint written in facegen's format; returns `dest`."""
    from facegen_cli.convert.importer import convert_file

    return convert_file(Path(source), Path(dest), ema_only=ema_only, half=half)


def info(network: str | None = None) -> dict:
    """What a network file is: architecture, resolution, latent sizes, conditioning and provenance."""
    from facegen_cli.networks import describe_network

    return describe_network(network)


def eqt(network: Network | str | None = None, samples: int = 16, shifts: int = 4, seed: int = 0, psi: float = 1.0,
        device: str = "auto") -> float:
    """EQ-T in dB of a StyleGAN3 network: PSNR between the image of a translated input and the translated image,
    over `samples` latents at `shifts` whole-pixel translations each."""
    from facegen_cli.metrics.equivariance import generator_eqt

    if not 1 <= samples <= MAX_EQT_SAMPLES:
        raise BadParameter("samples", f"samples {samples} is outside 1-{MAX_EQT_SAMPLES}")
    if not 1 <= shifts <= MAX_EQT_SHIFTS:
        raise BadParameter("shifts", f"shifts {shifts} is outside 1-{MAX_EQT_SHIFTS}")
    check_seed(seed, "seed")
    check_psi(psi)
    net = open_network(network, device)
    if net.arch != "stylegan3":
        raise BadInput(f"{net.path}: a {net.arch} network; EQ-T needs StyleGAN3, whose input can be translated")
    return generator_eqt(net.G_ema, num_samples=samples, num_shifts=shifts, seed=seed, psi=psi)


def sefa(network: Network | str | None = None, k: int = 10, layers: Layers | None = None,
         out: str | Path | None = None, device: str = "auto") -> list[Path]:
    """The top-k SeFa directions of a network's modulations (of `layers` only), saved to `out` (default the
    network's direction store, where `edit` finds them by name); returns every file written."""
    from facegen_cli.latent.directions import direction_files, run_sefa

    net = open_network(network, device)
    require_wplus(net, "SeFa")
    indices = None if layers is None else resolve_layers(net.G_ema, list(layers))
    return [written for path in run_sefa(net, out, k=k, layers=indices) for written in direction_files(path)]


@dataclass(frozen=True)
class Fitted:
    """A direction fitted by `fit_direction`: the files written and the boundary's held-out accuracy."""

    paths: list[Path]
    accuracy: float


def fit_direction(attr: str, classifier: str | Path, network: Network | str | None = None, samples: int = 2000,
                  ratio: float = 0.25, seed_start: int = 0, psi: float = 1.0, out: str | Path | None = None,
                  device: str = "auto", on_progress: Progress | None = None) -> Fitted:
    """InterFaceGAN: `samples` faces scored by the classifier's `attr`, a linear boundary fitted in W on the
    `ratio` highest and lowest, its normal saved as the direction `attr` (`directions fit`)."""
    from facegen_cli.latent.boundary import run_fit
    from facegen_cli.latent.directions import direction_files

    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if on_progress:
            on_progress(done[0], samples)

    path, accuracy = run_fit(open_network(network, device), attr, classifier, out, samples=samples, ratio=ratio,
                             seed_start=seed_start, psi=psi, on_batch=advance)
    return Fitted(direction_files(path), accuracy)


def directions_report(out: str | Path, network: Network | str | None = None, seeds: Sequence[int] = range(16),
                      step: float = 2.0, psi: float = 1.0, device: str = "auto",
                      on_progress: Progress | None = None) -> dict:
    """The entanglement matrix of every direction of a network (how one unit along each moves every estimator)
    with its heatmap written to `out` (the dict's `heatmap`)."""
    from facegen_cli.controls.entanglement import draw_heatmap, report

    done = iter(range(1, 1 << 30))
    result = report(Sampler(open_network(network, device), psi=psi), list(seeds), step,
                    on_direction=(lambda _: on_progress(next(done), None)) if on_progress else None)
    result["heatmap"] = str(draw_heatmap(result, out))
    return result

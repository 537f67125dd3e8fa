"""The drawing commands: a network drawn through one Sampler made from a SampleOptions."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

from facegen_cli.controls.steer import ControlResult, run_controls
from facegen_cli.generate import write_samples
from facegen_cli.latent.directions import run_edit
from facegen_cli.latent.interpolate import run_interpolate
from facegen_cli.latent.keep_edit import run_kept_edit
from facegen_cli.latent.layers import resolve_layers
from facegen_cli.latent.mixing import run_average, run_mix
from facegen_cli.latent.sources import Source
from facegen_cli.networks import Network, load_network
from facegen_cli.sampler import SampleOptions, Sampler, require_wplus

Layers = Sequence["str | tuple[int, int | None]"]  # coarse, middle, fine, or (first, last) index ranges
Progress = Callable[[int, "int | None"], None]  # (done, total)


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


def kept_edit(source: Source, direction: str, out: str | Path, strength: float, network: Network | str | None = None,
              options: SampleOptions | None = None, save_latents: bool = False, device: str = "auto",
              on_progress: Progress | None = None) -> tuple[list[Path], dict]:
    """Move the latent `source` along `direction` (fitted to a classifier) by `strength`, corrected in the
    network's principal latent span so the face stays the same person (`edit --keep-identity`). Returns the
    paths and a summary: the held attribute, the strengths, and the held probability's change and the identity
    distance to the unedited face of the plain and of the kept edit."""
    return run_kept_edit(sampler(network, options, device), source, direction, out, strength,
                         save_latents=save_latents, on_progress=on_progress)


def set_controls(source: Source, targets: dict[str, float], out: str | Path, network: Network | str | None = None,
                 options: SampleOptions | None = None, keep: Sequence[str] = (), save_latents: bool = False,
                 device: str = "auto") -> tuple[list[Path], ControlResult]:
    """Steer the latent `source` until the image reads `targets` ({control: value}, e.g. {"Age": 60}) on the
    network's fitted controls, holding the `keep` ones (`edit --set`). Returns the paths and what was read."""
    s = sampler(network, options, device)
    require_wplus(s.net, "edit")
    return run_controls(s, source, targets, out, keep=list(keep), save_latents=save_latents)

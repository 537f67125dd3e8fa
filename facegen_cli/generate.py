"""Draw images from a network for a list of seeds: seed -> z -> (W+) -> image."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from facegen_cli.checkpoint import Network
from facegen_cli.errors import BadInput
from facegen_cli.images import check_format, make_grid, save_image, to_uint8
from facegen_cli.latent.io import save_latent
from facegen_cli.latent.seeds import seed_to_z
from facegen_cli.models.stylegan2 import NOISE_MODES
from facegen_cli.precision import Precision, in_precision, resolve_precision, synthesize

PSI_RANGE = (-2.0, 2.0)
MAX_GRID_SIDE = 16384  # pixels; a grid image is built whole in memory


@dataclass
class Sample:
    """One generated image with what made it."""

    seed: int
    image: np.ndarray  # HWC uint8
    ws: np.ndarray | None  # [num_ws, w_dim] for W+ models


def check_psi(psi: float) -> float:
    if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:  # also refuses NaN
        raise BadInput(f"--psi {psi} is outside [{PSI_RANGE[0]:g}, {PSI_RANGE[1]:g}]")
    return psi


def parse_translate(spec: str | None) -> tuple[float, float] | None:
    """`--translate X,Y` (fractions of the image size) as two numbers."""
    if spec is None:
        return None
    try:
        x, y = (float(v) for v in spec.split(","))
    except ValueError:
        raise BadInput(f"--translate {spec!r} is not X,Y (two numbers, fractions of the image size)") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise BadInput(f"--translate {spec!r} is not finite")
    return x, y


def check_transform(net: Network, translate: tuple[float, float] | None, rotate: float | None) -> None:
    """--translate/--rotate move the input of StyleGAN3 networks only."""
    if (translate is not None or rotate is not None) and not hasattr(getattr(net.G_ema, "synthesis", None), "set_transform"):
        raise BadInput(f"--translate and --rotate need a StyleGAN3 network; {net.arch} has no input transform")
    if rotate is not None and not math.isfinite(rotate):
        raise BadInput(f"--rotate {rotate} is not finite")


@contextlib.contextmanager
def input_transform(G: torch.nn.Module, translate: tuple[float, float] | None, rotate: float | None) -> Iterator[None]:
    """StyleGAN3's input shifted by `translate` and turned by `rotate` degrees, as NVIDIA's gen_images.py
    does it, for the duration; then the transform the network had."""
    if translate is None and rotate is None:
        yield
        return
    saved = G.synthesis.input.transform.clone()
    G.synthesis.set_transform(translate or (0.0, 0.0), rotate or 0.0)
    try:
        yield
    finally:
        G.synthesis.input.transform.copy_(saved)


def check_noise_mode(noise_mode: str) -> str:
    if noise_mode not in NOISE_MODES:
        raise BadInput(f"--noise-mode {noise_mode!r} is not one of {', '.join(NOISE_MODES)}")
    return noise_mode


def attribute_defaults(net: Network, attr_default: str | None = None) -> np.ndarray:
    """Every attribute at `attr_default`: `mean` or None for its frequency in the training data, or a number."""
    c_dim = int(net.G_kwargs.get("c_dim", 0))
    if attr_default in (None, "mean"):
        return np.asarray(net.provenance.get("label_means") or [0.5] * c_dim, np.float32).copy()
    return np.full([c_dim], _number(attr_default, f"--attr-default {attr_default!r} is neither `mean` nor a number"),
                   np.float32)


def _number(text: str, error: str) -> float:
    """A finite float from `text`, else BadInput(`error`)."""
    try:
        value = float(text)
    except ValueError:
        raise BadInput(error) from None
    if not np.isfinite(value):
        raise BadInput(error)
    return value


def label_vector(net: Network, label: str | None = None, attrs: str | None = None,
                 attr_default: str | None = None) -> np.ndarray:
    """The conditioning vector for `--label` (a class index or comma-separated values) or `--attr Name=v,...`;
    attributes `--attr` leaves unnamed take `attr_default`: `mean` (their frequency in the data) or a number."""
    c_dim = int(net.G_kwargs.get("c_dim", 0))
    if c_dim == 0:
        if label or attrs or attr_default:
            raise BadInput("this network is unconditional; it takes no --label, --attr or --attr-default")
        return np.zeros([0], np.float32)
    if label is not None and (attrs is not None or attr_default is not None):
        raise BadInput("give either --label or --attr/--attr-default, not both")
    if attrs is not None or attr_default is not None:
        names = net.provenance.get("label_names") or []
        if not names:
            raise BadInput("this network has no attribute names; use --label with a vector")
        vec = attribute_defaults(net, attr_default)
        for item in attrs.split(",") if attrs else []:
            name, _, value = item.partition("=")
            if name.strip() not in names:
                raise BadInput(f"unknown attribute {name.strip()!r}; known: {', '.join(names)}")
            vec[names.index(name.strip())] = _number(value, f"attribute value in {item!r} is not a finite number")
        return vec
    if label is None:
        raise BadInput(f"this network is conditional ({c_dim} labels); give --label or --attr")
    values = [_number(p, f"--label {label!r} is not a class index or comma-separated finite numbers")
              for p in label.split(",")]
    if len(values) == 1 and c_dim > 1:
        index = int(values[0])
        if not 0 <= index < c_dim or index != values[0]:
            raise BadInput(f"class {label} is outside 0-{c_dim - 1}")
        vec = np.zeros([c_dim], np.float32)
        vec[index] = 1
        return vec
    if len(values) != c_dim:
        raise BadInput(f"--label has {len(values)} values; this network takes {c_dim}")
    return np.asarray(values, np.float32)


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.inference_mode()
def generate_samples(net: Network, seeds: Sequence[int], psi: float = 1.0, cutoff: int | None = None,
                     noise_mode: str = "const", label: np.ndarray | None = None, batch: int = 8,
                     fused_modconv: bool | None = None, precision: str | Precision = "fp32",
                     translate: tuple[float, float] | None = None, rotate: float | None = None) -> Iterator[Sample]:
    """Yield one Sample per seed, in order. Same inputs (and `precision`) give the same pixels.

    With `noise_mode="random"` each image's noise is drawn from a generator seeded by its own
    seed, so an image does not depend on which batch it falls in. `translate` (fractions of the
    image size) and `rotate` (degrees) move a StyleGAN3 network's input.
    """
    check_psi(psi)
    check_noise_mode(noise_mode)
    check_transform(net, translate, rotate)
    G = net.G_ema
    with input_transform(G, translate, rotate):
        yield from _draw(net, G, seeds, psi, cutoff, noise_mode, label, batch, fused_modconv, precision)


def _draw(net: Network, G: torch.nn.Module, seeds: Sequence[int], psi: float, cutoff: int | None, noise_mode: str,
          label: np.ndarray | None, batch: int, fused_modconv: bool | None,
          precision: str | Precision) -> Iterator[Sample]:
    device = next(G.parameters()).device
    precision = resolve_precision(precision, device)
    c = None
    if label is not None and label.size:
        c = torch.from_numpy(np.asarray(label, np.float32)).to(device)
    if noise_mode == "random":
        batch = 1
    for chunk in _batches(list(seeds), max(1, batch)):
        z = torch.from_numpy(np.stack([seed_to_z(s, G.z_dim) for s in chunk])).to(device, torch.float32)
        cc = c.unsqueeze(0).repeat(len(chunk), 1) if c is not None else None
        generator = torch.Generator(device).manual_seed(chunk[0]) if noise_mode == "random" else None
        if net.architecture.has_wplus:
            ws = G.mapping(z, cc, truncation_psi=psi, truncation_cutoff=cutoff)
            img = synthesize(G, ws, precision, noise_mode=noise_mode, fused_modconv=fused_modconv,
                             generator=generator)
            ws_np = ws.cpu().numpy()
        else:
            img = in_precision(G, z, cc, truncation_psi=psi, precision=precision)
            ws_np = None
        for i, (seed, arr) in enumerate(zip(chunk, to_uint8(img))):
            yield Sample(seed, arr, ws_np[i] if ws_np is not None else None)


def generate_images(net: Network, seeds: Sequence[int], psi: float = 1.0, batch: int = 8,
                    label: np.ndarray | None = None, precision: str | Precision = "fp32") -> Iterator[np.ndarray]:
    """NHWC uint8 batches for `seeds` (for metrics and other bulk consumers)."""
    pending: list[np.ndarray] = []
    for sample in generate_samples(net, seeds, psi=psi, batch=batch, label=label, precision=precision):
        pending.append(sample.image)
        if len(pending) == batch:
            yield np.stack(pending)
            pending = []
    if pending:
        yield np.stack(pending)


def write_samples(net: Network, seeds: Sequence[int], out: Path, psi: float = 1.0, cutoff: int | None = None,
                  noise_mode: str = "const", label: str | None = None, attrs: str | None = None, batch: int = 8,
                  grid: tuple[int, int] | None = None, save_latents: bool = False, fmt: str = "png",
                  on_image: Callable[[], None] | None = None, attr_default: str | None = None,
                  precision: str | Precision = "fp32", translate: tuple[float, float] | None = None,
                  rotate: float | None = None) -> Iterator[dict]:
    """Generate and save `seeds` under `out` (one file per seed, or one grid); yield a record per file.

    Every option is checked here, before the first image is drawn or the caller iterates.
    """
    if grid and len(seeds) > grid[0] * grid[1]:
        raise BadInput(f"{len(seeds)} seeds do not fit a {grid[0]}x{grid[1]} grid")
    side = max(grid or (1,)) * int(net.G_ema.img_resolution)
    if side > MAX_GRID_SIDE:
        raise BadInput(f"--grid {grid[0]}x{grid[1]} of {net.G_ema.img_resolution} px images is {side} px wide; "
                       f"at most {MAX_GRID_SIDE} px")
    if save_latents and not net.architecture.has_wplus:
        raise BadInput(f"--save-latents needs a W+ model; {net.arch} has none")
    check_psi(psi)
    check_noise_mode(noise_mode)
    check_transform(net, translate, rotate)
    check_format(fmt)
    if Path(out).exists() and not Path(out).is_dir():
        raise BadInput(f"--out {out}: exists and is not a folder")
    c = label_vector(net, label, attrs, attr_default)
    precision = resolve_precision(precision, next(net.G_ema.parameters()).device)
    return _save_samples(net, seeds, Path(out), psi, cutoff, noise_mode, c, batch, grid, save_latents, fmt, on_image,
                         precision, translate, rotate)


def _save_samples(net: Network, seeds: Sequence[int], out: Path, psi: float, cutoff: int | None, noise_mode: str,
                  c: np.ndarray, batch: int, grid: tuple[int, int] | None, save_latents: bool, fmt: str,
                  on_image: Callable[[], None] | None, precision: Precision, translate: tuple[float, float] | None,
                  rotate: float | None) -> Iterator[dict]:
    cells = []
    moved = {k: v for k, v in (("translate", translate), ("rotate", rotate)) if v is not None}
    for sample in generate_samples(net, seeds, psi=psi, cutoff=cutoff, noise_mode=noise_mode, label=c, batch=batch,
                                   precision=precision, translate=translate, rotate=rotate):
        record = {"seed": sample.seed, "psi": psi, "noise_mode": noise_mode, **moved}
        if save_latents:
            record["latent"] = str(save_latent(out / f"seed{sample.seed:04d}.npy", sample.ws))
        if grid:
            cells.append(sample.image)
        else:
            record["path"] = str(save_image(sample.image, out / f"seed{sample.seed:04d}.{fmt}", fmt))
            yield record
        if on_image:
            on_image()
    if grid:
        path = save_image(make_grid(np.stack(cells), *grid), out / f"grid.{fmt}", fmt)
        yield {"path": str(path), "seeds": list(seeds), "psi": psi, "noise_mode": noise_mode}

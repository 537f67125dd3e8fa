"""The one way a network is run: seed -> z -> (mapping: labels, psi, cutoff) -> W+ -> synthesis -> image.

`Sampler` binds a network to how it is run (truncation, noise mode, conditioning, precision, batch
size, StyleGAN3 input transform), checks all of it once when it is made, and draws. Every command,
the metrics and the studio draw through it. Batching is part of the result: a matrix product over
eight rows is not bitwise the same as eight products over one, so each method says how it batches.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from facegen_cli.devices import drawing_memory_format
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.images import to_uint8
from facegen_cli.models.stylegan2 import NOISE_MODES
from facegen_cli.networks import Network
from facegen_cli.precision import Precision, check_precision, in_precision, resolve_precision, synthesis_in_precision
from facegen_cli.seeds import check_seeds

PSI_RANGE = (-2.0, 2.0)
# A latent file whose W lies farther from the average W than this many times the typical distance of a sampled
# face draws no face. On the shipped model (w_dim 256) sampled faces lie 13.7 from w_avg on average, 18.9 at most
# over 20,000 seeds (benchmarks/RESULTS.md, "latent bounds"), so the bound is about 137.
LATENT_RADII = 10
RADIUS_SAMPLES = 1000  # sampled faces that measure the typical distance


@dataclass
class Sample:
    """One generated image with what made it."""

    seed: int
    image: np.ndarray  # HWC uint8
    ws: np.ndarray | None  # [num_ws, w_dim] for W+ models


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent NVIDIA's generate.py draws for `seed`: RandomState(seed).randn(z_dim), float64."""
    return np.random.RandomState(seed).randn(z_dim)


def check_psi(psi: float) -> float:
    if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:  # also refuses NaN
        raise BadParameter("psi", f"psi {psi} is outside [{PSI_RANGE[0]:g}, {PSI_RANGE[1]:g}]")
    return psi


def check_noise_mode(noise_mode: str) -> str:
    if noise_mode not in NOISE_MODES:
        raise BadParameter("noise_mode", f"noise_mode {noise_mode!r} is not one of {', '.join(NOISE_MODES)}")
    return noise_mode


def _check_finite(param: str, values: Sequence[float], shown: object) -> None:
    if not all(math.isfinite(v) for v in values):
        raise BadParameter(param, f"{param} {shown} holds a value that is not finite")


@dataclass(frozen=True)
class SampleOptions:
    """How a network is drawn, every value checked here without a network: truncation (psi, and cutoff, the
    W+ entries truncated), noise mode, conditioning as a user gives it (a label: one class index or one value
    per label; or named attributes, those unnamed at `attr_default`: a number or `mean`), precision, images
    per pass, StyleGAN3's input shift and turn. `Sampler.from_options` checks the rest against a network."""

    psi: float = 1.0
    cutoff: int | None = None
    noise_mode: str = "const"
    label: Sequence[float] | None = None
    attrs: Mapping[str, float] | None = None
    attr_default: float | str | None = None
    precision: str | Precision = "fp32"
    batch: int = 8
    translate: tuple[float, float] | None = None
    rotate: float | None = None

    def __post_init__(self) -> None:
        check_psi(self.psi)
        if self.cutoff is not None and self.cutoff < 0:
            raise BadParameter("cutoff", f"cutoff {self.cutoff} is less than 0")
        check_noise_mode(self.noise_mode)
        if isinstance(self.precision, str):
            check_precision(self.precision)
        if self.batch < 1:
            raise BadParameter("batch", f"batch {self.batch} is less than 1")
        if self.translate is not None:
            _check_finite("translate", self.translate, tuple(self.translate))
        if self.rotate is not None:
            _check_finite("rotate", [self.rotate], self.rotate)
        if self.label is not None:
            if self.attrs is not None or self.attr_default is not None:
                raise BadParameter("label", "label: give either a label or attributes, not both")
            _check_finite("label", self.label, list(self.label))
        for name, value in (self.attrs or {}).items():
            _check_finite("attr", [value], f"{name}={value}")
        if self.attr_default is not None and self.attr_default != "mean":
            _check_finite("attr_default", [self.attr_default], self.attr_default)


def has_wplus(net: Network) -> bool:
    """Whether the network takes per-layer latents (style mixing, layer-wise edits)."""
    return net.architecture.has_wplus


def require_wplus(net: Network, what: str) -> None:
    """Raise a clear error when `what` needs W+ and the network has none."""
    if not has_wplus(net):
        raise BadInput(f"{what} needs a W+ model (StyleGAN2); {net.arch} has only z")


def label_count(net: Network) -> int:
    return int(net.G_kwargs.get("c_dim", 0))


def attribute_defaults(net: Network, attr_default: float | str = "mean") -> np.ndarray:
    """Every attribute at `attr_default`: a number, or `mean` for its frequency in the training data."""
    if attr_default == "mean":
        return np.asarray(net.provenance.get("label_means") or [0.5] * label_count(net), np.float32).copy()
    return np.full([label_count(net)], attr_default, np.float32)


def conditioning(net: Network, label: Sequence[float] | None = None, attrs: Mapping[str, float] | None = None,
                 attr_default: float | str | None = None) -> np.ndarray:
    """The conditioning vector from a label (one class index, or one value per label) or from named attributes
    (those not named take `attr_default`: a number, or `mean` (the default) for their frequency in the data);
    `[0]` when the network is unconditional."""
    c_dim = label_count(net)
    by_attrs = attrs is not None or attr_default is not None
    if c_dim == 0:
        if label is not None or by_attrs:
            raise BadParameter("label", "label: this network is unconditional; it takes no label or attributes")
        return np.zeros([0], np.float32)
    if label is not None and by_attrs:
        raise BadParameter("label", "label: give either a label or attributes, not both")
    if by_attrs:
        return _attribute_vector(net, attrs or {}, "mean" if attr_default is None else attr_default)
    if label is None:
        raise BadParameter("label", f"label: this network is conditional ({c_dim} labels); give a label or attributes")
    values = [float(v) for v in label]
    if len(values) == 1 and c_dim > 1:
        if not (values[0].is_integer() and 0 <= values[0] < c_dim):
            raise BadParameter("label", f"label: class {values[0]:g} is outside 0-{c_dim - 1}")
        vec = np.zeros([c_dim], np.float32)
        vec[int(values[0])] = 1
        return vec
    if len(values) != c_dim:
        raise BadParameter("label", f"label has {len(values)} values; this network takes {c_dim}")
    return np.asarray(values, np.float32)


def _attribute_vector(net: Network, attrs: Mapping[str, float], attr_default: float | str) -> np.ndarray:
    names = net.provenance.get("label_names") or []
    if not names:
        raise BadParameter("attr", "attr: this network has no attribute names; give a label vector")
    vec = attribute_defaults(net, attr_default)
    for name, value in attrs.items():
        if name not in names:
            raise BadParameter("attr", f"attr: unknown attribute {name!r}; known: {', '.join(names)}")
        vec[names.index(name)] = value
    return vec


class Sampler:
    """A network bound to how it is run: the options checked by SampleOptions, then here against the network."""

    def __init__(self, net: Network, psi: float = 1.0, cutoff: int | None = None, noise_mode: str = "const",
                 label: np.ndarray | None = None, precision: str | Precision = "fp32", batch: int = 8,
                 translate: tuple[float, float] | None = None, rotate: float | None = None,
                 fused_modconv: bool | None = None):
        SampleOptions(psi=psi, cutoff=cutoff, noise_mode=noise_mode, precision=precision, batch=batch,
                      translate=translate, rotate=rotate)
        self.net, self.G = net, net.G_ema
        self.device = next(self.G.parameters()).device
        self.psi = float(psi)
        self.cutoff = self._check_cutoff(cutoff)
        self.noise_mode = noise_mode
        self.c = self._label(label)
        self.precision = resolve_precision(precision, self.device)
        layout = drawing_memory_format(self.device, self.precision.name)
        if layout != torch.contiguous_format:  # on a copy, so that fp32 users of `net` keep the plain layout
            self.G = copy.deepcopy(self.G).to(memory_format=layout)
        self.batch = batch
        self._check_transform(translate, rotate)
        self.translate, self.rotate = translate, rotate
        self.fused_modconv = fused_modconv

    @classmethod
    def from_options(cls, net: Network, options: SampleOptions) -> Sampler:
        """The Sampler drawing `net` as `options` say (the label or attributes turned into its vector)."""
        c = conditioning(net, options.label, options.attrs, options.attr_default)
        return cls(net, psi=options.psi, cutoff=options.cutoff, noise_mode=options.noise_mode, label=c,
                   precision=options.precision, batch=options.batch, translate=options.translate,
                   rotate=options.rotate)

    @property
    def has_wplus(self) -> bool:
        return has_wplus(self.net)

    def _check_cutoff(self, cutoff: int | None) -> int | None:
        """None, or a count of W+ entries to truncate, at most the network's num_ws."""
        num_ws = getattr(self.G, "num_ws", None)
        if cutoff is not None and num_ws is not None and cutoff > num_ws:
            raise BadParameter("cutoff", f"cutoff {cutoff} is outside 0-{num_ws} (this network has {num_ws} W+ "
                                         "entries)")
        return cutoff

    @functools.cached_property
    def typical_radius(self) -> float:
        """The mean distance of sampled latents (W at psi 1, or z) from their centre (w_avg, or 0)."""
        z = np.random.RandomState(0).randn(RADIUS_SAMPLES, self.G.z_dim).astype(np.float32)
        if not self.has_wplus:
            return float(np.linalg.norm(z, axis=1).mean())
        with torch.inference_mode():
            c = self.labels(len(z)) if self.c.size or not label_count(self.net) else torch.from_numpy(
                np.tile(attribute_defaults(self.net), (len(z), 1))).to(self.device)
            w = self.G.mapping(torch.from_numpy(z).to(self.device), c)[:, 0].cpu().numpy()
        return float(np.linalg.norm(w - self._centre(), axis=1).mean())

    def _centre(self) -> np.ndarray:
        return self.G.mapping.w_avg.cpu().numpy() if self.has_wplus else np.zeros([self.G.z_dim], np.float32)

    def check_latent(self, latent: np.ndarray, name: str) -> np.ndarray:
        """`latent` (W+ or z) when every entry lies within LATENT_RADII typical radii of the centre; else a
        BadInput naming `name` and both distances (a latent that far draws no face: black, white or noise)."""
        far = float(np.linalg.norm(np.asarray(latent, np.float64) - self._centre(), axis=-1).max())
        bound = LATENT_RADII * self.typical_radius
        if far > bound:
            centre = "the average W" if self.has_wplus else "0"
            raise BadInput(f"{name}: latent lies {far:.3g} from {centre}; sampled faces lie {self.typical_radius:.3g} "
                           f"on average, and beyond {bound:.3g} ({LATENT_RADII}x) no face is drawn")
        return latent

    def _label(self, label: np.ndarray | None) -> np.ndarray:
        """The conditioning vector checked against the network; None stays empty (a conditional network then
        refuses only what needs its mapping: seeds, and z of the classic families)."""
        c_dim = label_count(self.net)
        c = np.zeros([0], np.float32) if label is None else np.asarray(label, np.float32).reshape(-1)
        if label is not None and c.size != c_dim:
            raise BadParameter("label", f"label has {c.size} values; this network takes {c_dim}")
        if not np.isfinite(c).all():
            raise BadParameter("label", "label holds a value that is not finite")
        return c

    def require_label(self) -> None:
        """Refuse a conditional network without a label, for what maps seeds or draws a classic family."""
        if label_count(self.net) and not self.c.size:
            raise BadParameter("label", f"label: this network is conditional ({label_count(self.net)} labels); give "
                                        "a label or attributes")

    def _check_transform(self, translate: tuple[float, float] | None, rotate: float | None) -> None:
        """translate/rotate move the input of StyleGAN3 networks only."""
        if translate is None and rotate is None:
            return
        if not hasattr(getattr(self.G, "synthesis", None), "set_transform"):
            raise BadParameter("translate", f"translate and rotate need a StyleGAN3 network; {self.net.arch} has no "
                                            "input transform")

    def labels(self, n: int) -> torch.Tensor | None:
        """The conditioning vector repeated for a batch of `n`, or None for an unconditional network."""
        self.require_label()
        if not self.c.size:
            return None
        return torch.from_numpy(self.c).to(self.device).unsqueeze(0).repeat(n, 1)

    def zs(self, seeds: Sequence[int]) -> np.ndarray:
        """`[len(seeds), z_dim]` float32 z, one per seed."""
        seeds = check_seeds(seeds)
        return np.stack([seed_to_z(s, self.G.z_dim) for s in seeds]).astype(np.float32)

    @torch.inference_mode()
    def map(self, z: np.ndarray) -> np.ndarray:
        """W+ `[N, num_ws, w_dim]` of a stack of z, in one pass of the mapping network."""
        zt = torch.from_numpy(np.asarray(z, np.float32)).to(self.device)
        return self._map(zt).cpu().numpy()

    def _map(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        c = self.labels(len(z)) if c is None else c
        return self.G.mapping(z, c, truncation_psi=self.psi, truncation_cutoff=self.cutoff)

    def seed_latent(self, seed: int) -> np.ndarray:
        """A seed's latent drawn alone: W+ `[num_ws, w_dim]` on a W+ model, else z `[z_dim]`."""
        z = self.zs([seed])
        return self.map(z)[0] if self.has_wplus else z[0]

    def synthesize(self, latents: torch.Tensor, generator: torch.Generator | None = None,
                   c: torch.Tensor | None = None) -> torch.Tensor:
        """NCHW images in [-1, 1] from W+ `[N, num_ws, w_dim]` or z `[N, z_dim]`, in one pass (differentiable);
        `c`: a classic family's labels, one row per z (default: the sampler's label)."""
        with self._transform():
            if self.has_wplus:
                return synthesis_in_precision(self.G, latents, self.precision, noise_mode=self.noise_mode,
                                              fused_modconv=self.fused_modconv, generator=generator)
            return in_precision(self.G, latents, self.labels(len(latents)) if c is None else c,
                                truncation_psi=self.psi, precision=self.precision)

    @torch.inference_mode()
    def images(self, latents: np.ndarray) -> np.ndarray:
        """NHWC uint8 images of a stack of latents (W+ or z), `batch` at a time."""
        out = []
        for start in range(0, len(latents), self.batch):
            chunk = torch.from_numpy(np.asarray(latents[start:start + self.batch], np.float32)).to(self.device)
            out.append(to_uint8(self.synthesize(chunk)))
        return np.concatenate(out)

    @torch.inference_mode()
    def samples(self, seeds: Sequence[int], labels: np.ndarray | None = None) -> Iterator[Sample]:
        """One Sample per seed, in order, `batch` seeds a pass. With noise mode `random` each image's noise
        comes from a generator seeded by its own seed (one image a pass), so it does not depend on its batch.
        `labels` `[len(seeds), c_dim]`: each image's own conditioning, in place of the sampler's one label."""
        seeds = check_seeds(seeds)
        rows = self._label_rows(labels, len(seeds))
        size = 1 if self.noise_mode == "random" else self.batch
        for start in range(0, len(seeds), size):
            chunk = seeds[start:start + size]
            z = torch.from_numpy(self.zs(chunk)).to(self.device)
            c = rows[start:start + size] if rows is not None else None
            generator = torch.Generator(self.device).manual_seed(chunk[0]) if self.noise_mode == "random" else None
            ws = self._map(z, c) if self.has_wplus else None
            img = self.synthesize(ws if ws is not None else z, generator, c)
            ws_np = ws.cpu().numpy() if ws is not None else None
            for i, (seed, arr) in enumerate(zip(chunk, to_uint8(img))):
                yield Sample(seed, arr, ws_np[i] if ws_np is not None else None)

    def _label_rows(self, labels: np.ndarray | None, count: int) -> torch.Tensor | None:
        """Per-image labels checked against the network: one finite row of c_dim values per image."""
        if labels is None:
            return None
        rows = np.asarray(labels, np.float32)
        c_dim = label_count(self.net)
        if rows.shape != (count, c_dim) or not c_dim:
            raise BadParameter("label", f"labels of shape {list(rows.shape)}; this network takes {count} rows of "
                                        f"{c_dim}")
        if not np.isfinite(rows).all():
            raise BadParameter("label", "labels hold a value that is not finite")
        return torch.from_numpy(rows).to(self.device)

    def image_batches(self, seeds: Sequence[int], labels: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """NHWC uint8 batches of `batch` images for `seeds` (for metrics and other bulk consumers), each image
        with its row of `labels` where given."""
        pending: list[np.ndarray] = []
        for sample in self.samples(seeds, labels):
            pending.append(sample.image)
            if len(pending) == self.batch:
                yield np.stack(pending)
                pending = []
        if pending:
            yield np.stack(pending)

    @contextlib.contextmanager
    def _transform(self) -> Iterator[None]:
        """StyleGAN3's input shifted by `translate` and turned by `rotate` degrees, as NVIDIA's gen_images.py
        does it, for the duration; then the transform the network had."""
        if self.translate is None and self.rotate is None:
            yield
            return
        synthesis = self.G.synthesis
        saved = synthesis.input.transform.clone()
        synthesis.set_transform(self.translate or (0.0, 0.0), self.rotate or 0.0)
        try:
            yield
        finally:
            synthesis.input.transform.copy_(saved)

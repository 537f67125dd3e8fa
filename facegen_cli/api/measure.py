"""Measurements: identity distance, EQ-T, FID (KID, precision and recall), and what a network file is."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from facegen_cli.api.draw import open_network
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.networks import Network
from facegen_cli.sampler import check_psi
from facegen_cli.seeds import check_seed

MAX_EQT_SAMPLES = 100_000  # latents EQ-T draws
MAX_EQT_SHIFTS = 1000  # translations per latent
MAX_FID_IMAGES = 1_000_000  # images drawn from a network for one measurement


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


def fid(a: str | Path, b: str | Path, mode: str = "clean", kid: bool = False, pr_k: int | None = None,
        num: int = 50_000, seeds: Sequence[int] | None = None, psi: float = 1.0, batch: int = 32, workers: int = 2,
        precision: str = "fp32", inception: str | Path | None = None, labels_from: str | Path | None = None,
        use_cache: bool = True, device: str = "auto",
        on_progress: Callable[[str, int, int], None] | None = None):
    """FID between A and B (image folders, zips, prepared data sets or networks: `num` random seeds, or
    `seeds`), with KID (`kid`) and precision and recall (`pr_k` neighbours) from the same Inception features;
    data-set features cached unless `use_cache` is off. Returns metrics.fid.FidResult;
    `on_progress(side, done, total)` as each side's images are read."""
    from facegen_cli.devices import resolve_device
    from facegen_cli.metrics.fid import compute_fid
    from facegen_cli.metrics.inception import check_mode
    from facegen_cli.precision import check_precision

    check_mode(mode)
    check_precision(precision)
    check_psi(psi)
    if not 2 <= num <= MAX_FID_IMAGES:
        raise BadParameter("num", f"num {num} is outside 2-{MAX_FID_IMAGES}")
    if batch < 1:
        raise BadParameter("batch", f"batch {batch} is less than 1")
    if workers < 0:
        raise BadParameter("workers", f"workers {workers} is negative")

    def track(name: str, total: int) -> Callable[[int], None]:
        done = [0]

        def advance(count: int) -> None:
            done[0] += count
            on_progress(name, done[0], total)

        return advance

    return compute_fid(a, b, mode=mode, kid=kid, num=num, seeds=seeds, psi=psi, batch=batch, workers=workers,
                       device=resolve_device(device), inception=inception, progress=track if on_progress else None,
                       use_cache=use_cache, precision=precision, labels_from=labels_from, pr_k=pr_k)


def info(network: str | None = None, ops: bool = False) -> dict:
    """What a network file is: architecture, resolution, latent sizes, conditioning and provenance; with `ops`,
    which implementation each op takes here (CUDA kernel or reference) and why."""
    from facegen_cli.networks import describe_network
    from facegen_cli.ops.build import describe_ops

    return describe_ops() if ops else describe_network(network)


def convert(source: str | Path, dest: str | Path, ema_only: bool = False, half: bool = False) -> Path:
    """A foreign network file (NVIDIA, rosinality) or a checkpoint written in facegen's format; returns `dest`."""
    from facegen_cli.convert.importer import convert_file

    return convert_file(Path(source), Path(dest), ema_only=ema_only, half=half)

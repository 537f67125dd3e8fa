"""Project a photo into a network: align it like `prepare`, then optimise W (or W+) and the noise maps.

The recipe follows StyleGAN2's projector: start at the mean W, add decaying noise to W,
ramp the learning rate up and down, keep the noise maps Gaussian with a multi-scale
autocorrelation penalty. The loss is a perceptual distance (see `perceptual.py`) plus pixel MSE.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.images import save_image, to_uint8
from facegen_cli.latent.io import save_latent
from facegen_cli.metrics.identity import identity_distance_or_none
from facegen_cli.metrics.perceptual import Perceptual
from facegen_cli.networks import Network
from facegen_cli.sampler import require_wplus
from facegen_cli.precision import check_precision, resolve_precision, synthesis_in_precision
from facegen_cli.prepare import align
from facegen_cli.prepare.detect import detect_faces, load_photo, pick_faces, smallest_face
from facegen_cli.prepare.human import check_human
from facegen_cli.prepare.landmarks import face_points
from facegen_cli.video import write_frames

ALIGNS = ("ffhq", "none")
MAX_STEPS = 100_000  # of projection or tuning: 200 times the default, already hours on a CPU


@dataclass
class ProjectOptions:
    """Optimisation settings (defaults after StyleGAN2's projector, with a pixel term added)."""

    steps: int = 500
    wplus: bool = False
    lr: float = 0.1
    perceptual_weight: float = 1.0
    pixel_weight: float = 1.0
    noise_weight: float = 1e5
    w_noise: float = 0.05  # initial noise added to W, as a fraction of W's spread
    noise_ramp: float = 0.75
    lr_rampdown: float = 0.25
    lr_rampup: float = 0.05
    seed: int = 0
    precision: str = "fp32"  # of the generator's synthesis; see facegen_cli.precision

    def __post_init__(self) -> None:
        check_optimisation(self)
        if not (math.isfinite(self.noise_weight) and self.noise_weight >= 0):
            raise BadParameter("noise_weight", f"noise_weight {self.noise_weight} must be 0 or more")


def check_optimisation(opts) -> None:
    """The settings projection and tuning share: steps 1-MAX_STEPS, lr in (0, 1], loss weights finite and not
    negative and not both zero (nothing would be optimised), a seed not negative, a known precision."""
    check_precision(opts.precision)
    if not 1 <= opts.steps <= MAX_STEPS:
        raise BadParameter("steps", f"steps {opts.steps} is outside 1-{MAX_STEPS}")
    if not (math.isfinite(opts.lr) and 0 < opts.lr <= 1):
        raise BadParameter("lr", f"lr {opts.lr:g} is outside (0, 1]: Adam's step in W or in weights")
    for name in ("perceptual_weight", "pixel_weight"):
        value = getattr(opts, name)
        if not (math.isfinite(value) and value >= 0):
            raise BadParameter(name, f"{name} {value} must be 0 or more")
    if opts.perceptual_weight == 0 and opts.pixel_weight == 0:
        raise BadParameter("perceptual_weight", "perceptual_weight is 0 and so is the pixel weight: nothing would be "
                                                "optimised; give one of them a positive weight")
    if opts.seed < 0:
        raise BadParameter("seed", f"seed {opts.seed} is negative")


def align_photo(path: str | Path, size: int, how: str = "ffhq",
                on_faces: Callable[[int], None] | None = None) -> np.ndarray:
    """The photo's largest face aligned the FFHQ way at `size` (or, with 'none', its centre square, the
    photo's own pixels when it is already `size` square); `on_faces` hears how many faces were found. A face
    that is not a human's (an animal's) is refused (`prepare.human.check_human`)."""
    if how not in ALIGNS:
        raise BadParameter("align", f"align must be one of {', '.join(ALIGNS)}, got {how!r}")
    rgb = load_photo(path)
    if how == "none":
        if rgb.shape[:2] == (size, size):
            return rgb
        return align.crop(rgb, align.centre_rect(rgb.shape[1], rgb.shape[0]), size)
    found = detect_faces(rgb)
    if on_faces:
        on_faces(len(found))
    faces = pick_faces(found, max_faces=1)
    if not faces:
        h, w = rgb.shape[:2]
        raise FacegenError(f"{path}: no face found (in a {w}x{h} photo a face under about {smallest_face(h, w)} px "
                           "across is too small to find and align); if it is already aligned, use align none")
    check_human(rgb, faces[0].box, str(path))
    return align.align_ffhq(rgb, face_points(rgb, faces[0].box), size)


def goal_image(target: np.ndarray, G, device: torch.device) -> torch.Tensor:
    """The HWC uint8 `target` as a [1, C, H, W] image in [-1, 1] with G's channels."""
    goal = torch.tensor(target).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1
    return goal.mean(1, keepdim=True) if G.img_channels == 1 else goal


def learning_rate(opts: ProjectOptions, t: float) -> float:
    """Cosine ramp-down over the last `lr_rampdown`, linear ramp-up over the first `lr_rampup`."""
    ramp = min(1.0, (1.0 - t) / opts.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return opts.lr * ramp * min(1.0, t / opts.lr_rampup)


def noise_penalty(maps: list[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation of each noise map at one-pixel shifts, over a pyramid down to 8x8
    (zero without maps: StyleGAN3 has no noise inputs)."""
    reg = maps[0].new_zeros([]) if maps else torch.zeros([])
    for noise in maps:
        x = noise[None, None]
        while True:
            reg = reg + (x * x.roll(1, 3)).mean().square() + (x * x.roll(1, 2)).mean().square()
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return reg


@torch.no_grad()
def w_statistics(G, samples: int = 10000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Mean W and the RMS distance of W from it, over random z."""
    device = next(G.parameters()).device
    z = torch.randn([samples, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(device)
    w = G.mapping(z, None)[:, :1]
    mean = w.mean(0, keepdim=True)
    return mean, float(((w - mean).square().sum() / samples).sqrt())


def project(net: Network, target: np.ndarray, opts: ProjectOptions = ProjectOptions(),
            on_step: Callable[[int, np.ndarray | None, dict], None] | None = None,
            frame_every: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Optimise a latent for the HWC uint8 `target`; returns W+ [num_ws, w_dim], the image, distances."""
    require_wplus(net, "projection")
    G = copy.deepcopy(net.G_ema).eval().requires_grad_(False)
    if G.c_dim:
        raise BadInput("projection into conditional networks is not supported")
    device = next(G.parameters()).device
    precision = resolve_precision(opts.precision, device)
    torch.manual_seed(opts.seed)
    goal = goal_image(target, G, device)
    perceptual = Perceptual(device) if opts.perceptual_weight else None
    goal_features = perceptual.features(goal) if perceptual else None
    w_avg, w_std = w_statistics(G, seed=opts.seed)
    w_opt = w_avg.repeat(1, G.num_ws if opts.wplus else 1, 1).clone().requires_grad_(True)
    noisy = [m for m in G.synthesis.modules() if getattr(m, "use_noise", False)]
    for layer in noisy:
        layer.noise_const = layer.noise_const.clone().requires_grad_(True)  # start from the network's own maps
    maps = [layer.noise_const for layer in noisy]
    optimizer = torch.optim.Adam([w_opt, *maps], betas=(0.9, 0.999), lr=opts.lr)
    for step in range(opts.steps):
        t = step / opts.steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(opts, t)
        w_scale = w_std * opts.w_noise * max(0.0, 1.0 - t / opts.noise_ramp) ** 2
        ws = (w_opt + torch.randn_like(w_opt) * w_scale).expand(1, G.num_ws, -1)
        image = synthesis_in_precision(G, ws, precision, noise_mode="const")
        pixel = (image - goal).square().mean()
        dist = perceptual(image, goal_features).sum() if perceptual else pixel.new_zeros([])
        loss = opts.perceptual_weight * dist + opts.pixel_weight * pixel + opts.noise_weight * noise_penalty(maps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for buf in maps:
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        if on_step:
            frame = to_uint8(image)[0] if frame_every and step % frame_every == 0 else None
            on_step(step, frame, {"pixel_mse": pixel.item(), "perceptual": dist.item()})
    with torch.no_grad():
        ws = w_opt.detach().expand(1, G.num_ws, -1)
        image = synthesis_in_precision(G, ws, precision, noise_mode="const")
        own_noise = synthesis_in_precision(net.G_ema, ws, precision, noise_mode="const")
        stats = {"pixel_mse": float((image - goal).square().mean()), "psnr_db": psnr(image, goal),
                 "psnr_db_network_noise": psnr(own_noise, goal)}
        if perceptual:
            stats["perceptual"] = float(perceptual(image, goal_features).sum())
    return ws[0].cpu().numpy(), to_uint8(image)[0], stats


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [-1, 1]."""
    mse = float((a - b).square().mean()) / 4
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


def project_photo(net: Network, target: np.ndarray, opts: ProjectOptions, video: bool = False,
                  on_step: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, np.ndarray, dict, list]:
    """`project` with, when `video`, about 100 progress frames (target | projection) collected."""
    frames: list[np.ndarray] = []

    def step(i: int, frame: np.ndarray | None, stats: dict) -> None:
        if frame is not None:
            frames.append(np.concatenate([target if frame.shape[2] == 3 else target.mean(2, keepdims=True)
                                          .astype(np.uint8), frame], axis=1))
        if on_step:
            on_step(i, stats)

    ws, image, stats = project(net, target, opts, step, max(1, opts.steps // 100) if video else 0)
    return ws, image, stats, frames


def image_stats(image: np.ndarray, target: np.ndarray) -> dict:
    """PSNR of a reconstruction against the aligned photo's own uint8 pixels, and the identity distance
    between their faces (None where either shows no face dlib finds; below SAME_PERSON_THRESHOLD: the same
    person)."""
    err = (image.astype(np.float64) - target.astype(np.float64).mean(2, keepdims=True)
           if image.shape[2] == 1 else image.astype(np.float64) - target)
    mse = float(np.square(err).mean())
    identity = identity_distance_or_none(image, target) if image.shape[2] == 3 else None
    return {"psnr_db": 10 * math.log10(255 ** 2 / mse) if mse else float("inf"), "identity_distance": identity}


def write_projection(out: str | Path, stem: str, target: np.ndarray, image: np.ndarray, ws: np.ndarray,
                     frames: list[np.ndarray]) -> list[Path]:
    """Target, projection, latent (and the progress video when there are frames) under `out`."""
    out = Path(out)
    paths = [save_image(target, out / f"{stem}-target.png"), save_image(image, out / f"{stem}-projected.png"),
             save_latent(out / f"{stem}-projected.npy", ws)]
    if frames:
        paths += write_frames(np.stack(frames), out / f"{stem}-progress.mp4", fps=25)
    return paths


def run_project(net: Network, photo: str | Path, out: str | Path, opts: ProjectOptions = ProjectOptions(),
                how: str = "ffhq", video: bool = False, on_step: Callable[[int, dict], None] | None = None,
                on_faces: Callable[[int], None] | None = None) -> tuple[list[Path], dict]:
    """Align `photo`, project it, write target, projection, latent (and progress video) under `out`."""
    target = align_photo(photo, net.G_ema.img_resolution, how, on_faces)
    ws, image, stats, frames = project_photo(net, target, opts, video, on_step)
    stats.update(image_stats(image, target))
    return write_projection(out, Path(photo).stem, target, image, ws, frames), stats

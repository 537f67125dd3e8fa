"""Latent inputs for mix / interpolate / edit: `seed:N` or `.npy` files, rendered to images.

A W+ model (StyleGAN2, StyleGAN3) works with W+ arrays `[num_ws, w_dim]`; the classic families
(DCGAN, VAE, cGAN) have no W, so their latents are z vectors `[z_dim]`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from facegen_cli import precision as precisions
from facegen_cli.checkpoint import Network
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import read_stdin
from facegen_cli.generate import check_psi
from facegen_cli.images import to_uint8
from facegen_cli.latent.io import load_latent, read_array
from facegen_cli.latent.seeds import count_seeds, parse_seeds, seed_to_z

SEED_PREFIX = "seed:"
MAX_SOURCES = 10_000  # latents one mix / interpolate / edit takes
LAYER_GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 30)}  # resolutions each group styles


def has_wplus(net: Network) -> bool:
    """Whether the network takes per-layer latents (style mixing, layer-wise edits)."""
    return net.architecture.has_wplus


def require_wplus(net: Network, what: str) -> None:
    """Raise a clear error when `what` needs W+ and the network has none."""
    if not has_wplus(net):
        raise BadInput(f"{what} needs a W+ model (StyleGAN2); {net.arch} has only z")


def expand_sources(specs: list[str], limit: int = MAX_SOURCES) -> list[str]:
    """`seed:0-2` -> seed:0, seed:1, seed:2; `-` reads seeds/paths from stdin; files stay as they are.

    At most `limit` latents in all, counted before a seed range is expanded."""
    out: list[str] = []
    for spec in specs:
        if spec == "-":
            tokens = read_stdin("latent").split()
            if not tokens:
                raise BadInput("'-': stdin holds no latents (seed:N or .npy paths)")
            out.extend(expand_sources(tokens, limit - len(out)))
        elif spec.startswith(SEED_PREFIX):
            seeds = spec[len(SEED_PREFIX):]
            if len(out) + count_seeds(seeds) > limit:
                raise BadInput(f"{spec!r} names {count_seeds(seeds)} latents; at most {limit} are taken here")
            out.extend(f"{SEED_PREFIX}{s}" for s in parse_seeds(seeds))
        else:
            out.append(spec)
        if len(out) > limit:
            raise BadInput(f"{len(out)} latents given; at most {limit} are taken here")
    return out


def source_name(spec: str) -> str:
    """A short file-name-safe name: `seed0007` or the file's stem."""
    if spec.startswith(SEED_PREFIX):
        return f"seed{int(spec[len(SEED_PREFIX):]):04d}"
    return Path(spec).stem


def load_z(path: str | Path, z_dim: int) -> np.ndarray:
    """Read a z vector `[z_dim]` (or `[1, z_dim]`) from `.npy`."""
    z = read_array(path, npz_key=None)
    if z.shape not in ((z_dim,), (1, z_dim)):
        raise FacegenError(f"{path}: latent of shape {tuple(z.shape)} does not fit this model, which takes [{z_dim}]")
    return z.reshape(z_dim)


@torch.inference_mode()
def seed_ws(net: Network, seed: int, psi: float = 1.0, c: np.ndarray | None = None) -> np.ndarray:
    """The W+ a seed maps to, `[num_ws, w_dim]`."""
    G = net.G_ema
    device = next(G.parameters()).device
    z = torch.from_numpy(seed_to_z(seed, G.z_dim)[None]).to(device, torch.float32)
    return G.mapping(z, _label(c, 1, device), truncation_psi=check_psi(psi))[0].cpu().numpy()


def read_latent(net: Network, spec: str, psi: float = 1.0, c: np.ndarray | None = None, space: str = "w") -> np.ndarray:
    """One latent for `spec`: W+ on a W+ model (z when `space` is 'z', seeds only), else z."""
    G = net.G_ema
    seed = int(spec[len(SEED_PREFIX):]) if spec.startswith(SEED_PREFIX) else None
    if has_wplus(net) and space == "w":
        return seed_ws(net, seed, psi, c) if seed is not None else load_latent(spec, G.num_ws, G.w_dim)
    if seed is not None:
        return seed_to_z(seed, G.z_dim).astype(np.float32)
    if has_wplus(net):
        raise BadInput(f"{spec}: a latent file holds W; interpolating in z needs seed:N inputs")
    return load_z(spec, G.z_dim)


def layer_resolution(index: int) -> int:
    """The resolution a StyleGAN2 W+ entry styles, counted the way the StyleGAN paper does (two per resolution)."""
    return 4 * 2 ** (index // 2)


def w_resolutions(G: torch.nn.Module | int) -> list[int]:
    """The resolution each W+ entry of generator G styles, which names the coarse / middle / fine groups.

    StyleGAN2 (or a bare W+ length): two entries per resolution. StyleGAN3's layers all sample above their content, so
    an entry counts at the finest power of two its layer's band reaches (2 x its cutoff): entry 0
    (the Fourier input) and entry k (layer k-1) rise geometrically from 4 to the image size, the
    critically sampled layers and ToRGB at the image size."""
    if isinstance(G, int):
        return [layer_resolution(i) for i in range(G)]
    synthesis = G.synthesis
    if not hasattr(synthesis, "layer_names"):
        return [layer_resolution(i) for i in range(G.num_ws)]
    layers = [getattr(synthesis, name) for name in synthesis.layer_names]
    rising = sum(not layer.is_critically_sampled for layer in layers)
    first, last = float(synthesis.input.bandwidth), G.img_resolution / 2
    cutoffs = [first * (last / first) ** min(max(k - 1, 0) / rising, 1) for k in range(G.num_ws)]
    return [2 ** int(math.floor(math.log2(2 * c) + 1e-6)) for c in cutoffs]


def parse_layers(spec: str, G: torch.nn.Module | int) -> list[int]:
    """`coarse|middle|fine` or index ranges like `0-3,8-` -> sorted W+ indices of generator G."""
    resolutions = w_resolutions(G)
    num_ws = len(resolutions)
    chosen: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if part in LAYER_GROUPS:
            lo, hi = LAYER_GROUPS[part]
            found = {i for i in range(num_ws) if lo <= resolutions[i] <= hi}
            if not found:
                raise BadInput(f"this model ({num_ws} layers, up to {resolutions[-1]}px) has no {part} layers")
            chosen |= found
            continue
        lo, sep, hi = part.partition("-")
        try:
            start = int(lo)
            end = (int(hi) if hi else num_ws - 1) if sep else start
        except ValueError:
            raise BadInput(f"--layers {spec!r}: use coarse, middle, fine or ranges like 0-3,8-") from None
        if not 0 <= start <= end < num_ws:
            raise BadInput(f"--layers {part!r} is outside 0-{num_ws - 1} for this model")
        chosen |= set(range(start, end + 1))
    return sorted(chosen)


def _label(c: np.ndarray | None, n: int, device: torch.device) -> torch.Tensor | None:
    if c is None or not c.size:
        return None
    return torch.from_numpy(np.asarray(c, np.float32)).to(device).unsqueeze(0).repeat(n, 1)


def synthesize(net: Network, latents: torch.Tensor, c: np.ndarray | None = None, psi: float = 1.0,
               noise_mode: str = "const", precision: str | precisions.Precision = "fp32") -> torch.Tensor:
    """NCHW images in [-1, 1] from W+ `[N, num_ws, w_dim]` or z `[N, z_dim]` (differentiable)."""
    G = net.G_ema
    precision = precisions.resolve_precision(precision, latents.device)
    if has_wplus(net):
        return precisions.synthesize(G, latents, precision, noise_mode=noise_mode)
    return precisions.in_precision(G, latents, _label(c, latents.shape[0], latents.device), truncation_psi=psi,
                                   precision=precision)


@torch.inference_mode()
def render(net: Network, latents: np.ndarray, c: np.ndarray | None = None, psi: float = 1.0,
           noise_mode: str = "const", batch: int = 8, precision: str | precisions.Precision = "fp32") -> np.ndarray:
    """NHWC uint8 images for a stack of latents (W+ or z, see `read_latent`)."""
    device = next(net.G_ema.parameters()).device
    precision = precisions.resolve_precision(precision, device)
    out = []
    for start in range(0, len(latents), batch):
        chunk = torch.from_numpy(np.asarray(latents[start:start + batch], np.float32)).to(device)
        out.append(to_uint8(synthesize(net, chunk, c, psi, noise_mode, precision)))
    return np.concatenate(out)

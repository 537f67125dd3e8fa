"""A small CNN that reads face attributes (CelebA's 40, UTKFace age/gender), trained on CPU.

Attributes whose labels are all 0/1 are binary (logit, BCE), and so are those labelled -1/+1 (read
as 0/1); others, like age, are numeric (standardised regression). A numeric attribute's training faces can be
drawn balanced over its range (`balance`), so that rare values (the old, the very young) are not read as the common
ones. The file is safetensors with the names and scales in its header.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from facegen_cli.data.dataset import ImageDataset
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.fileio import atomic_path, refuse_special

FORMAT = "facegen-classifier"


class AttributeNet(nn.Module):
    """Four stride-2 conv blocks, global average pooling, one linear head."""

    def __init__(self, outputs: int, width: int = 32):
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@dataclass
class Classifier:
    """A trained AttributeNet with what its outputs mean."""

    net: AttributeNet
    names: list[str]
    binary: list[bool]
    mean: np.ndarray  # numeric attributes are predicted as (value - mean) / std
    std: np.ndarray
    size: int
    info: dict

    def index(self, attr: str) -> int:
        lower = [n.lower() for n in self.names]
        if attr.lower() not in lower:
            raise BadInput(f"the classifier knows no attribute {attr!r} (it has: {', '.join(self.names)})")
        return lower.index(attr.lower())

    def outputs(self, images: torch.Tensor, mirror: bool = True) -> torch.Tensor:
        """[N, attrs] raw outputs (logits, standardised values) for NCHW images in [-1, 1], differentiable; with
        `mirror`, the mean of each image's and its mirror image's (trained on both, the net reads them apart)."""
        x = resize(images.to(torch.float32), self.size)
        net = self.net.eval()
        return (net(x) + net(x.flip(3))) / 2 if mirror else net(x)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, mirror: bool = True) -> np.ndarray:
        """[N, attrs] probabilities (binary) or values (numeric) for NCHW images in [-1, 1] (see `outputs`)."""
        out = self.outputs(images, mirror).cpu().numpy().astype(np.float64)
        return np.where(self.binary, 1 / (1 + np.exp(-out)), out * self.std + self.mean)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Area-downsample (or bilinearly upsample) square images to size x size; gray becomes RGB."""
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[-1] == size:
        return images
    mode = "area" if images.shape[-1] > size else "bilinear"
    return F.interpolate(images, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


def read_labelled(path: str | Path, attrs: list[str] | None, size: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """All images of a prepared dataset at `size` (uint8 NCHW) with their raw label columns."""
    data = ImageDataset(path)
    meta = data.read_meta() or {}
    names = meta.get("label_names")
    if not meta.get("labels") or not names:
        raise FacegenError(f"{path}: no labels with names in dataset.json; prepare the data with its labels "
                           "(facegen prepare's labels option)")
    table = {n: (v if isinstance(v, list) else [v]) for n, v in meta["labels"]}
    cols = list(range(len(names)))
    if attrs:
        lower = [n.lower() for n in names]
        missing = [a for a in attrs if a.lower() not in lower]
        if missing:
            raise BadInput(f"{path}: no attribute {missing[0]!r} (has: {', '.join(names)})")
        cols = [lower.index(a.lower()) for a in attrs]
    keep = [i for i, n in enumerate(data.names) if n in table]
    if len(keep) < 10:
        raise FacegenError(f"{path}: only {len(keep)} labelled images; a classifier needs more")
    labels = np.asarray([[table[data.names[i]][c] for c in cols] for i in keep], np.float64)
    images = torch.stack([resize(data[i][0][None].float(), size)[0].round().to(torch.uint8) for i in keep])
    return images, labels, [names[c] for c in cols]


BALANCE_BINS = 10  # equal-width bins of a numeric attribute's range that `balance` evens out


def balanced_draw(values: np.ndarray, count: int, balance: float) -> torch.Tensor:
    """`count` indices into `values`, drawn with replacement, each with weight (values in its bin)^-balance over
    BALANCE_BINS equal-width bins of their range: 0 draws every value alike, 1 every bin alike."""
    edges = np.linspace(values.min(), values.max(), BALANCE_BINS + 1)[1:-1]
    which = np.digitize(values, edges)
    weights = np.bincount(which, minlength=BALANCE_BINS)[which].astype(np.float64) ** -balance
    return torch.multinomial(torch.from_numpy(weights), count, replacement=True)


def train_classifier(dataset: str | Path, out: str | Path, attrs: list[str] | None = None, size: int = 64,
                     epochs: int = 5, batch: int = 64, lr: float = 2e-3, holdout: float = 0.1, seed: int = 0,
                     balance: float = 0.0, on_epoch: Callable[[int, float], None] | None = None,
                     on_note: Callable[[str], None] | None = None) -> dict:
    """Train on a dataset from `facegen prepare --labels`; save to `out`; return held-out scores. `balance` (0-1)
    draws each epoch's faces by balanced_draw over the one numeric attribute (0: each face once). `on_note` hears
    of labels read another way than they are written (-1/+1 columns as 0/1)."""
    if not 0 < lr <= 1:  # Adam moves each weight by about lr per step
        raise BadParameter("lr", f"lr {lr:g} is outside (0, 1]")
    if not 0 <= balance <= 1:
        raise BadParameter("balance", f"balance {balance:g} is outside 0-1")
    torch.manual_seed(seed)
    images, labels, names = read_labelled(dataset, attrs, size)
    for j, name in enumerate(names):
        if -1 in labels[:, j] and np.isin(labels[:, j], (-1, 1)).all():
            labels[:, j] = (labels[:, j] + 1) / 2
            if on_note:
                on_note(f"{name}: labels -1/+1 read as 0/1 (a binary attribute)")
    binary = [bool(np.isin(labels[:, j], (0, 1)).all()) for j in range(labels.shape[1])]
    numeric = [j for j, b in enumerate(binary) if not b]
    if balance and len(numeric) != 1:
        raise BadParameter("balance", f"balance needs exactly one numeric attribute; {dataset} has "
                                      f"{len(numeric)} among {', '.join(names)}")
    mean = np.where(binary, 0.0, labels.mean(0))
    std = np.where(binary, 1.0, labels.std(0) + 1e-8)
    target = torch.from_numpy((labels - mean) / std).float()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(len(images) * holdout))
    val, train = order[:n_val], order[n_val:]
    net = AttributeNet(len(names))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * -(-len(train) // batch))
    is_bin = torch.tensor(binary)
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        drawn = balanced_draw(labels[train.numpy(), numeric[0]], len(train), balance) if balance else \
            torch.randperm(len(train))
        for idx in train[drawn].split(batch):
            x = images[idx].float() / 127.5 - 1
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
            logits, y = net(x), target[idx]
            loss = torch.where(is_bin, F.binary_cross_entropy_with_logits(logits, y, reduction="none"),
                               (logits - y).square()).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch:
            on_epoch(epoch + 1, loss.item())
    clf = Classifier(net.eval(), names, binary, mean, std, size, {})
    pred = np.concatenate([clf.predict(images[i].float() / 127.5 - 1) for i in val.split(256)])
    truth = labels[val.numpy()]
    scores = {n: (float(((pred[:, j] > 0.5) == truth[:, j]).mean()) if b else float(np.abs(pred[:, j] - truth[:, j]).mean()))
              for j, (n, b) in enumerate(zip(names, binary))}
    clf.info = {"dataset": str(dataset), "train_images": len(train), "holdout_images": n_val, "epochs": epochs,
                **({"balance": balance} if balance else {}),
                "holdout": {n: {"accuracy" if b else "mean_abs_error": scores[n]} for n, b in zip(names, binary)},
                "seconds": round(time.perf_counter() - start, 1)}
    save_classifier(clf, out)
    return {"path": str(out), **clf.info}


def save_classifier(clf: Classifier, path: str | Path) -> Path:
    """Write the weights and their meaning as one safetensors file."""
    header = {"format": FORMAT, "names": clf.names, "binary": clf.binary, "mean": clf.mean.tolist(),
              "std": clf.std.tolist(), "size": clf.size, "width": clf.net.head.in_features // 4, "info": clf.info}
    tensors = {k: v.detach().cpu().contiguous() for k, v in clf.net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={FORMAT: json.dumps(header)})
    return Path(path)


def load_classifier(path: str | Path) -> Classifier:
    """Read a classifier written by `train_classifier` (no pickles involved)."""
    refuse_special(path, "a classifier file")
    expected = "expected an attribute classifier from `facegen classifier train`"
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        if FORMAT not in metadata:
            what = "a facegen network checkpoint" if "facegen" in metadata else "a safetensors file of another kind"
            raise FacegenError(f"{path}: is {what}, not a classifier; {expected}")
        header = json.loads(metadata[FORMAT])
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise FacegenError(f"{path}: no such classifier; train one with `facegen classifier train`") from None
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise FacegenError(f"{path}: not a facegen classifier ({e}); {expected}") from None
    net = AttributeNet(len(header["names"]), header["width"])
    net.load_state_dict(tensors)
    return Classifier(net.eval(), header["names"], header["binary"], np.asarray(header["mean"]),
                      np.asarray(header["std"]), header["size"], header["info"])

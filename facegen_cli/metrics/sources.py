"""What `facegen fid` compares: image folders, zips and prepared datasets, or a network's samples.

Each source is a count and a stream of uint8 image batches (a list of HWC arrays, or one NHWC
array), so decoded files and generated images reach the Inception network the same way.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from facegen_cli.data.dataset import ImageDataset, ImageSource, check_images, decode_image
from facegen_cli.errors import BadParameter, FacegenError

Batches = Iterator[Sequence[np.ndarray]]


@dataclass
class ImageStream:
    """A named set of `count` images; `batches()` starts reading or generating them."""

    name: str
    count: int
    batches: Callable[[], Batches]
    content_key: Callable[[], str] | None = None  # None: not cached (generated images)


def is_image_set(spec: str | os.PathLike) -> bool:
    """A folder or a .zip is a set of images; anything else names a network."""
    path = Path(spec).expanduser()
    return path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip")


class _DecodedImages(torch.utils.data.Dataset):
    """Decodes one file per item, so DataLoader workers share the decoding."""

    def __init__(self, source: ImageSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source.names)

    def __getitem__(self, idx: int) -> np.ndarray:
        name = self.source.names[idx]
        return decode_image(self.source.read(name), f"{self.source.path}/{name}")


def content_digest(source: ImageSource) -> str:
    """A digest of the images' bytes, independent of file names and of folder vs zip."""
    digests = sorted(hashlib.sha256(source.read(name)).digest() for name in source.names)
    return hashlib.sha256(b"".join(digests)).hexdigest()[:32]


def dataset_stream(path: str | os.PathLike, batch: int = 32, workers: int = 2) -> ImageStream:
    """Every image of a folder, zip or prepared dataset, decoded in `workers` processes."""
    source = ImageSource(Path(path).expanduser())
    if not source.names:
        raise FacegenError(f"{source.path}: contains no PNG/JPEG/WebP/BMP images")
    check_images(source)  # a bad file stops here, before any worker starts (or the other side is measured)

    def batches() -> Batches:
        yield from torch.utils.data.DataLoader(_DecodedImages(source), batch_size=batch, num_workers=workers,
                                               collate_fn=list)

    return ImageStream(str(source.path), len(source.names), batches, lambda: content_digest(source))


def random_seeds(num: int) -> list[int]:
    """`num` distinct seeds drawn at random from 0 .. MAX_SEED."""
    from facegen_cli.seeds import MAX_SEED

    if num < 2:
        raise BadParameter("num", f"num {num}: FID needs at least 2 images")
    return sorted(int(s) for s in np.random.default_rng().choice(MAX_SEED + 1, size=num, replace=False))


def network_stream(spec: str, seeds: Sequence[int], psi: float = 1.0, batch: int = 32,
                   device: torch.device | str = "cpu", precision: str = "fp32",
                   labels_from: str | None = None) -> ImageStream:
    """Images a network draws for `seeds` at truncation `psi`, in `precision` (see facegen_cli.precision); a
    conditional network draws each image with the labels of one image of `labels_from`, picked by its seed."""
    from facegen_cli.networks import load_network
    from facegen_cli.sampler import Sampler, check_psi, label_count
    from facegen_cli.seeds import check_seeds

    check_psi(psi)
    seeds = check_seeds(seeds)
    net = load_network(spec, device)
    labels = None
    if label_count(net):
        if labels_from is None:
            raise BadParameter("labels_from", f"labels_from is needed: {spec} is a conditional network, which draws "
                                                  "each image with the labels of one image of that dataset")
        labels = labels_for_seeds(labels_from, seeds, label_count(net))
    elif labels_from is not None:
        raise BadParameter("labels_from", f"labels_from is for conditional networks; {spec} is unconditional")
    sampler = Sampler(net, psi=psi, batch=batch, precision=precision)
    return ImageStream(str(spec), len(seeds), lambda: sampler.image_batches(seeds, labels))


def labels_for_seeds(data: str, seeds: Sequence[int], c_dim: int) -> np.ndarray:
    """For each seed, the dataset.json labels of one image of `data`, chosen at random by that seed (as
    NVIDIA's metrics draw the labels of a conditional generator from its training set)."""
    dataset = ImageDataset(data)
    if not dataset.has_labels:
        raise BadParameter("labels_from", f"labels_from {data}: no labels in its dataset.json")
    dataset.load_labels()
    if dataset.label_dim != c_dim:
        raise BadParameter("labels_from", f"labels_from {data}: {dataset.label_dim} labels per image; the network "
                                          f"takes {c_dim}")
    picks = [int(np.random.default_rng(seed).integers(len(dataset))) for seed in seeds]
    return dataset.labels[picks].astype(np.float32)

"""How well a trivial rule wins the studio's real-or-generated quiz: "the sharper image is real".

    python -m benchmarks.quiz_baseline [--network default] [--first 9001] [--count 1000] [--psi 0.7 1.0] [--quick]

Pairs each real face with a generated one (seeds 0, 1, ...: the quiz's seed pool) and calls the one
with the larger variance of the Laplacian (of its grey image) real; a tie counts half. 50 % is fair.
Real faces are CelebA photos `first`..`first + count - 1` (009001-010000 by default, which the
shipped model never trained on), shown two ways:

- old: what the quiz showed before, the centre square of the raw photo resized with LANCZOS;
- new: what it shows now, the photo FFHQ-aligned by prepare's code at the network's size
  (`studio.quiz.RealFaces`, the training set's recipe); photos without a detectable face are skipped.

Both presentations use the same photos (those the alignment keeps) and the same generated faces.
A control plays the rule on real against real: the new presentation's faces against CelebA photos
`control`.. (008001-009000) aligned the same way in the generated side's place; it should sit near 50 %,
so what the rule still wins on the new presentation is the model's own softness.
Prints one JSON object: per presentation and psi the rule's accuracy with a 95 % Wilson interval,
its AUC (the chance that a random real face is sharper than a random generated one), and the
median sharpness of each side.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from benchmarks import harness
from benchmarks.harness import DATA
from facegen_cli.data.dataset import decode_image
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler
from facegen_cli.studio.quiz import RealFaces

CELEBA = DATA / "celeba10k" / "images"


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: the classic focus measure."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.shape[2] == 3 else image[:, :, 0]
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def old_presentation(path: Path, size: int) -> np.ndarray:
    """The quiz's former real face: the photo's centre square, resized with LANCZOS."""
    rgb = decode_image(path.read_bytes(), path.name)
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return np.asarray(Image.fromarray(rgb[top:top + side, left:left + side]).resize((size, size), Image.LANCZOS))


def wilson(hits: float, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a proportion."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def play(real: np.ndarray, fake: np.ndarray) -> dict:
    """The rule's score on the pairs (real[i], fake[i]), and its AUC over all real x generated pairs."""
    wins = float(np.sum(real > fake) + 0.5 * np.sum(real == fake))
    auc = float((real[:, None] > fake[None, :]).mean() + 0.5 * (real[:, None] == fake[None, :]).mean())
    return {"pairs": len(real), "accuracy": round(wins / len(real), 4), "ci95": wilson(wins, len(real)),
            "auc": round(auc, 4), "median_sharpness_real": round(float(np.median(real)), 1),
            "median_sharpness_generated": round(float(np.median(fake)), 1)}


def aligned_faces(photos: list[Path], size: int, channels: int) -> dict[str, bytes | None]:
    """Each photo's face as the quiz shows it (None where no face is found), aligned from a folder of links."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for photo in photos:
            (folder / photo.name).symlink_to(photo)
        reals = RealFaces(folder, size, channels)
        return {p.name: reals.face(p.name) for p in photos}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--network", default="default")
    parser.add_argument("--first", type=int, default=9001)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--control", type=int, default=8001)
    parser.add_argument("--psi", type=float, nargs="+", default=[0.7, 1.0])
    args = parser.parse_args()
    if args.quick:
        args.count, args.psi = 8, args.psi[:1]
    torch.set_num_threads(1)
    started = time.perf_counter()
    net = load_network(args.network)
    size, channels = net.G_ema.img_resolution, net.G_ema.img_channels
    photos = [CELEBA / f"{i:06d}.jpg" for i in range(args.first, args.first + args.count)]
    aligned = aligned_faces(photos, size, channels)
    kept = [p for p in photos if aligned[p.name] is not None]
    new = np.array([sharpness(decode_image(aligned[p.name])) for p in kept])
    old = np.array([sharpness(old_presentation(p, size)) for p in kept])
    others = aligned_faces([CELEBA / f"{i:06d}.jpg" for i in range(args.control, args.control + args.count)],
                           size, channels)
    control = np.array([sharpness(decode_image(png)) for png in others.values() if png is not None])
    n = min(len(new), len(control))
    results = {"control: real vs real": {"new": play(new[:n], control[:n])}}
    for psi in args.psi:
        fake = np.array([sharpness(s.image) for s in Sampler(net, psi=psi).samples(range(len(kept)))])
        results[f"psi {psi:g}"] = {"old": play(old, fake), "new": play(new, fake)}
    harness.write([{"network": str(net.path or args.network), "size": size,
                    "photos": f"{photos[0].name}-{photos[-1].name}", "photos_used": len(kept),
                    "skipped_no_face": len(photos) - len(kept), "results": results,
                    "seconds": round(time.perf_counter() - started, 1), "machine": harness.machine()}], args.out)


if __name__ == "__main__":
    main()

"""Where a latent or an edit strength stops drawing a face, on the shipped model: the bounds behind
`sampler.LATENT_RADII` and `latent.directions.ODD_STRENGTH` / `MAX_STRENGTH`.

    python -m benchmarks.latent_bounds [--seeds 20000] [--faces 4] [--quick]

Prints one JSON object:
- radius: distances |w - w_avg| of the W that `--seeds` seeds map to (psi 1): mean, median, 99th
  percentile, max; and the mean the sampler measures for its bound (`Sampler.typical_radius`);
- strengths: for each shipped direction named below and each strength, `--faces` faces (seeds 0..) moved
  that far on every W+ entry: the mean |pixel change| against the face itself and the fraction of pixels
  saturated (0 or 255; a face has about 2 %).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks import harness
from facegen_cli.latent.directions import load_direction, move
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler

DIRECTIONS = ("Age", "Smiling", "Male")
STRENGTHS = (3, 5, 10, 20, 30, 50, 100, 300, 1000, -1e6)


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--seeds", type=int, default=20000)
    parser.add_argument("--faces", type=int, default=4)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.faces = 100, 1
    torch.set_num_threads(1)
    began = time.perf_counter()
    net = load_network(None)
    sampler = Sampler(net, batch=8)
    w_avg = net.G_ema.mapping.w_avg.numpy()
    ws = np.concatenate([sampler.map(sampler.zs(range(start, min(start + 1000, args.seeds))))[:, 0]
                         for start in range(0, args.seeds, 1000)])
    far = np.linalg.norm(ws - w_avg, axis=1)
    radius = {"seeds": args.seeds, "mean": float(far.mean()), "median": float(np.median(far)),
              "p99": float(np.percentile(far, 99)), "max": float(far.max()),
              "typical_radius": sampler.typical_radius}
    faces = sampler.map(sampler.zs(range(args.faces)))
    base = sampler.images(faces).astype(np.float64)
    strengths = {}
    for name in DIRECTIONS:
        vector = load_direction(name, net).vector
        for strength in STRENGTHS[:2] if args.quick else STRENGTHS:
            images = sampler.images(np.stack([move(w, vector, strength) for w in faces])).astype(np.float64)
            strengths[f"{name} {strength:g}"] = {"change": round(float(np.abs(images - base).mean()), 1),
                                                 "saturated": round(float(((images <= 1) | (images >= 254)).mean()), 3)}
    harness.write([{"machine": harness.machine(), "radius": radius, "strengths": strengths,
                    "seconds": round(time.perf_counter() - began, 1)}], args.out)


if __name__ == "__main__":
    main()

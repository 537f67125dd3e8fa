"""How old the faces are, as the shipped age regressor reads them: prepared face sets and networks' samples.

    python -m benchmarks.age_spread [--sets DATA.zip ...] [--networks default ...] [--count 2000]
    python -m benchmarks.age_spread --quick      # 50 samples of the default model

A control can only set an age the model draws: this puts the ages of the training faces, of the held-out faces
and of the model's samples side by side. Each set: `--count` of its faces in a seeded order (seed 0), or all;
each network: seeds 0 to count-1 at psi 1. One JSON object per set or network: the median and 90th percentile
of the age reading (years; each face read with its mirror image), the shares read at 40, 50 and 60 or more,
and the share CelebA's classifier reads as not young (P(Young) < 0.5).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from benchmarks import harness
from facegen_cli.data.dataset import ImageDataset
from facegen_cli.estimators.attributes import AGE, shared_reader
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler

BATCH = 100


def quick_needs() -> str | None:
    return None


def spread(batches: Iterable[np.ndarray]) -> dict:
    """Each batch of faces (NHWC uint8) read; the readings summarised."""
    ages, young = [], []
    for faces in batches:
        read = shared_reader().read(faces)
        ages.append(read[AGE])
        young.append(read["Young"])
    ages, young = np.concatenate(ages), np.concatenate(young)
    return {"faces": len(ages), "median_years": round(float(np.median(ages)), 1),
            "p90_years": round(float(np.percentile(ages, 90)), 1),
            **{f"share_{t}_or_more": round(float((ages >= t).mean()), 3) for t in (40, 50, 60)},
            "share_not_young": round(float((young < 0.5).mean()), 3)}


def read_set(path: str, count: int) -> dict:
    data = ImageDataset(path)
    chosen = np.random.RandomState(0).permutation(len(data))[:count]
    batches = (np.stack([data[int(i)][0].permute(1, 2, 0).numpy() for i in chosen[start:start + BATCH]])
               for start in range(0, len(chosen), BATCH))
    return {"set": path, "of": len(data), **spread(batches)}


def read_network(spec: str, count: int) -> dict:
    sampler = Sampler(load_network(spec, "cpu"), psi=1.0)
    batches = (sampler.images(np.stack([sampler.seed_latent(s) for s in range(start, min(count, start + BATCH))]))
               for start in range(0, count, BATCH))
    return {"network": spec, "network_id": sampler.net.network_id, "psi": 1.0, **spread(batches)}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--sets", nargs="*", default=[], help="prepared face sets (zip or folder)")
    parser.add_argument("--networks", nargs="*", default=["default"])
    parser.add_argument("--count", type=int, default=2000, help="faces per set, samples per network")
    args = parser.parse_args()
    if args.quick:
        args.sets, args.networks, args.count = [], ["default"], 50
    records = [read_set(s, args.count) for s in args.sets] + [read_network(n, args.count) for n in args.networks]
    env, load = harness.machine(), harness.load_average()
    harness.write([{**r, "machine": env, "load": load} for r in records], args.out)


if __name__ == "__main__":
    main()

"""Make a training snapshot the shipped default model: G, D and G_ema in fp16, so that
`facegen train DATA --resume-from default` continues the shipped run and `generate` draws G_ema.

    python tools/ship_default.py runs/00000-.../network-snapshot-000002.000.safetensors \
        weights/default.safetensors [--keep-ema weights/default.safetensors]

`--keep-ema FILE` keeps FILE's G_ema bit for bit and takes only G and D from the snapshot: for a
round whose G_ema has not been measured better than the shipped one, so the shipped images and
their FID stay as they are while the next round continues from the run's G and D. The provenance
says which kimg each part has seen: the training loop records the total (`kimg_total`: the run's own kimg
plus what the network it started from had seen); `--start-kimg N` is for snapshots written before it did.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facegen_cli.checkpoint import read_header, save_checkpoint
from facegen_cli.errors import FacegenError
from facegen_cli.networks import load_checkpoint
from facegen_cli.train.snapshots import network_kimg


def ship(snapshot: Path, dest: Path, keep_ema: Path | None = None, start_kimg: float | None = None) -> Path:
    """Write `dest` from `snapshot` (and `keep_ema`'s G_ema when given); returns `dest`. `start_kimg`, for a
    snapshot without `kimg_total`: what the network its run started from had seen."""
    run = load_checkpoint(snapshot, modules=("G_ema", "G", "D"))
    if run.G is None or run.D is None:
        raise FacegenError(f"{snapshot}: holds no G and D; ship a training snapshot")
    if start_kimg is not None:
        total = start_kimg + float(run.provenance.get("kimg", 0.0))
    else:
        total = network_kimg(run.provenance)
        if total is None:
            raise FacegenError(f"{snapshot}: its provenance says no kimg; give --start-kimg")
    total = round(total, 3)
    source = f"{run.provenance.get('run')}/{run.provenance.get('snapshot', snapshot.name)}"  # a round names its own
    # The run's total (`kimg_total`) becomes `kimg`; older GPU rounds' lineage keys (their start and a path on
    # the device) are dropped with it.
    stale = ("date", "id", "start_kimg", "kimg_total", "resumed_from")
    provenance = {**{k: v for k, v in run.provenance.items() if k not in stale}, "kimg": total, "snapshot": source}
    G_ema = run.G_ema
    if keep_ema is not None:
        kept = load_checkpoint(keep_ema)
        if kept.arch != run.arch or kept.G_kwargs != run.G_kwargs:
            raise FacegenError(f"{keep_ema}: its G_ema is not the snapshot's architecture")
        G_ema = kept.G_ema
        provenance = {**{k: v for k, v in kept.provenance.items() if k != "date"},
                      "G_D_snapshot": source, "G_D_kimg": total}
    return save_checkpoint(dest, run.arch, run.G_kwargs, G_ema, G=run.G, D=run.D, D_kwargs=run.D_kwargs,
                           provenance=provenance, half=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--keep-ema", type=Path, help="keep this file's G_ema (bit for bit)")
    parser.add_argument("--start-kimg", type=float, default=None,
                        help="for a snapshot without kimg_total: kimg of the network its run started from")
    args = parser.parse_args(argv)
    try:
        path = ship(args.snapshot, args.dest, args.keep_ema, args.start_kimg)
    except FacegenError as e:
        print(f"ship_default: error: {e}", file=sys.stderr)
        return 1
    print(path)
    print(read_header(path)["provenance"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grow a training run wider without changing what it computes: a new resumable run folder with a larger channel
base and cap, whose G, G_ema and D give the same outputs at its first step (facegen_cli/train/grow.py says how).

    .venv/bin/python tools/grow_run.py SRC_RUN DST_RUN --cbase 4096 --cmax 256 [--seed 0]
    facegen train DATA --out DST_PARENT --resume DST_RUN     # trains it on

SRC_RUN is a run folder (its latest snapshot) or one snapshot; it is only read. Prints the new snapshot.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.train.grow import grow_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="run folder or snapshot to grow")
    parser.add_argument("dest", type=Path, help="the new run folder (absent or empty)")
    parser.add_argument("--cbase", type=int, required=True, help="channel base of the grown run")
    parser.add_argument("--cmax", type=int, required=True, help="channel cap of the grown run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new channels' initial weights")
    args = parser.parse_args(argv)
    try:
        path = grow_run(args.source, args.dest, args.cbase, args.cmax, args.seed)
    except FacegenError as e:
        text = e.naming(f"--{e.param}") if isinstance(e, BadParameter) else str(e)
        print(f"grow_run: error: {text}", file=sys.stderr)
        return e.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

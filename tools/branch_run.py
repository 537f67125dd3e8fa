"""Branch a training run: a new resumable run folder from one snapshot, grown wider (the same function, more
channels: facegen_cli/train/grow.py) or with other hyperparameters (learning rates, R1 gamma, EMA half-life:
facegen_cli/train/retune.py), for arms that start from the same trained state.

    .venv/bin/python tools/branch_run.py SRC_RUN DST_RUN --cbase 4096 --cmax 256 [--seed 0]
    .venv/bin/python tools/branch_run.py SRC_RUN DST_RUN [--glr 0.001] [--dlr 0.001] [--gamma 0.05] [--ema-kimg 40]
    facegen train DATA --out DST_PARENT --resume DST_RUN     # trains it on

SRC_RUN is a run folder (its latest snapshot) or one snapshot; it is only read. Prints the new snapshot.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.train.grow import grow_run
from facegen_cli.train.retune import SETTINGS, retune_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="run folder or snapshot to branch")
    parser.add_argument("dest", type=Path, help="the new run folder (absent or empty)")
    parser.add_argument("--cbase", type=int, help="grow: channel base of the new run")
    parser.add_argument("--cmax", type=int, help="grow: channel cap of the new run")
    parser.add_argument("--seed", type=int, default=0, help="grow: seed of the new channels' initial weights")
    for name in SETTINGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name, help=f"retune: the new {name}")
    args = parser.parse_args(argv)
    changes = {name: getattr(args, name) for name in SETTINGS}
    widths = args.cbase is not None or args.cmax is not None
    try:
        if widths and any(value is not None for value in changes.values()):
            raise BadParameter("cbase", "cbase: give widths or hyperparameters, not both (branch twice)")
        if widths and (args.cbase is None or args.cmax is None):
            raise BadParameter("cbase" if args.cbase is None else "cmax", "grow: give both cbase and cmax")
        path = (grow_run(args.source, args.dest, args.cbase, args.cmax, args.seed) if widths
                else retune_run(args.source, args.dest, **changes))
    except FacegenError as e:
        text = e.naming(f"--{e.param.replace('_', '-')}") if isinstance(e, BadParameter) else str(e)
        print(f"branch_run: error: {text}", file=sys.stderr)
        return e.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

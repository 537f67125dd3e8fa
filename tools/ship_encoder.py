"""Ship an encoder trained for a shipped network: its weights in fp16, no optimizer state, its training record
kept, at weights/encoders/<network id>.safetensors (what `project --encoder default` finds).

    .venv/bin/python tools/ship_encoder.py TRAINED.safetensors [--network default] [--heldout '{"psnr_db": ...}']

--heldout adds the benchmark's numbers (benchmarks/encoder.py) to the record, as JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facegen_cli.encoder.store import find_encoder, save_encoder, shipped_encoder_path
from facegen_cli.networks import load_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trained", type=Path)
    parser.add_argument("--network", default="default")
    parser.add_argument("--heldout", type=json.loads, default=None, help="held-out numbers, JSON")
    args = parser.parse_args()
    net = load_network(args.network)
    found = find_encoder(args.trained, net)
    training = dict(found.training)
    if args.heldout is not None:
        training["heldout"] = args.heldout
    print(save_encoder(shipped_encoder_path(net), found.encoder, found.network_id, training, half=True))


if __name__ == "__main__":
    main()

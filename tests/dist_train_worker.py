"""One rank of the distributed training test; run under `python -m torch.distributed.run`.

usage: dist_train_worker.py DATA OUT REPORTS KIMG
Trains the tiny config with ADA active, then writes REPORTS/rank{R}.json: a hash of every
tensor of G, D and G_ema, the augmentation probability, the kimg counter and the real-batch sizes this rank saw.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions


def state_hash(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    data, out, reports, kimg = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    torch.set_num_threads(1)
    opts = TrainOptions(data=data, out=out, kimg=kimg, snap=kimg, batch=4, cbase=512, cmax=64, z_dim=64, w_dim=64,
                        map=2, workers=0, device="cpu", aug="ada")
    trainer = Trainer(opts, log=lambda msg: None)
    trainer.augment.p.fill_(0.3)  # every rank augments, each with its own random draws
    seen = set()
    accumulate = trainer.loss.accumulate

    def spy(phase, real, *args, **kwargs):
        seen.add(real.shape[0])
        return accumulate(phase, real, *args, **kwargs)

    trainer.loss.accumulate = spy
    trainer.run()
    rank = trainer.env.rank
    report = {name: state_hash(getattr(trainer, name)) for name in ("G", "D", "G_ema")}
    report.update(augment_p=float(trainer.augment.p), kimg=trainer.cur_nimg / 1000, world_size=trainer.env.world_size,
                  real_batch_sizes=sorted(seen))
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

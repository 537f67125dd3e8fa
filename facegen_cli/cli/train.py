"""`facegen train`: train a model on a folder or zip from `facegen prepare`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, device_option, emit


def train(
    data: Path = typer.Argument(..., help="Dataset folder or zip (from facegen prepare, or same-size images)."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Folder that receives the run folders."),
    model: str = typer.Option("stylegan2", "--model", help="Model family."),
    cfg: str = typer.Option("small", "--cfg", help="Preset: small (32-128 px), paper256, stylegan2 (1024 px)."),
    res: Optional[int] = typer.Option(None, "--res", help="Resolution (default: the data's)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Total batch size over all processes."),
    batch_gpu: Optional[int] = typer.Option(None, "--batch-gpu", help="Samples per pass; smaller accumulates gradients."),
    kimg: float = typer.Option(25000, "--kimg", help="Train for this many thousand real images (fractions allowed)."),
    glr: Optional[float] = typer.Option(None, "--glr", help="Generator learning rate."),
    dlr: Optional[float] = typer.Option(None, "--dlr", help="Discriminator learning rate."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="R1 weight (default: 0.0002 * res^2 / batch)."),
    map_layers: Optional[int] = typer.Option(None, "--map", help="Mapping network depth."),
    cbase: Optional[int] = typer.Option(None, "--cbase", help="Channel base."),
    cmax: Optional[int] = typer.Option(None, "--cmax", help="Channel maximum."),
    mirror: bool = typer.Option(False, "--mirror", help="Add x-flipped copies of the data."),
    cond: bool = typer.Option(False, "--cond", help="Train on the dataset.json labels."),
    aug: str = typer.Option("ada", "--aug", help="ada or noaug."),
    target: float = typer.Option(0.6, "--target", help="ADA target for E[sign(D(real))]."),
    snap: float = typer.Option(50, "--snap", help="Snapshot every N kimg."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Checkpoint, run folder, or 'latest'."),
    fp16: bool = typer.Option(False, "--fp16", help="Mixed precision in the 4 highest resolutions (CUDA)."),
    workers: int = typer.Option(2, "--workers", help="Data loading processes."),
    device: str = device_option,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved options and exit."),
) -> None:
    """Train StyleGAN2 (or another family) with snapshots, stats and exact resume."""
    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.options import TrainOptions

    opts = TrainOptions(data=str(data), out=str(out), model=model, cfg=cfg, res=res, batch=batch, batch_gpu=batch_gpu,
                        kimg=kimg, glr=glr, dlr=dlr, gamma=gamma, map=map_layers, cbase=cbase, cmax=cmax, mirror=mirror,
                        cond=cond, aug=aug, target=target, snap=snap, seed=seed, fp16=fp16, workers=workers,
                        device=device)
    trainer = Trainer(opts, resume=resume, dry_run=dry_run, log=lambda msg: console.print(msg, markup=False))
    if dry_run:
        emit(trainer.opts.to_json())
        return
    with console.status("training") as status:
        def show(s: dict) -> None:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in s.items() if k != "kimg")
            status.update(f"kimg {s['kimg']:.3f}/{trainer.opts.kimg:g}  {losses}")

        last = trainer.run(on_step=show)
    if last is not None:
        emit(str(last))

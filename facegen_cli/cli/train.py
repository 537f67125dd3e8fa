"""`facegen train`: train a model on a folder or zip from `facegen prepare`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from facegen_cli.cli.common import console, device_option, emit, out_option, train_precision_option
from facegen_cli.seeds import MAX_SEED


def train(
    data: Path = typer.Argument(..., exists=True,
                                help="Dataset folder or zip (from facegen prepare, or same-size images)."),
    out: Path = out_option(Path("runs"), "Folder that receives the run folders."),
    model: Optional[str] = typer.Option(None, "--model", help="stylegan2 (default), stylegan3, dcgan, cgan, acgan, "
                                        "vae or wgan-gp; --cfg stylegan3-t|r picks stylegan3."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Preset: small (32-128 px, the default), paper256, "
                                      "stylegan2 (1024 px); stylegan3-t, stylegan3-r (NVIDIA's StyleGAN3 configs)."),
    res: Optional[int] = typer.Option(None, "--res", help="Resolution, 4-65536 px (default: the data's)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Total batch size over all processes, 1-65536."),
    batch_gpu: Optional[int] = typer.Option(None, "--batch-gpu",
                                            help="Samples per pass, 1-65536; smaller accumulates gradients."),
    kimg: float = typer.Option(25000, "--kimg", help="Train for this many thousand real images, (0, 10^6] "
                                                     "(fractions allowed)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Also stop after this many minutes of "
                                            "training, (0, 10^6], with a snapshot (a time limit beside --kimg)."),
    glr: Optional[float] = typer.Option(None, "--glr", help="Generator learning rate, (0, 1]."),
    dlr: Optional[float] = typer.Option(None, "--dlr", help="Discriminator learning rate, (0, 1]."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="R1 weight, 0-10^4 (default: 0.0002 * res^2 / "
                                          "batch); wgan-gp: gradient-penalty weight (default 10)."),
    map_layers: Optional[int] = typer.Option(None, "--map", help="Mapping network depth, 1-64."),
    cbase: Optional[int] = typer.Option(None, "--cbase", help="Channel base, 1-1048576 (2^20)."),
    cmax: Optional[int] = typer.Option(None, "--cmax", help="Channel maximum, 1-65536."),
    mirror: bool = typer.Option(False, "--mirror", help="Add x-flipped copies of the data."),
    cond: bool = typer.Option(False, "--cond", help="Train on the dataset.json labels."),
    aug: Optional[str] = typer.Option(None, "--aug", help="ada or noaug (default: ada for stylegan2)."),
    pl_weight: Optional[float] = typer.Option(None, "--pl-weight", help="stylegan2: path-length regularisation "
                                              "weight, 0-10^4 (default 2; 0 turns it off)."),
    style_mixing: Optional[float] = typer.Option(None, "--style-mixing", help="stylegan2: style-mixing "
                                                 "probability, 0-1 (default 0.9; 0 turns it off)."),
    target: float = typer.Option(0.6, "--target", help="ADA target for E[sign(D(real))], 0-1."),
    snap: float = typer.Option(50, "--snap", help="Snapshot every N kimg, (0, 10^6]."),
    seed: int = typer.Option(0, "--seed", help=f"Random seed, 0-{MAX_SEED}."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a run: checkpoint, run folder, or "
                                         "'latest' (the newest run in --out)."),
    resume_from: Optional[str] = typer.Option(None, "--resume-from", help="Start a new run from a network's weights "
                                              "(file, published name or 'default'): fine-tuning."),
    freezed: int = typer.Option(0, "--freezed", help="With --resume-from: freeze D's first N layers (from the image)."),
    fp16: bool = typer.Option(False, "--fp16", help="NVIDIA's fp16 layers in the 4 highest resolutions (CUDA only; "
                              "on a CPU use --precision bf16)."),
    workers: int = typer.Option(2, "--workers", help="Data loading processes, 0-256."),
    z_dim: Optional[int] = typer.Option(None, "--latent", help="Latent size, 1-65536 (classic: 128)."),
    width: Optional[int] = typer.Option(None, "--width", help="Classic: feature maps next to the image, "
                                        "1-65536 (64)."),
    spectral_norm: bool = typer.Option(False, "--spectral-norm", help="dcgan/cgan/acgan/wgan-gp: spectral norm in D."),
    pixel_norm: bool = typer.Option(False, "--pixel-norm", help="Classic: pixel norm after each G block."),
    mbstd: bool = typer.Option(False, "--mbstd", help="dcgan/cgan/acgan/wgan-gp: minibatch stddev layer in D."),
    beta: Optional[float] = typer.Option(None, "--beta", help="vae: weight of the KL term, 0-10^4 (1)."),
    recon: Optional[str] = typer.Option(None, "--recon", help="vae: reconstruction loss, bce or mse (bce)."),
    device: str = device_option,
    precision: Optional[str] = train_precision_option,
    channels_last: bool = typer.Option(True, "--channels-last/--contiguous", help="On a CPU: train in the "
                                       "channels_last layout (faster), or in contiguous NCHW (the plain reference)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved options and exit."),
) -> None:
    """Train StyleGAN2, StyleGAN3 (or another family) with snapshots, stats and exact resume."""
    from facegen_cli import api
    from facegen_cli.train.options import TrainOptions

    extras = dict(width=width, spectral_norm=spectral_norm or None, pixel_norm=pixel_norm or None,
                  mbstd=mbstd or None, beta=beta, recon=recon)
    opts = TrainOptions(data=str(data), out=str(out), model=model, cfg=cfg, res=res, batch=batch, batch_gpu=batch_gpu,
                        kimg=kimg, glr=glr, dlr=dlr, gamma=gamma, map=map_layers, cbase=cbase, cmax=cmax, mirror=mirror,
                        cond=cond, aug=aug, target=target, snap=snap, seed=seed, fp16=fp16, workers=workers,
                        device=device, precision=precision, channels_last=channels_last, z_dim=z_dim,
                        resume_from=resume_from, freezed=freezed, minutes=minutes, pl_weight=pl_weight,
                        style_mixing=style_mixing, model_kwargs={k: v for k, v in extras.items() if v is not None})

    def log(msg: str) -> None:
        console.print(msg, markup=False)

    with console.status("training") as status:
        def show(stats: dict, total: float) -> None:
            losses = "  ".join(f"{k} {v:.3f}" for k, v in stats.items() if k != "kimg")
            status.update(f"kimg {stats['kimg']:.3f}/{total:g}  {losses}")

        done = api.train(opts, resume, dry_run=dry_run, log=log, on_step=show)
    if dry_run:
        emit(done.options.to_json())
    for path in done.written:  # every file the run wrote, its last checkpoint last
        emit(str(path))

"""Training options: presets (`--cfg`), resolution of automatic values, run folders."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from facegen_cli.errors import BadParameter, Bounds
from facegen_cli.precision import check_precision

# NVIDIA's stylegan3 train.py, configs T and R alike (R's changes to G are in train/families.py); the EMA
# over batch * 10 / 32 kimg and the R1 weight from the resolution, as for `small`.
STYLEGAN3 = dict(z_dim=512, w_dim=512, map=2, cbase=32768, cmax=512, batch=32, glr=0.0025, dlr=0.002,
                 ema_kimg=None, gamma=None)
PRESETS: dict[str, dict] = {
    # 32-128 px on small data: narrow, shallow mapping, quick on a CPU or one GPU.
    "small": dict(z_dim=256, w_dim=256, map=2, cbase=4096, cmax=256, batch=16, glr=0.0025, dlr=0.0025,
                  ema_kimg=None, gamma=None),
    # The StyleGAN2-ADA paper's 256 px setting.
    "paper256": dict(z_dim=512, w_dim=512, map=8, cbase=16384, cmax=512, batch=64, glr=0.0025, dlr=0.0025,
                     ema_kimg=20, gamma=1.0),
    # Config F of the StyleGAN2 paper (1024 px FFHQ).
    "stylegan2": dict(z_dim=512, w_dim=512, map=8, cbase=32768, cmax=512, batch=32, glr=0.002, dlr=0.002,
                      ema_kimg=10, gamma=10.0),
    "stylegan3-t": STYLEGAN3,
    "stylegan3-r": STYLEGAN3,
}
# Presets made for one model: --cfg picks it, and that model trains with no other preset.
PRESET_MODELS = {"stylegan3-t": "stylegan3", "stylegan3-r": "stylegan3"}
# The range of each number a run may be given, (low, high, whether low itself is allowed): learning rates are
# Adam steps, probabilities 0-1, kimg, snap and ema_kimg thousands of images (1e6: a billion), minutes under
# two years, batches up to 65536 images, the R1 / gradient-penalty, path-length and VAE KL weights up to 1e4;
# images of 4 to 65536 px, mapping networks up to 64 layers deep, channel counts and latent sizes up to 65536
# (the channel base, from which each resolution's count is divided, up to 2^20), up to 256 loading processes.
# width and beta are model_kwargs of the classic families.
BOUNDS: Bounds = {
    "kimg": (0, 1e6, False), "snap": (0, 1e6, False), "minutes": (0, 1e6, False), "ema_kimg": (0, 1e6, True),
    "glr": (0, 1, False), "dlr": (0, 1, False), "gamma": (0, 1e4, True), "pl_weight": (0, 1e4, True),
    "target": (0, 1, True), "style_mixing": (0, 1, True), "batch": (1, 65536, True), "batch_gpu": (1, 65536, True),
    "res": (4, 65536, True), "map": (1, 64, True), "cbase": (1, 2 ** 20, True), "cmax": (1, 65536, True),
    "z_dim": (1, 65536, True), "w_dim": (1, 65536, True), "width": (1, 65536, True), "workers": (0, 256, True),
    "beta": (0, 1e4, True),
}


@dataclass
class TrainOptions:
    """Everything a run needs; written to training_options.json and restored on resume."""

    data: str
    out: str = "runs"
    model: str | None = None  # None: the model the --cfg preset is made for, else stylegan2
    cfg: str | None = None  # None: the model's own preset (stylegan3-t for stylegan3), else small
    res: int | None = None
    batch: int | None = None
    batch_gpu: int | None = None
    kimg: float = 25000
    glr: float | None = None
    dlr: float | None = None
    gamma: float | None = None
    map: int | None = None
    cbase: int | None = None
    cmax: int | None = None
    z_dim: int | None = None
    w_dim: int | None = None
    ema_kimg: float | None = None
    mirror: bool = False
    cond: bool = False
    aug: str | None = None  # ada or noaug; default per family
    target: float = 0.6
    snap: float = 50
    seed: int = 0
    fp16: bool = False
    precision: str | None = None  # fp32, bf16 or auto (stylegan2 only); None: fp32, or a resumed run's own
    channels_last: bool = True  # on a CPU, weights and activations in channels_last (False: contiguous NCHW)
    workers: int = 2
    device: str = "auto"
    resume_from: str | None = None  # network whose weights start a new run (fine-tuning)
    freezed: int = 0  # D layers nearest the image that stay as they are (fine-tuning)
    minutes: float | None = None  # stop after this much training time, with a snapshot (beside kimg)
    pl_weight: float | None = None  # stylegan2: path-length regularisation weight (None: 2; 0 turns it off)
    style_mixing: float | None = None  # stylegan2: style-mixing probability (None: 0.9)
    model_kwargs: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def resolve(opts: TrainOptions, resolution: int, world_size: int = 1,
            family_defaults: dict | None = None) -> TrainOptions:
    """Fill automatic values from the model family, the preset and the data, and check the combination."""
    opts = replace(opts, model=model_of(opts), cfg=preset_of(opts),
                   precision=check_precision(opts.precision or "fp32"))
    if opts.precision == "bf16" and (opts.model != "stylegan2" or opts.fp16):
        raise BadParameter("precision", "precision bf16 trains stylegan2 without NVIDIA's fp16 blocks; "
                           + ("leave fp16 off" if opts.fp16 else f"a {opts.model} model trains in fp32"))
    if opts.aug not in (None, "ada", "noaug"):
        raise BadParameter("aug", f"aug must be ada or noaug, got {opts.aug!r}")
    check_regularisers(opts)
    values = asdict(opts)
    for key, default in {**PRESETS[opts.cfg], "aug": "ada", **(family_defaults or {})}.items():
        if values.get(key) is None:
            values[key] = default
    values["res"] = values["res"] or resolution
    if values["res"] != resolution:
        raise BadParameter("res", f"res {values['res']} differs from the data's {resolution}px images; "
                                  "re-run facegen prepare")
    batch = values["batch"]
    if batch % world_size:
        raise BadParameter("batch", f"batch {batch} does not split evenly across {world_size} processes")
    per_rank = batch // world_size
    values["batch_gpu"] = values["batch_gpu"] or per_rank
    if per_rank % values["batch_gpu"]:
        raise BadParameter("batch_gpu", f"batch_gpu {values['batch_gpu']} must divide the per-process batch {per_rank}")
    if values["gamma"] is None:  # NVIDIA's heuristic for the R1 weight
        values["gamma"] = round(0.0002 * values["res"] ** 2 / batch, 4)
    if values["ema_kimg"] is None:
        values["ema_kimg"] = batch * 10 / 32
    return TrainOptions(**values)


def check_regularisers(opts: TrainOptions) -> None:
    """pl_weight and style_mixing belong to stylegan2's loss (StyleGAN3 and the classic families use neither)."""
    given = [name for name, value in (("pl_weight", opts.pl_weight), ("style_mixing", opts.style_mixing))
             if value is not None]
    if given and opts.model != "stylegan2":
        raise BadParameter(given[0], f"{given[0]} sets stylegan2's loss; a {opts.model} model has none")


def model_of(opts: TrainOptions) -> str:
    """The family a run trains: --model, else the one its --cfg preset is made for, else stylegan2."""
    return opts.model or PRESET_MODELS.get(opts.cfg, "stylegan2")


def preset_of(opts: TrainOptions) -> str:
    """--cfg, else the model's own preset (small where it has none); refuses a preset made for another model."""
    model = model_of(opts)
    own = [name for name, made_for in PRESET_MODELS.items() if made_for == model]
    cfg = opts.cfg or (own[0] if own else "small")
    if cfg not in PRESETS:
        raise BadParameter("cfg", f"cfg {cfg!r} is not a preset; use one of {', '.join(PRESETS)}")
    if own and cfg not in own:
        raise BadParameter("cfg", f"cfg {cfg}: a {model} model trains with the {' or '.join(own)} preset")
    if PRESET_MODELS.get(cfg, model) != model:
        raise BadParameter("cfg", f"cfg {cfg} trains a {PRESET_MODELS[cfg]} model, not {model}")
    return cfg


def dataset_name(data: str) -> str:
    name = Path(data.rstrip("/")).name
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(name).stem).strip("-") or "data"


def new_run_dir(opts: TrainOptions) -> Path:
    """`OUT/00003-small-utkface-gamma1`: the next free index in OUT."""
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    index = max(taken, default=-1) + 1
    tag = opts.cfg if opts.model in ("stylegan2", "stylegan3") else opts.model
    run = out / f"{index:05d}-{tag}-{dataset_name(opts.data)}-gamma{opts.gamma:g}"
    run.mkdir()
    return run

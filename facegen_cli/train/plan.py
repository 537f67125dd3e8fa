"""The first step of a training run: its options checked and resolved against the data and whatever the
run starts from, before any network, optimizer or file is made (what `facegen train --dry-run` prints)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from facegen_cli.data.dataset import ImageDataset
from facegen_cli.devices import resolve_device
from facegen_cli.errors import BadInput, BadParameter, check_bounds
from facegen_cli.networks import Network, load_network
from facegen_cli.precision import check_precision
from facegen_cli.seeds import check_seed
from facegen_cli.train import snapshots
from facegen_cli.train.distributed import DistEnv, process_env
from facegen_cli.train.families import Family, get_family
from facegen_cli.train.options import BOUNDS, TrainOptions, model_of, resolve

Log = Callable[[str], None]
RESUME_CHANGES = ("kimg", "out", "device", "workers", "minutes", "precision")  # what a resumed run takes anew


@dataclass(frozen=True)
class TrainPlan:
    """A run's resolved options and what it starts from; `Trainer` opens it."""

    opts: TrainOptions  # every automatic value filled in
    family: Family
    dataset: ImageDataset  # opened once, with its labels when the run is conditional
    G_kwargs: dict
    D_kwargs: dict
    device: torch.device
    env: DistEnv
    resume: Path | None = None  # the checkpoint of the run this one continues
    source: Network | None = None  # the network a new run starts from (opts.resume_from)


def quiet(msg: str) -> None:
    """A log that says nothing (every rank but the first)."""


def plan_training(opts: TrainOptions, resume: str | None = None, log: Log = print) -> TrainPlan:
    """Check and resolve `opts` against the data and the run (`resume`) or network (`opts.resume_from`) it
    starts from: reads them, builds no training network or optimizer, writes nothing."""
    check_bounds({**asdict(opts), **opts.model_kwargs}, BOUNDS)
    if opts.precision is not None:
        opts = replace(opts, precision=check_precision(opts.precision))
    env = process_env()
    log = log if env.is_main else quiet
    device = training_device(opts.device, env)
    if resume is not None and opts.resume_from is not None:
        raise BadParameter("resume_from", "resume_from starts a new run from a network, resume continues one: give "
                                          "one of them")
    opts, checkpoint = continued(opts, resume)
    if checkpoint is None:
        check_new_run(opts)
    opts = replace(opts, model=model_of(opts))
    family = get_family(opts.model)
    opts = replace(opts, cond=opts.cond or family.conditional)
    dataset = open_dataset(opts, log)
    source = None
    if opts.resume_from is not None and checkpoint is None:  # a continued run keeps the resume_from it started with
        source = starting_network(opts)
        opts = adopt_network(opts, family, dataset, source)
    opts = resolve(opts, dataset.resolution, env.world_size, family.defaults)
    check_fp16(opts, device, checkpoint is not None, log)
    G_kwargs, D_kwargs = family.build(opts, dataset.resolution, dataset.channels, dataset.label_dim)
    if source is not None:  # the network's own settings; D's too where it has a D
        G_kwargs = dict(source.G_kwargs)
        D_kwargs = dict(source.D_kwargs) if source.D is not None else D_kwargs
    return TrainPlan(opts, family, dataset, G_kwargs, D_kwargs, device, env, checkpoint, source)


def training_device(spec: str, env: DistEnv) -> torch.device:
    """The device `spec` names; with several processes on CUDA, this process's own GPU."""
    device = resolve_device(spec)
    if env.world_size > 1 and device.type == "cuda":
        return torch.device("cuda", env.local_rank)
    return device


def check_new_run(opts: TrainOptions) -> None:
    """Refuse options a new run cannot honour: a seed numpy cannot take, frozen layers of a D that starts random."""
    check_seed(opts.seed, "seed")
    if opts.freezed and opts.resume_from is None:
        raise BadParameter("freezed", f"freezed {opts.freezed}: a new run's D starts random, so there is nothing to "
                                      "keep; freeze layers when fine-tuning a network (resume_from)")


def check_fp16(opts: TrainOptions, device: torch.device, resumed: bool, log: Log) -> None:
    """NVIDIA's fp16 layers compute in fp16 on CUDA only: a new run asking for them elsewhere is refused, a resumed
    run that has them is told."""
    if not opts.fp16 or device.type == "cuda":
        return
    if resumed:
        log(f"note: the run has NVIDIA's fp16 layers, which compute in fp32 on {device.type}")
        return
    raise BadParameter("fp16", f"fp16: NVIDIA's fp16 layers compute in fp16 on CUDA only; on {device.type} they "
                               "would train in fp32 with just their activation clamp (on a CPU, precision bf16 is "
                               "the faster arithmetic)")


def starting_network(opts: TrainOptions) -> Network:
    """The network `opts.resume_from` names, with G, D and G_ema; frozen layers need its own D."""
    try:
        source = load_network(opts.resume_from, modules=("G_ema", "G", "D"))
    except BadParameter as error:  # its network spec is this run's resume_from
        raise BadParameter("resume_from", error.naming("resume_from")) from None
    if opts.freezed and source.D is None:
        raise BadParameter("freezed", f"freezed {opts.freezed}: {opts.resume_from} has no D to keep layers of (a "
                                      "fresh D starts random)")
    return source


def continued(opts: TrainOptions, resume: str | None) -> tuple[TrainOptions, Path | None]:
    """The options of the run `resume` names, with kimg, out, device, workers and minutes from `opts` (and its
    precision when given), and the checkpoint to restore; a checkpoint of weights only (no training state) starts a
    new run from it instead. Any other option `opts` sets that differs from the run's is refused."""
    if resume is None:
        return opts, None
    path = snapshots.find_resume(resume, Path(opts.out))
    state = snapshots.stored_state(path)
    if state is None:
        return replace(opts, resume_from=str(path)), None
    stored = state["options"]
    check_resumable(opts, stored, path, resume == "latest")
    reached = int(state["cur_nimg"]) / 1000
    if opts.kimg <= reached:
        raise BadParameter("kimg", f"kimg {opts.kimg:g} is not above the {reached:g} kimg {path.name} has reached; "
                                   "give a larger total to train on")
    return TrainOptions(**{**stored, "kimg": opts.kimg, "out": opts.out, "device": opts.device,
                           "workers": opts.workers, "minutes": opts.minutes,
                           "precision": opts.precision or stored.get("precision")}), path


def check_resumable(opts: TrainOptions, stored: dict, path: Path, latest: bool) -> None:
    """Refuse what a resumed run cannot honour: other data, another OUT for a named run, or any option outside
    RESUME_CHANGES set to a value that is neither its default nor the run's own."""
    if os.path.realpath(opts.data) != os.path.realpath(stored["data"]):
        raise BadInput(f"{opts.data}: {path.parent} trains on {stored['data']}; a resumed run keeps its data (give "
                       "that path)")
    defaults = TrainOptions(data=opts.data)
    if not latest and opts.out != defaults.out and os.path.realpath(opts.out) != os.path.realpath(path.parent.parent):
        raise BadParameter("out", f"out {opts.out}: a resumed run writes on in its own folder {path.parent}")
    given = {key: value for key, value in asdict(opts).items() if key not in RESUME_CHANGES + ("data", "model_kwargs")}
    given.update(opts.model_kwargs)
    kept = {**stored, **stored.get("model_kwargs", {})}
    for key, value in given.items():
        if value != getattr(defaults, key, None) and value != kept.get(key):
            raise BadParameter(key, f"{key} {value}: {path.parent} keeps its own ({key} {kept.get(key)}); a resumed "
                                    f"run takes only {', '.join(RESUME_CHANGES)} anew")


def open_dataset(opts: TrainOptions, log: Log) -> ImageDataset:
    """The training images, opened once (every image checked), with their labels when `opts.cond`."""
    dataset = ImageDataset(opts.data, mirror=opts.mirror)
    if dataset.has_labels and not opts.cond:
        log(f"note: {opts.data} has labels; a conditional model (cond) trains on them")
    if opts.cond:
        if not dataset.has_labels:  # checked before the labelled read, which fails unhelpfully
            raise BadParameter("cond", f"cond: {opts.data} has no labels in dataset.json")
        dataset.load_labels()
    return dataset


def adopt_network(opts: TrainOptions, family: Family, dataset: ImageDataset, source: Network) -> TrainOptions:
    """Options that rebuild `source`'s architecture; one line for anything that cannot fit the data."""
    where = f"resume_from {opts.resume_from}"
    if source.arch != family.arch:
        raise BadParameter("resume_from", f"{where}: a {source.arch} network; train it as a {source.arch} model")
    kw = source.G_kwargs
    wanted = {"resolution": (kw["img_resolution"], dataset.resolution),
              "channels": (kw["img_channels"], dataset.channels),
              "labels": (kw.get("c_dim", 0), dataset.label_dim)}
    for what, (net_value, data_value) in wanted.items():
        if net_value != data_value:
            raise BadParameter("resume_from", f"{where}: the network has {what} {net_value}, {opts.data} has "
                                               f"{data_value}")
    values = asdict(opts)
    for key, value in family.network_options(source.G_kwargs).items():
        if key == "model_kwargs":
            values[key] = {**values[key], **value}
        elif values[key] is not None and values[key] != value:
            raise BadParameter("resume_from", f"{where}: the network has {key} {value}; leave the option out or "
                                                   "match it")
        else:
            values[key] = value
    return TrainOptions(**values)

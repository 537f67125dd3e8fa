"""A training run branched with other hyperparameters: a new resumable run folder from one snapshot of a run, with
its learning rates, R1 gamma or EMA half-life changed and everything else (weights, optimizer moments, ADA p,
counters, random streams) carried over, so arms that differ in one setting start from the same trained state.

A resumed run takes its hyperparameters from the snapshot's stored options, and its Adam learning rates from the
stored optimizer state (which holds the lazy-regularisation correction, lr times the interval ratio): both are
changed here, the optimizer's by the ratio of the new learning rate to the old one.
"""
from __future__ import annotations

import os
from pathlib import Path

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.errors import BadInput, BadParameter, check_bounds
from facegen_cli.networks import load_checkpoint
from facegen_cli.train import snapshots
from facegen_cli.train.options import BOUNDS

SETTINGS = ("glr", "dlr", "gamma", "ema_kimg")  # what a branch may change
OPTIMIZER_OF = {"glr": "G", "dlr": "D"}
PROVENANCE_OWN = ("date", "facegen_version", "id")  # what save_checkpoint writes for the new file itself


def retune_run(source: str | os.PathLike, dest: str | os.PathLike, **changes: float) -> Path:
    """Branch the run (or snapshot) `source` as the new run folder `dest` with `changes` (some of glr, dlr,
    gamma, ema_kimg) to its options; returns its snapshot, which `Trainer` resumes."""
    source, dest = Path(source), Path(dest)
    changes = check_changes(changes)
    snapshots.check_new_run_folder(dest)
    snap = snapshots.find_resume(str(source), source.parent)
    net = load_checkpoint(snap, modules=("G_ema", "G", "D"), with_training_state=True)
    if net.training_state is None or net.G is None or net.D is None:
        raise BadInput(f"{snap}: holds no training state, G and D to branch; give a run's snapshot")
    state = dict(net.training_state)
    before = state["options"]
    state["optimizers"] = dict(state["optimizers"])
    for name, value in changes.items():
        key = OPTIMIZER_OF.get(name)
        if key is not None:
            state["optimizers"][key] = scaled_lr(state["optimizers"][key], value / stored_number(before, name, snap))
    state["options"] = {**before, **changes, "out": str(dest.parent)}
    provenance = {k: v for k, v in net.provenance.items() if k not in PROVENANCE_OWN}
    provenance.update(run=dest.name, branched_from={"snapshot": str(snap), "id": net.network_id,
                                                    **{name: before.get(name) for name in changes}})
    return snapshots.write_run_folder(dest, snap, state, "branched_from", lambda path: save_checkpoint(
        path, net.arch, net.G_kwargs, net.G_ema, G=net.G, D=net.D, D_kwargs=net.D_kwargs, provenance=provenance,
        training_state=state))


def check_changes(changes: dict[str, float | None]) -> dict[str, float]:
    """The changes given (None: not given), each a known setting within its range; at least one."""
    given = {name: value for name, value in changes.items() if value is not None}
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise BadParameter(unknown[0], f"{unknown[0]}: a branch changes only {', '.join(SETTINGS)}")
    if not given:
        raise BadParameter(SETTINGS[0], f"nothing to change: give at least one of {', '.join(SETTINGS)}")
    check_bounds(given, BOUNDS)
    return {name: float(value) for name, value in given.items()}


def stored_number(options: dict, name: str, snap: Path) -> float:
    value = options.get(name)
    if not isinstance(value, (int, float)) or value <= 0:
        raise BadInput(f"{snap}: its options hold no {name} to change (found {value!r})")
    return float(value)


def scaled_lr(optimizer_state: dict, ratio: float) -> dict:
    """An optimizer state dict whose every parameter group's learning rate is multiplied by `ratio`."""
    groups = [{**group, "lr": group["lr"] * ratio} for group in optimizer_state["param_groups"]]
    return {**optimizer_state, "param_groups": groups}

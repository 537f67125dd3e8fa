"""A StyleGAN2 run grown wider (a larger channel base and cap) that computes exactly what it computed: a new
resumable run folder whose G, G_ema and D give the same outputs at its first step, and which trains on from the
same optimizer state, augmentation, counters and random streams.

How the function is kept: a new channel gets its layer's own random initialisation on its incoming weights
(and, in G, a random row of the style affine with the affine's bias init), and zero outgoing weights, so no old
channel reads it. G's modulated convolutions demodulate each output channel over its inputs: zero weights on new
inputs add nothing there, and a new output channel is demodulated on its own. Where a layer's equalised-lr gain
1/sqrt(fan-in) falls with the wider input (D's layers, ToRGB), the old weights are multiplied by the ratio of the
gains, and Adam's moments divided by it (its square for the second), which is the same state in the new
parameterisation. New entries of the first moment start at zero, of the second at the mean of the tensor's old
ones: at zero, with beta2 0.99 and the step count carried on, Adam's first steps on every new weight would be
about ten times the learning rate (measured: a run grown that way lost its faces in its first 4 kimg). D's minibatch-stddev feature is the mean over the
4x4 channels: D's new 4x4 channels are constants (zero weights, bias 1, std the layer's epsilon), the feature's
weights are scaled back by the channel ratio, and the constant channels' weights cancel the epsilon they add.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.models.registry import get_architecture
from facegen_cli.models.stylegan2 import channels_for
from facegen_cli.networks import Network, load_checkpoint
from facegen_cli.train import snapshots

ARCH = "stylegan2"
PROVENANCE_OWN = ("date", "facegen_version", "id")  # what save_checkpoint writes for the new file itself


@dataclass(frozen=True)
class Placement:
    """Where a parameter's old values sit in its grown tensor (`index`) and the factor (`scale`, broadcast over
    the old tensor) they are multiplied by there."""

    index: tuple
    scale: torch.Tensor


def grow_run(source: str | os.PathLike, dest: str | os.PathLike, cbase: int, cmax: int, seed: int = 0) -> Path:
    """Grow the run (or snapshot) `source` to channel base `cbase` and cap `cmax` as the new run folder `dest`;
    returns its snapshot, which `Trainer` resumes (the new channels drawn from `seed`)."""
    source, dest = Path(source), Path(dest)
    snapshots.check_new_run_folder(dest)
    snap = snapshots.find_resume(str(source), source.parent)
    net = load_checkpoint(snap, modules=("G_ema", "G", "D"), with_training_state=True)
    check_growable(net, snap)
    old_widths = (net.G_kwargs["channel_base"], net.G_kwargs["channel_max"])
    check_widths(net.G_kwargs["img_resolution"], old_widths, (cbase, cmax))
    widths = dict(channel_base=cbase, channel_max=cmax)
    G_kwargs, D_kwargs = {**net.G_kwargs, **widths}, {**net.D_kwargs, **widths}
    arch = get_architecture(ARCH)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fresh_G, fresh_D = arch.make_G(**G_kwargs), arch.make_D(**D_kwargs)
    G, G_places = grown(net.G, fresh_G)
    G_ema, _ = grown(net.G_ema, fresh_G)
    D, D_places = grown(net.D, fresh_D)
    keep_minibatch_std(net.D, D, D_places)
    state = dict(net.training_state)
    state["options"] = {**state["options"], "cbase": cbase, "cmax": cmax, "out": str(dest.parent)}
    state["optimizers"] = {"G": grown_adam(state["optimizers"]["G"], G, G_places),
                           "D": grown_adam(state["optimizers"]["D"], D, D_places)}
    provenance = {k: v for k, v in net.provenance.items() if k not in PROVENANCE_OWN}
    provenance.update(run=dest.name, grown_from={"snapshot": str(snap), "id": net.network_id,
                                                 "cbase": old_widths[0], "cmax": old_widths[1]})
    return snapshots.write_run_folder(dest, snap, state, "grown_from", lambda path: save_checkpoint(
        path, ARCH, G_kwargs, G_ema, G=G, D=D, D_kwargs=D_kwargs, provenance=provenance, training_state=state))


def check_growable(net: Network, snap: Path) -> None:
    """A resumable StyleGAN2 snapshot, unconditional, with the usual one-feature minibatch-stddev layer."""
    if net.training_state is None or net.G is None or net.D is None:
        raise BadInput(f"{snap}: holds no training state, G and D to grow; give a run's snapshot")
    if net.arch != ARCH:
        raise BadInput(f"{snap}: a {net.arch} network; only {ARCH} runs grow")
    if net.G_kwargs.get("c_dim", 0) or net.D_kwargs.get("mbstd_num_channels", 1) != 1:
        raise BadInput(f"{snap}: a conditional D or one with several minibatch-stddev features does not grow")


def check_widths(resolution: int, old: tuple[int, int], new: tuple[int, int]) -> None:
    """Every resolution keeps or gains channels, and one gains."""
    sizes = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
    before, after = ([channels_for(res, *widths) for res in sizes] for widths in (old, new))
    said = f"cbase {new[0]} and cmax {new[1]}"
    narrower = [(res, a, b) for res, a, b in zip(sizes, before, after) if b < a]
    if narrower:
        res, a, b = narrower[0]
        raise BadParameter("cbase", f"{said} narrow the {res} px layers from {a} to {b} channels; a run only grows")
    if before == after:
        raise BadParameter("cbase", f"{said} give the run's own widths ({', '.join(map(str, before))} channels "
                                    f"from 4 px up): nothing to grow")


def placement(name: str, old: torch.Tensor, new: torch.Tensor, old_owner: nn.Module,
              new_owner: nn.Module) -> Placement:
    """Old values in the leading rows and columns, times the ratio of the owner's weight gains (1 without one)."""
    if old.shape[2:] != new.shape[2:] or any(a > b for a, b in zip(old.shape, new.shape)):
        raise BadInput(f"{name}: {tuple(old.shape)} does not grow into {tuple(new.shape)}")
    ratio = getattr(old_owner, "weight_gain", 1.0) / getattr(new_owner, "weight_gain", 1.0)
    scale = torch.tensor(ratio if name.endswith("weight") else 1.0, dtype=torch.float64)
    return Placement(tuple(slice(0, size) for size in old.shape), scale)


def grown(old: nn.Module, fresh: nn.Module) -> tuple[nn.Module, dict[str, Placement]]:
    """A copy of `fresh` (new channels as initialised) holding `old`'s values in place, old outputs reading
    nothing from new inputs, and each parameter's placement."""
    module = copy.deepcopy(fresh)
    owners_old, owners_new = dict(old.named_modules()), dict(module.named_modules())
    places = {}
    old_params = dict(old.named_parameters())
    with torch.no_grad():
        for name, param in module.named_parameters():
            owner = name.rpartition(".")[0]
            place = placement(name, old_params[name], param, owners_old[owner], owners_new[owner])
            if param.ndim >= 2:
                param[:old_params[name].shape[0]] = 0
            param[place.index] = (old_params[name].detach() * place.scale).to(param.dtype)
            places[name] = place
        old_buffers = dict(old.named_buffers())
        for name, buffer in module.named_buffers():
            if buffer.shape != old_buffers[name].shape:
                raise BadInput(f"{name}: a buffer of shape {tuple(old_buffers[name].shape)} cannot grow")
            buffer.copy_(old_buffers[name])
    return module, places


def keep_minibatch_std(old: nn.Module, D: nn.Module, places: dict[str, Placement]) -> None:
    """Make grown `D` compute `old`'s minibatch-stddev feature: its new 4x4 channels constant, the feature's
    weights scaled by the channel ratio, the constants' weights cancelling the epsilon their std adds."""
    last = D.get_submodule(f"b{D.block_resolutions[-1]}")
    c0, c1 = old.b4.conv.weight.shape[1] - 1, D.b4.conv.weight.shape[1] - 1  # 4x4 channels; the feature is last
    with torch.no_grad():
        for param in (last.conv1.weight, last.skip.weight):
            param[c0:] = 0
        last.conv1.bias[c0:] = 1
        size = [1, last.conv0.weight.shape[0], last.resolution, last.resolution]
        constants = last(torch.zeros(size), torch.zeros([1, D.img_channels, *size[2:]]))[0, c0:, 0, 0]
        eps_std = D.b4.mbstd(torch.zeros([2, 1, 1, 1]))[0, 1, 0, 0]  # the std of a constant channel
        gain0, gain1 = old.b4.conv.weight_gain, D.b4.conv.weight_gain
        feature = old.b4.conv.weight[:, c0:]
        scale = torch.full([1, c0 + 1, 1, 1], gain0 / gain1, dtype=torch.float64)
        scale[0, c0] *= c1 / c0
        rows = slice(0, old.b4.conv.weight.shape[0])
        place = Placement((rows, torch.tensor([*range(c0), c1]), slice(None), slice(None)), scale)
        weight = D.b4.conv.weight
        weight[rows] = 0
        weight[place.index] = (old.b4.conv.weight * scale).to(weight.dtype)
        weight[rows, c0:c1] = -feature * gain0 * eps_std / (c0 * gain1) / constants.reshape(1, -1, 1, 1)
    places["b4.conv.weight"] = place


def grown_adam(state: dict, module: nn.Module, places: dict[str, Placement]) -> dict:
    """An Adam state dict for the grown `module`: the old moments in their placements, divided by the weights'
    scale (the second moment by its square); new entries of the first moment zero, of the second the mean of the
    tensor's old ones; step counts and hyperparameters as they were."""
    params = list(module.named_parameters())
    moments = {}
    for index, entry in state["state"].items():
        name, param = params[index]
        place, entry = places[name], dict(entry)
        for key, power in (("exp_avg", 1), ("exp_avg_sq", 2)):
            kept = entry[key] / place.scale ** power
            start = kept.mean() if key == "exp_avg_sq" else 0.0
            value = torch.full(param.shape, float(start), dtype=entry[key].dtype)
            value[place.index] = kept.to(value.dtype)
            entry[key] = value
        moments[index] = entry
    return {**state, "state": moments}

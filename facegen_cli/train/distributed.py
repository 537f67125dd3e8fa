"""torchrun / DDP support: process group from the environment, gradient all-reduce."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_env() -> DistEnv:
    """This process's place among those torchrun started, read from its environment (one process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    return DistEnv(rank=int(os.environ.get("RANK", "0")), world_size=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPU); nothing for a single process."""
    if env.world_size <= 1:
        return
    if device.type == "cuda":  # NCCL's collectives run on the current device: one GPU per process
        torch.cuda.set_device(env.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def average_gradients(module: nn.Module, env: DistEnv) -> None:
    """Average gradients across ranks in one flat all-reduce; also scrub NaN/Inf to zero."""
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if env.world_size > 1:
        dist.all_reduce(flat)
        flat /= env.world_size
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def broadcast_module(module: nn.Module, env: DistEnv) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if env.world_size > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def reduce_mean(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.world_size > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= env.world_size
    return value


def average_buffers(module: nn.Module, env: DistEnv) -> None:
    """Average floating-point buffers across ranks (running statistics such as w_avg)."""
    if env.world_size > 1:
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b.data)
                b.data /= env.world_size


def all_gather_objects(obj, env: DistEnv) -> list:
    """Every rank's `obj`, in rank order (a one-item list in a single process)."""
    if env.world_size == 1:
        return [obj]
    gathered = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered

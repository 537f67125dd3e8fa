"""Fused bias + activation + gain + clamp (`bias_act`), plain-PyTorch reference."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Activation:
    """An activation function with its default alpha and the gain that keeps unit variance."""

    fn: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(act: str) -> float:
    """The default gain of an activation (sqrt(2) for the rectifiers, 1 otherwise)."""
    return ACTIVATIONS[act].def_gain


def resolve_activation(act: str, alpha: float | None, gain: float | None) -> tuple[Activation, float, float]:
    """`act`'s spec with `alpha` and `gain` filled in from its defaults where None."""
    spec = ACTIVATIONS[act]
    return (spec, spec.def_alpha if alpha is None else float(alpha), spec.def_gain if gain is None else float(gain))


def bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add `b` along `dim`, apply `act`, multiply by `gain`, clamp to [-clamp, clamp]."""
    spec, alpha, gain = resolve_activation(act, alpha, gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    x = spec.fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# Activations with act(g * x) == g * act(x) for every g > 0, so the gain can be applied before them; each
# with its in-place form (None: the identity).
POSITIVELY_HOMOGENEOUS: dict[str, Callable[[torch.Tensor, float], torch.Tensor] | None] = {
    "linear": None,
    "relu": lambda x, a: F.relu_(x),
    "lrelu": lambda x, a: F.leaky_relu_(x, a),
}


def bias_act_folded(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "lrelu",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """`bias_act_ref` for a positively homogeneous `act` and a positive gain, allocating one tensor where the
    reference allocates three: act(gain * (x + b)), with the gain and the activation applied in place."""
    spec, alpha, gain = resolve_activation(act, alpha, gain)
    fresh = True  # whether x is a new tensor the steps below may overwrite
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
        if gain != 1:
            x = x.mul_(gain)
    elif gain != 1:
        x = x * gain
    else:
        fresh = False
    in_place = POSITIVELY_HOMOGENEOUS[act]
    if in_place is not None:
        x = in_place(x, alpha) if fresh else spec.fn(x, alpha)
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias + activation, dispatched to the fastest implementation available for `x`.

    CUDA tensors run the compiled kernel once it has built (see `facegen_cli.ops.build`);
    everything else runs `bias_act_folded` where the activation allows it (linear, relu, lrelu with a
    positive gain), and `bias_act_ref` otherwise.
    """
    if x.is_cuda:
        from facegen_cli.ops.bias_act_cuda import bias_act_cuda, kernel_for

        ext = kernel_for(x, b, dim)
        if ext is not None:
            _, alpha, gain = resolve_activation(act, alpha, gain)
            return bias_act_cuda(ext, x, b, dim, act, alpha, gain, clamp)
    if act in POSITIVELY_HOMOGENEOUS and (gain is None or gain > 0):
        return bias_act_folded(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)

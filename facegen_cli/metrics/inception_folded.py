"""The FID Inception network's forward pass rebuilt from its weights, for speed on a CPU.

The TorchScript file (metrics.inception) is the reference and stays what FID means; this module runs the same
weights with the same arithmetic, rearranged:

- each batch norm (inference: running mean and variance, eps 0.001, a shift and no scale) is folded into the
  convolution before it, as a weight scale and a bias;
- the 1x1 convolutions that read one block input are run as one convolution whose outputs are split after;
- a 3x3 average pool (padding 1, padding not counted) followed by a 1x1 convolution is computed as the
  convolution followed by the pool: the pool is a weighted mean whose weights sum to one, so it commutes with
  an affine map, and it then pools 32-192 channels instead of 192-2048;
- tensors stay channels-last from the first layer to the last (the file makes every branch contiguous, which
  turns them back to channels-first at every block).

The result differs from the reference only by floating-point rounding (tests/test_inception_folded.py holds the
features equal on real faces); benchmarks/RESULTS.md, "fid", records the speed-up (1.5x).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 0.001  # the batch norms' epsilon in the file
BLOCKS = ("mixed", "mixed_1", "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8",
          "mixed_9", "mixed_10")
STEM = ("conv", "conv_1", "conv_2", "conv_3", "conv_4")


class FoldedConv:
    """A convolution with a bias and an optional ReLU, its weight kept channels-last."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int = 1, padding: tuple[int, int] = (0, 0)):
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias = bias.contiguous()
        self.stride, self.padding = stride, padding

    def __call__(self, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return F.relu_(y) if relu else y


def fold(layer: torch.nn.Module) -> FoldedConv:
    """One Conv2dLayer of the file (convolution, batch norm, ReLU) with its batch norm folded into the weights."""
    scale = torch.rsqrt(layer.var.detach().float() + EPS)
    weight = layer.weight.detach().float() * scale[:, None, None, None]
    bias = layer.beta.detach().float() - layer.mean.detach().float() * scale
    padding = layer.padding
    padding = (int(padding), int(padding)) if isinstance(padding, int) else tuple(int(p) for p in padding)
    return FoldedConv(weight, bias, int(layer.stride), padding)


class JoinedConv:
    """Several 1x1 FoldedConvs reading one input, run as one convolution; `__call__` returns the parts (before
    the ReLU when `relu` is False, for a part that is pooled first)."""

    def __init__(self, parts: list[FoldedConv]):
        self.sizes = [len(p.bias) for p in parts]
        self.joined = FoldedConv(torch.cat([p.weight for p in parts]), torch.cat([p.bias for p in parts]))

    def __call__(self, x: torch.Tensor, relu: bool = True) -> list[torch.Tensor]:
        return list(torch.split(self.joined(x, relu), self.sizes, dim=1))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def _max3(x: torch.Tensor, stride: int, padding: int = 0) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride, padding)


def _chain(convs: list[FoldedConv], x: torch.Tensor) -> torch.Tensor:
    for conv in convs:
        x = conv(x)
    return x


def _convs(sequential: torch.nn.Module) -> list[FoldedConv]:
    return [fold(m) for m in sequential.children() if m.original_name == "Conv2dLayer"]


class PooledBranchBlock:
    """InceptionA (mixed..mixed_2) and InceptionC (mixed_4..mixed_7): a 1x1 branch, two towers starting with a 1x1,
    and an average-pooled 1x1 branch."""

    def __init__(self, block: torch.nn.Module):
        tower, tower_1, pooled = _convs(block.tower), _convs(block.tower_1), _convs(block.tower_2)
        self.first = JoinedConv([fold(block.conv), tower[0], tower_1[0], pooled[0]])
        self.tower, self.tower_1 = tower[1:], tower_1[1:]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        plain, t, t1, pooled = self.first(x, relu=False)
        return torch.cat([F.relu(plain), _chain(self.tower, F.relu(t)), _chain(self.tower_1, F.relu(t1)),
                          F.relu_(_avg3(pooled))], 1)


class ReductionB:
    """InceptionB (mixed_3): a strided 3x3, a tower ending strided, a strided max pool."""

    def __init__(self, block: torch.nn.Module):
        self.conv, self.tower = fold(block.conv), _convs(block.tower)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), _chain(self.tower, x), _max3(x, 2)], 1)


class ReductionD:
    """InceptionD (mixed_8): two towers starting with a 1x1 and ending strided, a strided max pool."""

    def __init__(self, block: torch.nn.Module):
        tower, tower_1 = _convs(block.tower), _convs(block.tower_1)
        self.first = JoinedConv([tower[0], tower_1[0]])
        self.tower, self.tower_1 = tower[1:], tower_1[1:]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t, t1 = self.first(x)
        return torch.cat([_chain(self.tower, t), _chain(self.tower_1, t1), _max3(x, 2)], 1)


class ExpandedE:
    """InceptionE (mixed_9 with an average pool, mixed_10 with a max pool): a 1x1 branch, two towers split into
    1x3 and 3x1 convolutions, and a pooled 1x1 branch."""

    def __init__(self, block: torch.nn.Module):
        self.average = block.tower_2_pool.original_name == "AvgPool2d"
        parts = [fold(block.conv), fold(block.tower_conv), fold(block.tower_1_conv)]
        self.pool_conv = fold(block.tower_2_conv)
        self.first = JoinedConv(parts + [self.pool_conv] if self.average else parts)
        self.mixed = [fold(block.tower_mixed_conv), fold(block.tower_mixed_conv_1)]
        self.tower_1_conv_1 = fold(block.tower_1_conv_1)
        self.mixed_1 = [fold(block.tower_1_mixed_conv), fold(block.tower_1_mixed_conv_1)]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.first(x, relu=False)
        plain, a, b = (F.relu(p) for p in parts[:3])
        pooled = F.relu_(_avg3(parts[3])) if self.average else self.pool_conv(_max3(x, 1, 1))
        b = self.tower_1_conv_1(b)
        return torch.cat([plain, *(c(a) for c in self.mixed), *(c(b) for c in self.mixed_1), pooled], 1)


def _block(module: torch.nn.Module):
    kind = module.original_name
    if kind in ("InceptionA", "InceptionC"):
        return PooledBranchBlock(module)
    return {"InceptionB": ReductionB, "InceptionD": ReductionD, "InceptionE": ExpandedE}[kind](module)


def feature_layers(script: torch.nn.Module) -> torch.nn.Module | None:
    """The module of the file that holds the stem and the eleven blocks (NVIDIA's file and the wheel's nest
    it differently), or None."""
    for _, module in script.named_modules():
        if all(hasattr(module, name) for name in STEM + BLOCKS + ("pool2",)):
            return module
    return None


class FoldedInception:
    """N x 3 x 299 x 299 inputs (already scaled as the file's layers expect) -> N x 2048 pool features."""

    def __init__(self, layers: torch.nn.Module):
        self.stem = [fold(getattr(layers, name)) for name in STEM]
        self.blocks = [_block(getattr(layers, name)) for name in BLOCKS]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous(memory_format=torch.channels_last)
        conv, conv_1, conv_2, conv_3, conv_4 = self.stem
        x = _max3(conv_2(conv_1(conv(x))), 2)
        x = _max3(conv_4(conv_3(x)), 2)
        for block in self.blocks:
            x = block(x)
        return F.avg_pool2d(x, 8).reshape(-1, 2048)

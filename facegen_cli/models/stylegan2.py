"""StyleGAN2 generator (config F, skip ToRGB) and residual discriminator.

Module and parameter names follow NVIDIA's stylegan2-ada-pytorch, so a state dict from
their pickles maps 1:1 (see `facegen_cli.checkpoint`). Constructor arguments are flat and
JSON-friendly because they are stored in our checkpoints.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from facegen_cli.models.layers import (DEFAULT_RESAMPLE_FILTER, Conv2dLayer, FullyConnectedLayer,
                                       MappingNetwork, MinibatchStdLayer)
from facegen_cli.ops.bias_act import activation_gain, bias_act
from facegen_cli.ops.conv2d_resample import modulated_conv2d
from facegen_cli.ops.upfirdn2d import downsample2d, setup_filter, upsample2d
from facegen_cli.precision import block_dtype, fp32_part, widen

NOISE_MODES = ("const", "random", "none")
# On CPU, the grouped (fused) modulated conv pays for itself from this block size up; below it,
# scaling activations (non-fused) is cheaper. Measured: benchmarks/RESULTS.md, "generate".
CPU_FUSED_FROM_RES = 128


def prefer_fused_modconv(training: bool, dtype: torch.dtype, batch: int, resolution: int,
                         device: torch.device, channels_last: bool = False) -> bool:
    """Default modulated-conv path of a synthesis block: non-fused while training (as NVIDIA
    trains); on CUDA NVIDIA's inference rule (fp32, or a single image); on CPU blocks of
    CPU_FUSED_FROM_RES pixels and up, unless the network runs in channels_last (bf16 drawing),
    where the shared-weight convolution was faster at every measured size."""
    if training:
        return False
    if device.type == "cpu":
        return not channels_last and resolution >= CPU_FUSED_FROM_RES
    return dtype == torch.float32 or batch == 1


def channels_for(res: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at resolution `res`: channel_base / res, capped at channel_max."""
    return min(channel_base // res, channel_max)


def _check_resolution(res: int) -> int:
    log2 = int(math.log2(res)) if res > 0 else 0
    if res < 4 or 2 ** log2 != res:
        raise ValueError(f"resolution must be a power of two >= 4, got {res}")
    return log2


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution, optional 2x upsampling, per-pixel noise, bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: tuple[int, ...] = DEFAULT_RESAMPLE_FILTER, conv_clamp: float | None = None):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        with fp32_part("affine", w):
            styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(shape, device=x.device, generator=generator) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        with fp32_part("affine", w):
            styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const | upsampling conv), conv, ToRGB skip."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 use_fp16: bool = False, conv_clamp: float | None = None,
                 resample_filter: tuple[int, ...] = DEFAULT_RESAMPLE_FILTER):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "random", fused_modconv: bool | None = None, force_fp32: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        fp16 = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        dtype = block_dtype(fp16, x)
        if fused_modconv is None:
            fused_modconv = prefer_fused_modconv(self.training, dtype, ws.shape[0], self.resolution, ws.device,
                                                 self.conv1.weight.is_contiguous(memory_format=torch.channels_last))
        layer_kwargs = dict(noise_mode=noise_mode, fused_modconv=fused_modconv, generator=generator)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x.to(dtype), next(w_iter), **layer_kwargs)
        x = self.conv1(x, next(w_iter), **layer_kwargs)
        with fp32_part("torgb", x):
            if img is not None:
                img = upsample2d(img, self.resample_filter)
            y = self.torgb(widen(x), next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ -> image: a learned 4x4 constant grown by SynthesisBlocks to `img_resolution`."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None):
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels_for(res // 2, channel_base, channel_max) if res > 4 else 0
            out_ch = channels_for(res, channel_base, channel_max)
            block = SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels, use_fp16=res >= fp16_resolution,
                                   conv_clamp=conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last ToRGB reads one more w

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None,
                force_fp32: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv,
                           force_fp32=force_fp32, generator=generator)
        return img


class Generator(nn.Module):
    """z (+ label) -> image: MappingNetwork followed by SynthesisNetwork.

    The keyword arguments are stored in checkpoint headers (`G_kwargs`), so they are part of the
    file format; NVIDIA's names where NVIDIA has one:
    z_dim: length of the input latent z.
    c_dim: length of the label vector (0: unconditional).
    w_dim: length of the intermediate latent w (one per synthesis layer in W+).
    img_resolution: output size in pixels, a power of two from 4.
    img_channels: 3 for RGB, 1 for grayscale.
    mapping_layers: dense layers in the mapping network (NVIDIA's mapping_kwargs.num_layers).
    mapping_lr_multiplier: learning-rate multiplier of the mapping layers (equalised lr).
    channel_base: feature maps at a resolution are min(channel_base / resolution, channel_max).
    channel_max: the most feature maps of any layer.
    num_fp16_res: how many of the highest resolutions run in fp16 on CUDA (0: none).
    conv_clamp: clamp of activations after each convolution (None: no clamp; 256 with fp16).
    """

    def __init__(self, z_dim: int = 512, c_dim: int = 0, w_dim: int = 512, img_resolution: int = 256,
                 img_channels: int = 3, mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base=channel_base,
                                          channel_max=channel_max, num_fp16_res=num_fp16_res,
                                          conv_clamp=conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, num_layers=mapping_layers,
                                      lr_multiplier=mapping_lr_multiplier)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random",
                fused_modconv: bool | None = None, update_w_avg: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_w_avg=update_w_avg)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, generator=generator)


class DiscriminatorBlock(nn.Module):
    """One resolution of the residual discriminator: (FromRGB), conv, downsampling conv, skip."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 use_fp16: bool = False, conv_clamp: float | None = None,
                 resample_filter: tuple[int, ...] = DEFAULT_RESAMPLE_FILTER):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation="lrelu",
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation="lrelu", down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor, force_fp32: bool = False) -> torch.Tensor:
        fp16 = self.use_fp16 and not force_fp32 and img.device.type == "cuda"
        dtype = block_dtype(fp16, x)
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype))
        else:
            x = x.to(dtype)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch stddev, conv, dense, output (projected on the label map if conditional)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        with fp32_part("epilogue", x):
            x = x.to(torch.float32)
            if self.mbstd is not None:
                x = self.mbstd(x)
            x = self.conv(x)
            x = self.out(self.fc(x.flatten(1)))
            if self.cmap_dim > 0:
                x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x.to(torch.float32)


class Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator; image (+ label) -> one logit per sample.

    The keyword arguments are stored in checkpoint headers (`D_kwargs`), so they are part of the
    file format: c_dim, img_resolution, img_channels, channel_base, channel_max, num_fp16_res and
    conv_clamp mean what they mean for the Generator;
    cmap_dim: length of the label embedding the output is projected on (None: the 4x4 channels).
    mbstd_group_size: samples per minibatch-stddev group (at most the per-pass batch).
    mbstd_num_channels: feature maps the minibatch-stddev layer adds (0: no such layer).
    mapping_layers: dense layers of the label mapping network (conditional D only).
    """

    def __init__(self, c_dim: int = 0, img_resolution: int = 256, img_channels: int = 3, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None,
                 cmap_dim: int | None = None, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                 mapping_layers: int = 8):
        super().__init__()
        log2 = _check_resolution(img_resolution)
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        if cmap_dim is None:
            cmap_dim = channels_for(4, channel_base, channel_max)
        if c_dim == 0:
            cmap_dim = 0
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        for res in self.block_resolutions:
            in_ch = channels_for(res, channel_base, channel_max) if res < img_resolution else 0
            tmp_ch = channels_for(res, channel_base, channel_max)
            out_ch = channels_for(res // 2, channel_base, channel_max)
            block = DiscriminatorBlock(in_ch, tmp_ch, out_ch, res, img_channels,
                                       use_fp16=res >= fp16_resolution, conv_clamp=conv_clamp)
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, num_layers=mapping_layers,
                                          w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(channels_for(4, channel_base, channel_max), cmap_dim=cmap_dim,
                                        mbstd_group_size=mbstd_group_size, mbstd_num_channels=mbstd_num_channels,
                                        conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)

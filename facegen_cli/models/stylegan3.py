"""StyleGAN3 generator ("Alias-Free Generative Adversarial Networks"), configs T and R.

Module, parameter and buffer names and shapes follow NVIDIA's stylegan3
`training/networks_stylegan3.py`, so their state dicts map 1:1. Every layer carries a
signal of known sampling rate and bandwidth: Fourier features in, then modulated
convolutions whose leaky ReLU runs between Kaiser low-pass filters (`filtered_lrelu`), the
cutoffs rising geometrically to the image's Nyquist frequency; the last layers are
critically sampled. Config R uses 1x1 convolutions and radially symmetric (jinc) filters.
Constructor arguments are flat and JSON-friendly: they are stored in checkpoint headers.
StyleGAN3 has no noise inputs; `noise_mode` is accepted and ignored, as NVIDIA does.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facegen_cli.models.layers import FullyConnectedLayer, MappingNetwork
from facegen_cli.models.stylegan2 import NOISE_MODES, prefer_fused_modconv
from facegen_cli.ops.conv2d_resample import modulated_conv2d
from facegen_cli.ops.filtered_lrelu import filtered_lrelu

# What NVIDIA's train.py changes for --cfg stylegan3-r over stylegan3-t (whose values are the defaults).
CONFIG_R_CHANGES = {"conv_kernel": 1, "use_radial_filters": True, "channel_base": 65536, "channel_max": 1024}

# NVIDIA's mapping_kwargs -> our flat Generator kwargs.
MAPPING_KWARGS = {"num_layers": "mapping_layers", "lr_multiplier": "mapping_lr_multiplier",
                  "w_avg_beta": "mapping_w_avg_beta"}


def kwargs_from_nvidia(init_kwargs: dict) -> dict:
    """Our Generator kwargs for the init kwargs NVIDIA's networks_stylegan3.Generator was built with."""
    kwargs = {k: v for k, v in init_kwargs.items() if k not in ("mapping_kwargs", "class_name")}
    mapping = dict(init_kwargs.get("mapping_kwargs") or {})
    unknown = [f"mapping_kwargs.{k}" for k in sorted(set(mapping) - set(MAPPING_KWARGS))]
    unknown += sorted(set(kwargs) - set(inspect.signature(Generator).parameters))
    if unknown:
        raise ValueError(f"StyleGAN3 generator settings facegen does not know: {', '.join(unknown)}")
    kwargs.update({MAPPING_KWARGS[k]: v for k, v in mapping.items()})
    return kwargs


def config_name(G_kwargs: dict) -> str:
    """'R' for a generator with radial filters, else 'T'."""
    return "R" if G_kwargs.get("use_radial_filters") else "T"


def _kaiser_beta(numtaps: int, width: float, fs: float) -> float:
    """Kaiser's window shape for a transition band `width` (Hz at sampling rate `fs`)."""
    atten = 2.285 * (numtaps - 1) * math.pi * (width / (fs / 2)) + 7.95  # stopband attenuation, dB
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """Kaiser-windowed low-pass FIR with unit DC gain: 1-D separable sinc, or 2-D jinc when `radial`.

    `cutoff` and the transition `width` are in the units of the sampling rate `fs`; one tap
    is the identity (None)."""
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    window = torch.kaiser_window(numtaps, periodic=False, beta=_kaiser_beta(numtaps, width, fs), dtype=torch.float64)
    pos = (torch.arange(numtaps, dtype=torch.float64) - (numtaps - 1) / 2) / fs  # tap positions in time
    if not radial:
        f = torch.sinc(2 * cutoff * pos) * window
    else:
        r = torch.hypot(pos[None, :], pos[:, None])
        arg = 2 * math.pi * cutoff * r
        # jinc: J1(2 pi c r) / (pi r), whose value at r = 0 is its limit c.
        f = torch.where(r > 0, torch.special.bessel_j1(arg) / (math.pi * r.clamp(min=1e-30)),
                        torch.full_like(r, cutoff))
        f = f * torch.outer(window, window)
    return (f / f.sum()).to(torch.float32)


@dataclass(frozen=True)
class LayerSpec:
    """The signal a synthesis layer outputs (entry 0: the Fourier-feature input)."""

    sampling_rate: int
    cutoff: float
    half_width: float  # half-width of the transition band above the cutoff
    size: int  # pixels, margin included
    channels: int


def layer_schedule(img_resolution: int, img_channels: int, channel_base: int, channel_max: int, num_layers: int,
                   num_critical: int, first_cutoff: float, first_stopband: float, last_stopband_rel: float,
                   margin_size: int) -> list[LayerSpec]:
    """Cutoffs and stopbands rise geometrically from the first layer to the last `num_critical`
    (which sit at the image's Nyquist rate); each layer samples at the power of two that holds its
    stopband, with `margin_size` extra pixels on each side except for the last two."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    progress = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** progress
    stopbands = first_stopband * (last_stopband / first_stopband) ** progress
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return [LayerSpec(int(rates[i]), float(cutoffs[i]), float(half_widths[i]), int(sizes[i]), int(channels[i]))
            for i in range(num_layers + 1)]


class SynthesisInput(nn.Module):
    """Fourier features of random frequencies within `bandwidth`, placed by a learned per-sample
    rotation + translation and the user's `transform` (the inverse of the wanted image transform)."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = size
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth
        # Frequencies uniform over the disc of radius `bandwidth`.
        angle = torch.rand([channels]) * (2 * math.pi)
        radius = torch.rand([channels]).sqrt() * bandwidth
        freqs = torch.stack([angle.cos(), angle.sin()], dim=1) * radius[:, None]
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)  # -> (cos, sin, tx, ty), starting at the identity
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        batch = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(dim=1)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        # Rotate the image, then translate it, then apply the user's transform (all as inverses).
        rotate = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(batch, 3, 3)
        shift = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(batch, 3, 3)
        m = rotate @ shift @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ m[:, :2, :2]
        # Fade frequencies a transform pushed beyond the band toward the Nyquist rate.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        pixels = torch.arange(self.size, device=w.device, dtype=torch.float32)
        coords = (pixels + 0.5 - self.size / 2) / self.sampling_rate  # pixel centres; the image spans [-.5, .5]
        grid = torch.stack(torch.meshgrid(coords, coords, indexing="xy"), dim=-1)  # [H, W, (x, y)]
        x = torch.einsum("hwk,bck->bhwc", grid, freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate:g}, "
                f"bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """Modulated convolution of the input (normalised by its tracked magnitude), then filtered leaky
    ReLU from the input's to the output's sampling rate. The last layer (`is_torgb`) is a 1x1
    convolution without demodulation or non-linearity."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 inp: LayerSpec, out: LayerSpec, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False, conv_clamp: float | None = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels, self.out_channels = inp.channels, out.channels
        self.in_size, self.out_size = inp.size, out.size
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        self.affine = FullyConnectedLayer(w_dim, inp.channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out.channels, inp.channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out.channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        tmp_rate = max(inp.sampling_rate, out.sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor = tmp_rate // inp.sampling_rate
        self.down_factor = tmp_rate // out.sampling_rate
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(up_taps, inp.cutoff, inp.half_width * 2, tmp_rate))
        radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(down_taps, out.cutoff, out.half_width * 2, tmp_rate,
                                                                  radial=radial))
        # Pad so the output has out.size pixels, centred as in the paper's symmetric interpretation.
        total = ((out.size - 1) * self.down_factor + 1 - (inp.size + self.conv_kernel - 1) * self.up_factor
                 + up_taps + down_taps - 2)
        lo = (total + self.up_factor) // 2
        self.padding = [lo, total - lo, lo, total - lo]

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool | None = None, force_fp32: bool = False,
                update_emas: bool = False) -> torch.Tensor:
        if update_emas:
            magnitude = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)
        weight = self.weight
        if self.is_torgb:
            styles = styles / math.sqrt(self.in_channels * self.conv_kernel ** 2)
        else:  # scale-free inputs to the demodulation, as NVIDIA computes them
            weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
            styles = styles * styles.square().mean().rsqrt()
        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if fp16 else torch.float32
        if fused_modconv is None:
            fused_modconv = prefer_fused_modconv(self.training, dtype, x.shape[0], self.in_size, x.device)
        x = x.to(dtype) * self.magnitude_ema.rsqrt().to(dtype)
        x = modulated_conv2d(x, weight, styles, padding=self.conv_kernel - 1, demodulate=not self.is_torgb,
                             fused_modconv=fused_modconv)
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(dtype), up=self.up_factor,
                              down=self.down_factor, padding=self.padding, gain=1 if self.is_torgb else math.sqrt(2),
                              slope=1 if self.is_torgb else 0.2, clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}x{self.in_size}, out={self.out_channels}x{self.out_size}, "
                f"up={self.up_factor}, down={self.down_factor}, torgb={self.is_torgb}, "
                f"critical={self.is_critically_sampled}")


def transform_matrix(translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """The `SynthesisInput.transform` that shifts the image by `translate` (fractions of its width,
    height) and turns it by `rotate` degrees, as NVIDIA's gen_images.py sets it."""
    a = math.radians(rotate)
    m = torch.tensor([[math.cos(a), math.sin(a), translate[0]],
                      [-math.sin(a), math.cos(a), translate[1]],
                      [0.0, 0.0, 1.0]], dtype=torch.float64)
    return torch.linalg.inv(m).to(torch.float32)


class SynthesisNetwork(nn.Module):
    """W+ -> image: Fourier features, `num_layers` alias-free layers, ToRGB, times `output_scale`."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **layer_kwargs):
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_ws = num_layers + 2
        self.output_scale = output_scale
        specs = layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                               first_cutoff, first_stopband, last_stopband_rel, margin_size)
        self.input = SynthesisInput(w_dim, specs[0].channels, specs[0].size, specs[0].sampling_rate,
                                    specs[0].cutoff)
        self.layer_names = []
        for idx, spec in enumerate(specs):
            layer = SynthesisLayer(w_dim, is_torgb=idx == num_layers,
                                   is_critically_sampled=idx >= num_layers - num_critical,
                                   use_fp16=spec.sampling_rate * 2 ** num_fp16_res > img_resolution,
                                   inp=specs[max(idx - 1, 0)], out=spec, **layer_kwargs)
            name = f"L{idx}_{spec.size}_{spec.channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def set_transform(self, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> None:
        """Shift the images by `translate` (fractions of their size) and turn them by `rotate` degrees."""
        self.input.transform.copy_(transform_matrix(translate, rotate))

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: bool | None = None,
                force_fp32: bool = False, update_emas: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Images for W+ `ws` [N, num_ws, w_dim]; `noise_mode` and `generator` are accepted and unused."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, fused_modconv=fused_modconv, force_fp32=force_fp32, update_emas=update_emas)
        return (x * self.output_scale).to(torch.float32)


class Generator(nn.Module):
    """z (+ label) -> image: MappingNetwork followed by the alias-free SynthesisNetwork."""

    def __init__(
        self,
        z_dim: int = 512,  # input latent (Z) size
        c_dim: int = 0,  # label size, 0 = unconditional
        w_dim: int = 512,  # intermediate latent (W) size
        img_resolution: int = 256,  # output image size in pixels
        img_channels: int = 3,  # output colour channels
        mapping_layers: int = 2,  # dense layers in the mapping network (NVIDIA mapping_kwargs.num_layers)
        mapping_lr_multiplier: float = 0.01,  # learning-rate multiplier of the mapping layers (.lr_multiplier)
        mapping_w_avg_beta: float = 0.998,  # decay of the tracked mean W used for truncation (.w_avg_beta)
        channel_base: int = 32768,  # feature maps = channel_base / 2 / cutoff ...
        channel_max: int = 512,  # ... capped at channel_max (config R: both doubled)
        num_layers: int = 14,  # alias-free layers, not counting the Fourier input and ToRGB
        num_critical: int = 2,  # critically sampled layers at the end
        first_cutoff: float = 2,  # cutoff frequency of the first layer
        first_stopband: float = 2 ** 2.1,  # minimum stopband of the first layer
        last_stopband_rel: float = 2 ** 0.3,  # minimum stopband of the last layer, relative to its cutoff
        margin_size: int = 10,  # extra pixels on each side of the inner layers
        output_scale: float = 0.25,  # factor on the output image
        num_fp16_res: int = 4,  # layers sampling above img_resolution / 2**num_fp16_res run in fp16 on CUDA
        conv_kernel: int = 3,  # convolution size (config R: 1)
        filter_size: int = 6,  # low-pass taps per factor of up/downsampling
        lrelu_upsampling: int = 2,  # oversampling of the leaky ReLU
        use_radial_filters: bool = False,  # radially symmetric (jinc) downsampling filters: config R
        conv_clamp: float | None = 256,  # clamp layer outputs to +-conv_clamp, None = no clamp
        magnitude_ema_beta: float = 0.999,  # decay of the tracked input magnitude of each layer
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim, img_resolution, img_channels, channel_base=channel_base, channel_max=channel_max,
            num_layers=num_layers, num_critical=num_critical, first_cutoff=first_cutoff,
            first_stopband=first_stopband, last_stopband_rel=last_stopband_rel, margin_size=margin_size,
            output_scale=output_scale, num_fp16_res=num_fp16_res, conv_kernel=conv_kernel, filter_size=filter_size,
            lrelu_upsampling=lrelu_upsampling, use_radial_filters=use_radial_filters, conv_clamp=conv_clamp,
            magnitude_ema_beta=magnitude_ema_beta)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_ws=self.num_ws, num_layers=mapping_layers,
                                      lr_multiplier=mapping_lr_multiplier, w_avg_beta=mapping_w_avg_beta)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random",
                fused_modconv: bool | None = None, update_w_avg: bool = True, update_emas: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_w_avg=update_w_avg)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, update_emas=update_emas,
                              generator=generator)

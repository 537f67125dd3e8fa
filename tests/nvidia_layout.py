"""Write network pickles in NVIDIA's own layouts, for tests (no NVIDIA code needed).

PyTorch snapshots (`snapshot_pickle`) follow `torch_utils/persistence.py` and
`training/training_loop.py` of stylegan2-ada-pytorch and stylegan3: a dict
`{training_set_kwargs, G, D, G_ema, augment_pipe}` written with a plain `pickle.dump`;
each network object reduces to `(_reconstruct_persistent_obj, (meta,), None)`, where
`meta = {type: 'class', version: 6, module_src, class_name: <bare __name__>, state}` and
`state` is the module's `__dict__` (torch's own fields, NVIDIA's attributes, then
`_init_args` / `_init_kwargs`). Parameters pickle through torch's own reduce
(`torch._utils._rebuild_parameter` around `_rebuild_tensor_v2`, storages as
`torch.storage._load_from_bytes` blobs). Stand-ins for `torch_utils.persistence` and
`dnnlib` exist only while dumping, so loading cannot fall back on them.

TensorFlow-era pickles hold `(G, D, Gs)`, each a `dnnlib.tflib.network.Network` (`TFNetwork`
here) whose `__getstate__` dict lists its variables as `(name, numpy array)`; `tf_layout.py`
builds them and computes what their arrays mean.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import tiny_nets
from facegen_cli.models import stylegan3 as sg3

PERSISTENCE_VERSION = 6
# The defining module's source travels in every record; these stand in for NVIDIA's text.
ADA_SRC = '"""stand-in for stylegan2-ada-pytorch training/networks.py"""\nclass SynthesisBlock: pass\n'
SG3_SG2_SRC = '"""stand-in for stylegan3 training/networks_stylegan2.py"""\nclass SynthesisBlock: pass\n'
SG3_SRC = '"""stand-in for stylegan3 training/networks_stylegan3.py"""\nclass SynthesisInput: pass\n'
AUGMENT_SRC = '"""stand-in for training/augment.py"""\nclass AugmentPipe: pass\n'
ALIAS_FREE = "sg3-alias-free"  # flavour of networks_stylegan3's generator records
FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util", "dnnlib.tflib",
                "dnnlib.tflib.network")


@contextlib.contextmanager
def fake_nvidia_modules():
    """Register stand-ins for `torch_utils.persistence`, `dnnlib.util` and `dnnlib.tflib.network`."""
    mods = {name: types.ModuleType(name) for name in FAKE_MODULES}

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("only used for dumping")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["dnnlib.util"].EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    mods["dnnlib.tflib.network"].Network = TFNetwork
    sys.modules.update(mods)
    try:
        yield mods["torch_utils.persistence"]._reconstruct_persistent_obj, mods["dnnlib.util"].EasyDict
    finally:
        for name in FAKE_MODULES:
            sys.modules.pop(name, None)


class Persistent:
    """Reduces exactly as a `@persistence.persistent_class` object does."""

    def __init__(self, reconstruct, meta: dict):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,), None


def _gain(value: float) -> Any:
    """NVIDIA computes gains with numpy, so they pickle as numpy scalars (1 stays a Python int)."""
    return 1 if value == 1 else np.float64(value)


def _clamp(value: float | None) -> Any:
    return int(value) if value is not None and float(value).is_integer() else value


def nvidia_attrs(module: nn.Module, flavour: str, ctx: dict) -> dict:
    """The attributes NVIDIA's class of the same name stores, in its order, valued from our module."""
    kind, sg3 = type(module).__name__, flavour == "sg3"
    m = module
    if kind == "Generator":
        return dict(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, img_resolution=m.img_resolution,
                    img_channels=m.img_channels, num_ws=m.num_ws)
    if kind == "SynthesisNetwork":
        out = dict(w_dim=m.w_dim, img_resolution=m.img_resolution, img_resolution_log2=int(math.log2(m.img_resolution)),
                   img_channels=m.img_channels)
        if sg3:
            out["num_fp16_res"] = sum(1 for r in m.block_resolutions if getattr(m, f"b{r}").use_fp16)
        return {**out, "block_resolutions": list(m.block_resolutions), "num_ws": m.num_ws}
    if kind == "SynthesisBlock":
        out = dict(in_channels=m.in_channels, w_dim=ctx["w_dim"], resolution=m.resolution,
                   img_channels=ctx["img_channels"], is_last=m.resolution == ctx["img_resolution"],
                   architecture="skip", use_fp16=m.use_fp16, channels_last=False)
        if sg3:
            out["fused_modconv_default"] = "inference_only"
        return {**out, "num_conv": m.num_conv, "num_torgb": m.num_torgb}
    io = {"in_channels": m.weight.shape[1], "out_channels": m.weight.shape[0]} if hasattr(m, "weight") else {}
    if kind == "SynthesisLayer":
        head = {**io, "w_dim": ctx["w_dim"]} if sg3 else {}
        return {**head, "resolution": m.resolution, "up": m.up, "use_noise": m.use_noise, "activation": m.activation,
                "conv_clamp": _clamp(m.conv_clamp), "padding": m.padding, "act_gain": _gain(m.act_gain)}
    if kind == "ToRGBLayer":
        head = {**io, "w_dim": ctx["w_dim"]} if sg3 else {}
        return {**head, "conv_clamp": _clamp(m.conv_clamp), "weight_gain": _gain(m.weight_gain)}
    if kind == "FullyConnectedLayer":
        head = dict(in_features=m.in_features, out_features=m.out_features) if sg3 else {}
        return {**head, "activation": m.activation, "weight_gain": _gain(m.weight_gain),
                "bias_gain": 1 if m.bias_gain == 1 else m.bias_gain}
    if kind == "MappingNetwork":
        return dict(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, num_ws=m.num_ws, num_layers=m.num_layers,
                    w_avg_beta=m.w_avg_beta)
    if kind == "Discriminator":
        return dict(c_dim=m.c_dim, img_resolution=m.img_resolution,
                    img_resolution_log2=int(math.log2(m.img_resolution)), img_channels=m.img_channels,
                    block_resolutions=list(m.block_resolutions))
    if kind == "DiscriminatorBlock":
        num_layers = 3 + (m.in_channels == 0)  # fromrgb, conv0, conv1, skip
        first = ctx.setdefault("d_layer_idx", 0)
        ctx["d_layer_idx"] = first + num_layers
        return dict(in_channels=m.in_channels, resolution=m.resolution, img_channels=ctx["img_channels"],
                    first_layer_idx=first, architecture="resnet", use_fp16=m.use_fp16, channels_last=False,
                    num_layers=num_layers)
    if kind == "Conv2dLayer":
        head = io if sg3 else {}
        out = {**head, "activation": m.activation, "up": m.up, "down": m.down, "conv_clamp": _clamp(m.conv_clamp),
               "padding": m.padding, "weight_gain": _gain(m.weight_gain), "act_gain": _gain(m.act_gain)}
        return {**out, "bias": None} if m.bias is None else out
    if kind == "DiscriminatorEpilogue":
        return dict(in_channels=m.conv.weight.shape[0], cmap_dim=m.cmap_dim, resolution=4,
                    img_channels=ctx["img_channels"], architecture="resnet")
    if kind == "MinibatchStdLayer":
        return dict(group_size=m.group_size, num_channels=m.num_channels)
    raise TypeError(f"no NVIDIA counterpart for {kind}")


def persistent_record(module: nn.Module, reconstruct, flavour: str, module_src: str, ctx: dict,
                      init_kwargs: dict | None = None, class_name: str | None = None,
                      attrs: dict | None = None) -> Persistent:
    """The persistent record of `module` (recursively): torch's fields, NVIDIA's attributes, init args.

    Top-level networks carry the exact kwargs `training_loop.py` built them with; sub-modules
    carry their NVIDIA attributes as kwargs (facegen reads neither).
    """
    state = {k: v for k, v in vars(module).items() if k.startswith("_") or k == "training"}
    state["training"] = False
    base = ctx.get("path", "")
    state["_modules"] = {}
    for name, child in module._modules.items():
        ctx["path"] = f"{base}.{name}" if base else name
        state["_modules"][name] = None if child is None else persistent_record(child, reconstruct, flavour,
                                                                               module_src, ctx)
    ctx["path"] = base
    own_init = None
    if attrs is not None:
        own = attrs
    elif flavour == ALIAS_FREE:
        own, own_init = stylegan3_attrs(module, ctx)
    else:
        own = nvidia_attrs(module, flavour, ctx)
    if type(module).__name__ == "DiscriminatorEpilogue" and module.mbstd is None:
        own = {**own, "mbstd": None}
        state["_modules"].pop("mbstd", None)
    state.update(own)
    state["_init_args"] = ()
    if init_kwargs is None:
        init_kwargs = own_init if own_init is not None else {
            k: v for k, v in own.items() if not isinstance(v, np.floating)}
    state["_init_kwargs"] = dict(init_kwargs)
    meta = dict(type="class", version=PERSISTENCE_VERSION, module_src=module_src,
                class_name=class_name or type(module).__name__, state=state)
    return Persistent(reconstruct, meta)


def training_kwargs(net: nn.Module, kwargs: dict, flavour: str, EasyDict) -> dict:
    """`_init_kwargs` of a top-level G or D as `training_loop.py` builds it from train.py's options,
    given the facegen kwargs `kwargs` our module was built with."""
    common = dict(c_dim=net.c_dim, img_resolution=net.img_resolution, img_channels=net.img_channels)
    sizes = dict(channel_base=kwargs["channel_base"], channel_max=kwargs["channel_max"],
                 num_fp16_res=kwargs.get("num_fp16_res", 0), conv_clamp=_clamp(kwargs.get("conv_clamp")))
    if type(net).__name__ == "Discriminator":
        return dict(block_kwargs=EasyDict(), mapping_kwargs=EasyDict(),
                    epilogue_kwargs=EasyDict(mbstd_group_size=net.b4.mbstd.group_size if net.b4.mbstd else None),
                    **sizes, **common)
    mapping = EasyDict(num_layers=net.mapping.num_layers)
    if kwargs.get("mapping_lr_multiplier", 0.01) != 0.01:
        mapping.lr_multiplier = kwargs["mapping_lr_multiplier"]
    if flavour == "sg3":
        return dict(z_dim=net.z_dim, w_dim=net.w_dim, mapping_kwargs=mapping, **sizes,
                    fused_modconv_default="inference_only", **common)
    return dict(z_dim=net.z_dim, w_dim=net.w_dim, mapping_kwargs=mapping, synthesis_kwargs=EasyDict(sizes), **common)


def augment_pipe_record(reconstruct, p: float = 0.3) -> Persistent:
    """An `AugmentPipe` ('bgc') as the snapshot stores it: its probabilities and filter buffers."""
    pipe = nn.Module()
    pipe.register_buffer("p", torch.tensor(p))
    pipe.register_buffer("Hz_geom", torch.randn(12))
    pipe.register_buffer("Hz_fbank", torch.randn(4, 43))
    probs = dict(xflip=1.0, rotate90=1.0, xint=1.0, xint_max=0.125, scale=1.0, rotate=1.0, aniso=1.0, xfrac=1.0,
                 scale_std=0.2, rotate_max=1.0, aniso_std=0.2, xfrac_std=0.125, brightness=1.0, contrast=1.0,
                 lumaflip=1.0, hue=1.0, saturation=1.0, brightness_std=0.2, contrast_std=0.5, hue_max=1.0,
                 saturation_std=1.0, imgfilter=0.0, imgfilter_bands=[1, 1, 1, 1], imgfilter_std=1.0, noise=0.0,
                 cutout=0.0, noise_std=0.1, cutout_size=0.5)
    bgc = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip",
           "hue", "saturation")
    init = {k: 1 for k in bgc}
    return persistent_record(pipe, reconstruct, "ada", AUGMENT_SRC, {}, init_kwargs=init, class_name="AugmentPipe",
                             attrs=probs)


def snapshot_pickle(path: Path, G_ema: nn.Module, G_kwargs: dict, G: nn.Module | None = None,
                    D: nn.Module | None = None, D_kwargs: dict | None = None, flavour: str = "ada",
                    module_src: str | None = None, augment: bool = True, numpy_legacy: bool = False,
                    records: dict | None = None) -> Path:
    """Write a `network-snapshot-*.pkl` for our modules in NVIDIA's layout.

    `G_kwargs` / `D_kwargs` are the facegen kwargs the modules were built with, from which the
    top-level `init_kwargs` are written (D_kwargs defaults to the tiny test discriminator's).
    flavour 'ada' is stylegan2-ada-pytorch (`training/networks.py`), 'sg3' is the stylegan3
    repository's StyleGAN2 (`training/networks_stylegan2.py`); a StyleGAN3 generator is written as
    `training/networks_stylegan3.py` records it (pass flavour 'sg3' for its D); `records` replaces entries
    with prebuilt (name -> callable(reconstruct, EasyDict) -> Persistent) records.
    """
    src = module_src if module_src is not None else (SG3_SG2_SRC if flavour == "sg3" else ADA_SRC)
    with fake_nvidia_modules() as (reconstruct, EasyDict):
        def record(net, kwargs):
            if net is None:
                return None
            if isinstance(net, sg3.Generator):  # networks_stylegan3.Generator
                init = stylegan3_init_kwargs(net, kwargs, EasyDict)
                return persistent_record(net, reconstruct, ALIAS_FREE, SG3_SRC, _stylegan3_context(net, init),
                                         init_kwargs=init)
            ctx = dict(w_dim=getattr(net, "w_dim", None), img_channels=net.img_channels,
                       img_resolution=net.img_resolution)
            return persistent_record(net, reconstruct, flavour, src, ctx,
                                     init_kwargs=training_kwargs(net, kwargs, flavour, EasyDict))

        snapshot = {"training_set_kwargs": dict(EasyDict(
            class_name="training.dataset.ImageFolderDataset", path="~/datasets/faces-32x32.zip",
            use_labels=bool(G_ema.c_dim), max_size=None, xflip=False, resolution=G_ema.img_resolution))}
        D_kwargs = D_kwargs or tiny_nets.D_KWARGS
        snapshot.update(G=record(G, G_kwargs), D=record(D, D_kwargs), G_ema=record(G_ema, G_kwargs),
                        augment_pipe=augment_pipe_record(reconstruct) if augment else None)
        for name, make in (records or {}).items():
            snapshot[name] = make(reconstruct, EasyDict)
        data = pickle.dumps(snapshot)  # training_loop.py: pickle.dump(snapshot_data, f)
    if numpy_legacy:  # numpy < 2 names its scalar constructor numpy.core.multiarray.scalar
        data = numpy_legacy_names(data)
    path.write_bytes(data)
    return path


def numpy_legacy_names(data: bytes) -> bytes:
    """Name numpy's constructors as numpy < 2 did (`numpy.core.multiarray`), in protocol 3 or 4 framing."""
    out = data.replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
    out = out.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy._core" not in out and b"numpy.core.multiarray" in out
    return out


# --- StyleGAN3 (training/networks_stylegan3.py) -------------------------------------------------------

def stylegan3_settings(kwargs: dict) -> dict:
    """All of our StyleGAN3 Generator's settings: its defaults updated with `kwargs`."""
    defaults = {k: p.default for k, p in inspect.signature(sg3.Generator).parameters.items()}
    return {**defaults, **kwargs}


def stylegan3_init_kwargs(net: nn.Module, kwargs: dict, EasyDict) -> dict:
    """`_init_kwargs` of a networks_stylegan3.Generator as stylegan3's train.py + training_loop.py build it:
    z_dim, w_dim, mapping_kwargs, channel_base/max, magnitude_ema_beta, the --cfg stylegan3-r changes, any
    other non-default setting, then the dataset's c_dim, img_resolution, img_channels."""
    full, defaults = stylegan3_settings(kwargs), stylegan3_settings({})
    mapping = EasyDict(num_layers=full["mapping_layers"])
    for theirs, ours in sg3.MAPPING_KWARGS.items():
        if theirs != "num_layers" and full[ours] != defaults[ours]:
            mapping[theirs] = full[ours]
    out = dict(z_dim=net.z_dim, w_dim=net.w_dim, mapping_kwargs=mapping, channel_base=full["channel_base"],
               channel_max=full["channel_max"], magnitude_ema_beta=full["magnitude_ema_beta"])
    if full["use_radial_filters"]:
        out.update(conv_kernel=full["conv_kernel"], use_radial_filters=True)
    skip = set(out) | set(sg3.MAPPING_KWARGS.values()) | {"c_dim", "img_resolution", "img_channels"}
    out.update({k: _clamp(v) if k == "conv_clamp" else v for k, v in full.items()
                if k not in skip and v != defaults[k]})
    return {**out, "c_dim": net.c_dim, "img_resolution": net.img_resolution, "img_channels": net.img_channels}


def _stylegan3_context(G: nn.Module, init_kwargs: dict) -> dict:
    """What the records of a StyleGAN3 generator's parts need: layer specs and the kwargs passed down."""
    full = stylegan3_settings(kwargs_from_init(init_kwargs))
    names = inspect.signature(sg3.layer_schedule).parameters
    specs = sg3.layer_schedule(**{k: full[k] for k in names})
    own = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs"}
    synthesis = dict(w_dim=G.w_dim, img_resolution=G.img_resolution, img_channels=G.img_channels,
                     **{k: v for k, v in init_kwargs.items() if k not in own})
    consumed = set(inspect.signature(sg3.SynthesisNetwork).parameters) - {"layer_kwargs"}
    return dict(specs=specs, synthesis_kwargs=synthesis, mapping_kwargs=dict(init_kwargs["mapping_kwargs"]),
                layer_kwargs={k: v for k, v in synthesis.items() if k not in consumed},
                use_radial_filters=full["use_radial_filters"], w_dim=G.w_dim)


def kwargs_from_init(init_kwargs: dict) -> dict:
    """Our kwargs for the settings of `init_kwargs` that our Generator has (a test may add others)."""
    known = set(inspect.signature(sg3.Generator).parameters) | {"mapping_kwargs"}
    return sg3.kwargs_from_nvidia({k: dict(v) if isinstance(v, dict) else v for k, v in init_kwargs.items()
                                   if k in known})


def _taps(f: torch.Tensor | None) -> int:
    return 1 if f is None else int(f.shape[0])


def stylegan3_attrs(module: nn.Module, ctx: dict) -> tuple[dict, dict]:
    """(attributes, init kwargs) NVIDIA's networks_stylegan3 class of the same name stores, in its order."""
    kind, m, path = type(module).__name__, module, ctx.get("path", "")
    f64 = np.float64
    if kind == "Generator":
        return dict(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, img_resolution=m.img_resolution,
                    img_channels=m.img_channels, num_ws=m.num_ws), {}
    if kind == "SynthesisNetwork":
        full = stylegan3_settings(kwargs_from_init(ctx["synthesis_kwargs"]))
        return dict(w_dim=m.w_dim, num_ws=m.num_ws, img_resolution=m.img_resolution, img_channels=m.img_channels,
                    num_layers=full["num_layers"], num_critical=full["num_critical"],
                    margin_size=full["margin_size"], output_scale=full["output_scale"],
                    num_fp16_res=full["num_fp16_res"], layer_names=list(m.layer_names)), ctx["synthesis_kwargs"]
    if kind == "SynthesisInput":
        spec = ctx["specs"][0]
        init = dict(w_dim=ctx["w_dim"], channels=m.channels, size=spec.size, sampling_rate=f64(spec.sampling_rate),
                    bandwidth=f64(spec.cutoff))
        return {**init, "size": np.array([spec.size, spec.size])}, init
    if kind == "SynthesisLayer":
        idx = int(path.rsplit(".", 1)[-1].split("_")[0][1:])
        inp, out = ctx["specs"][max(idx - 1, 0)], ctx["specs"][idx]
        head = dict(w_dim=ctx["w_dim"], is_torgb=m.is_torgb, is_critically_sampled=m.is_critically_sampled,
                    use_fp16=np.bool_(m.use_fp16), in_channels=m.in_channels, out_channels=m.out_channels)
        rates = dict(in_sampling_rate=inp.sampling_rate, out_sampling_rate=out.sampling_rate)
        bands = dict(in_cutoff=f64(inp.cutoff), out_cutoff=f64(out.cutoff), in_half_width=f64(inp.half_width),
                     out_half_width=f64(out.half_width))
        tmp_rate = inp.sampling_rate * m.up_factor
        attrs = dict(**head, in_size=np.array([inp.size] * 2), out_size=np.array([out.size] * 2), **rates,
                     tmp_sampling_rate=tmp_rate, **bands, conv_kernel=m.conv_kernel,
                     conv_clamp=_clamp(m.conv_clamp), magnitude_ema_beta=m.magnitude_ema_beta,
                     up_factor=m.up_factor, up_taps=_taps(m.up_filter), down_factor=m.down_factor,
                     down_taps=_taps(m.down_filter),
                     down_radial=bool(ctx["use_radial_filters"] and not m.is_critically_sampled),
                     padding=[int(p) for p in m.padding])
        init = dict(**head, in_size=inp.size, out_size=out.size, **rates, **bands, **ctx["layer_kwargs"])
        return attrs, init
    if kind == "FullyConnectedLayer":
        attrs = dict(in_features=m.in_features, out_features=m.out_features, activation=m.activation,
                     weight_gain=f64(m.weight_gain), bias_gain=1 if m.bias_gain == 1 else float(m.bias_gain))
        if path.endswith("input.affine"):
            return attrs, {"weight_init": 0, "bias_init": [1, 0, 0, 0]}
        if path.endswith(".affine"):
            return attrs, {"bias_init": 1}
        if path.endswith(".embed"):
            return attrs, {}
        return attrs, {"activation": m.activation, "lr_multiplier": attrs["bias_gain"]}
    if kind == "MappingNetwork":
        attrs = dict(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, num_ws=m.num_ws, num_layers=m.num_layers,
                     w_avg_beta=m.w_avg_beta)
        return ({**attrs, "embed": None} if not m.c_dim else attrs,
                dict(z_dim=m.z_dim, c_dim=m.c_dim, w_dim=m.w_dim, num_ws=m.num_ws, **ctx["mapping_kwargs"]))
    raise TypeError(f"no networks_stylegan3 counterpart for {kind}")


# --- TensorFlow-era pickles -------------------------------------------------------------------------

class TFNetwork:
    """Pickles as `dnnlib.tflib.network.Network` does: NEWOBJ of the class, then its state dict."""

    def __init__(self, name: str, func_name: str, variables: list, components: dict | None = None,
                 static_kwargs: dict | None = None, version: int = 4):
        self._state = dict(version=version, name=name, static_kwargs=dict(static_kwargs or {}),
                           components=dict(components or {}), build_module_src=TF_SRC,
                           build_func_name=func_name, variables=list(variables))
        if version >= 5:  # stylegan2-ada (TF) also stores its input/output templates
            self._state.update(input_shapes=[[None, 1]], output_shapes=[[None, 1]], input_names=["x"],
                               output_names=["y"])

    def __getstate__(self) -> dict:
        return self._state


TF_SRC = '"""stand-in for training/networks_stylegan2.py (TensorFlow)"""\ndef G_main(): pass\n'
TFNetwork.__module__ = "dnnlib.tflib.network"
TFNetwork.__qualname__ = TFNetwork.__name__ = "Network"

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

TensorFlow-era pickles (`tf_pickle`) hold `(G, D, Gs)`, each a `dnnlib.tflib.network.Network`
whose `__getstate__` dict lists its variables as `(name, numpy array)`; `tf_generator` and
`tf_discriminator` compute what those arrays mean by following the TF code's own operations.
"""
from __future__ import annotations

import contextlib
import math
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import tiny_nets

PERSISTENCE_VERSION = 6
# The defining module's source travels in every record; these stand in for NVIDIA's text.
ADA_SRC = '"""stand-in for stylegan2-ada-pytorch training/networks.py"""\nclass SynthesisBlock: pass\n'
SG3_SG2_SRC = '"""stand-in for stylegan3 training/networks_stylegan2.py"""\nclass SynthesisBlock: pass\n'
SG3_SRC = '"""stand-in for stylegan3 training/networks_stylegan3.py"""\nclass SynthesisInput: pass\n'
AUGMENT_SRC = '"""stand-in for training/augment.py"""\nclass AugmentPipe: pass\n'
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
    state["_modules"] = {name: None if child is None else
                         persistent_record(child, reconstruct, flavour, module_src, ctx)
                         for name, child in module._modules.items()}
    own = nvidia_attrs(module, flavour, ctx) if attrs is None else attrs
    if type(module).__name__ == "DiscriminatorEpilogue" and module.mbstd is None:
        own = {**own, "mbstd": None}
        del state["_modules"]["mbstd"]
    state.update(own)
    state["_init_args"] = ()
    state["_init_kwargs"] = dict(init_kwargs) if init_kwargs is not None else {
        k: v for k, v in own.items() if not isinstance(v, np.floating)}
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
    repository's StyleGAN2 (`training/networks_stylegan2.py`); `records` replaces entries
    with prebuilt (name -> callable(reconstruct, EasyDict) -> Persistent) records.
    """
    src = module_src if module_src is not None else (SG3_SG2_SRC if flavour == "sg3" else ADA_SRC)
    with fake_nvidia_modules() as (reconstruct, EasyDict):
        def record(net, kwargs):
            if net is None:
                return None
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
        data = _numpy_legacy(data)
    path.write_bytes(data)
    return path


def _numpy_legacy(data: bytes) -> bytes:
    """Name numpy's constructors as numpy < 2 did (`numpy.core.multiarray`), in protocol 3 or 4 framing."""
    out = data.replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
    out = out.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy._core" not in out and b"numpy.core.multiarray" in out
    return out


def stylegan3_generator_record(reconstruct, EasyDict, resolution: int = 32, channels: int = 16,
                               w_dim: int = 16) -> Persistent:
    """An alias-free (StyleGAN3-T) generator record: `input` plus L<i>_<size>_<channels> layers."""
    torch.manual_seed(0)

    def layer(cin: int, cout: int, size: int) -> nn.Module:
        m = nn.Module()
        m.affine = nn.Linear(w_dim, cin)
        m.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        m.bias = nn.Parameter(torch.zeros(cout))
        m.register_buffer("magnitude_ema", torch.ones([]))
        m.register_buffer("up_filter", torch.randn(12))
        m.register_buffer("down_filter", torch.randn(12))
        m.size = size
        return m

    synthesis, G = nn.Module(), nn.Module()
    synthesis.input = nn.Module()
    synthesis.input.register_buffer("freqs", torch.randn(channels, 2))
    synthesis.input.weight = nn.Parameter(torch.randn(channels, channels))
    synthesis.L0_36_16 = layer(channels, channels, 36)
    synthesis.L1_32_3 = layer(channels, 3, resolution)
    G.synthesis, G.mapping = synthesis, nn.Module()
    G.mapping.fc0 = nn.Linear(w_dim, w_dim)
    G.mapping.register_buffer("w_avg", torch.zeros(w_dim))
    names = {id(G): "Generator", id(synthesis): "SynthesisNetwork", id(synthesis.input): "SynthesisInput",
             id(G.mapping): "MappingNetwork", id(G.mapping.fc0): "FullyConnectedLayer"}

    def rec(m: nn.Module, attrs: dict) -> Persistent:
        state = {k: v for k, v in vars(m).items() if k.startswith("_")}
        state.update(training=False, **attrs, _init_args=(), _init_kwargs=dict(attrs))
        state["_modules"] = {n: rec(c, {"size": getattr(c, "size", None)}) for n, c in m._modules.items()}
        name = names.get(id(m), "SynthesisLayer")
        return Persistent(reconstruct, dict(type="class", version=PERSISTENCE_VERSION, module_src=SG3_SRC,
                                            class_name=name, state=state))

    return rec(G, dict(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3, num_ws=3))


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


def _nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return int(np.clip(int(fmap_base / 2.0 ** stage), 1, fmap_max))


def tf_generator_variables(rng: np.random.RandomState, resolution: int, fmap_base: int, fmap_max: int,
                           latent: int, dlatent: int, mapping_layers: int, label_size: int = 0,
                           num_channels: int = 3) -> tuple[list, list, list]:
    """(G own, mapping, synthesis) variable lists of a TF StyleGAN2 generator, random values, TF order."""
    def rand(*shape: int) -> np.ndarray:
        return rng.randn(*shape).astype(np.float32)

    mapping = []
    if label_size:
        mapping += [("LabelEmbed/weight", rand(label_size, latent)), ("LabelEmbed/bias", rand(latent) * 0.1)]
    fan_in = latent * (2 if label_size else 1)
    for i in range(mapping_layers):
        mapping += [(f"Dense{i}/weight", rand(fan_in, dlatent)), (f"Dense{i}/bias", rand(dlatent))]
        fan_in = dlatent
    log2 = int(math.log2(resolution))
    synthesis = [(f"noise{i}", rand(1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2))) for i in range(log2 * 2 - 3)]

    def modulated(scope: str, k: int, cin: int, cout: int, noise: bool = True) -> None:
        synthesis.extend([(f"{scope}/weight", rand(k, k, cin, cout)), (f"{scope}/mod_weight", rand(dlatent, cin)),
                          (f"{scope}/mod_bias", rand(cin) * 0.2)])
        if noise:
            synthesis.append((f"{scope}/noise_strength", np.float32(rng.randn() * 0.3)))
        synthesis.append((f"{scope}/bias", rand(cout) * 0.2))

    c4 = _nf(1, fmap_base, fmap_max)
    synthesis.append(("4x4/Const/const", rand(1, c4, 4, 4)))
    modulated("4x4/Conv", 3, c4, c4)
    modulated("4x4/ToRGB", 1, c4, num_channels, noise=False)
    for res in range(3, log2 + 1):
        cin, cout = _nf(res - 2, fmap_base, fmap_max), _nf(res - 1, fmap_base, fmap_max)
        modulated(f"{2 ** res}x{2 ** res}/Conv0_up", 3, cin, cout)
        modulated(f"{2 ** res}x{2 ** res}/Conv1", 3, cout, cout)
        modulated(f"{2 ** res}x{2 ** res}/ToRGB", 1, cout, num_channels, noise=False)
    own = [("lod", np.float32(0)), ("dlatent_avg", rand(dlatent))]
    return own, mapping, synthesis


def tf_discriminator_variables(rng: np.random.RandomState, resolution: int, fmap_base: int, fmap_max: int,
                               mbstd_num_features: int = 1, label_size: int = 0, mapping_layers: int = 0,
                               num_channels: int = 3) -> list:
    """Variables of a TF StyleGAN2 residual discriminator (conditional: stylegan2-ada's), random values."""
    def rand(*shape: int) -> np.ndarray:
        return rng.randn(*shape).astype(np.float32)

    log2 = int(math.log2(resolution))
    nf0 = _nf(0, fmap_base, fmap_max)
    out = []
    if label_size:
        out += [("LabelEmbed/weight", rand(label_size, nf0)), ("LabelEmbed/bias", rand(nf0))]
        for i in range(mapping_layers):
            out += [(f"Mapping{i}/weight", rand(nf0, nf0)), (f"Mapping{i}/bias", rand(nf0))]
    for res in range(log2, 2, -1):
        scope = f"{2 ** res}x{2 ** res}"
        cin, cout = _nf(res - 1, fmap_base, fmap_max), _nf(res - 2, fmap_base, fmap_max)
        if res == log2:
            out += [(f"{scope}/FromRGB/weight", rand(1, 1, num_channels, cin)), (f"{scope}/FromRGB/bias", rand(cin))]
        out += [(f"{scope}/Conv0/weight", rand(3, 3, cin, cin)), (f"{scope}/Conv0/bias", rand(cin)),
                (f"{scope}/Conv1_down/weight", rand(3, 3, cin, cout)), (f"{scope}/Conv1_down/bias", rand(cout)),
                (f"{scope}/Skip/weight", rand(1, 1, cin, cout))]
    c4 = _nf(1, fmap_base, fmap_max)
    out += [("4x4/Conv/weight", rand(3, 3, c4 + mbstd_num_features, c4)), ("4x4/Conv/bias", rand(c4)),
            ("4x4/Dense0/weight", rand(c4 * 16, nf0)), ("4x4/Dense0/bias", rand(nf0)),
            ("Output/weight", rand(nf0, nf0 if label_size else 1)), ("Output/bias", rand(nf0 if label_size else 1))]
    return out


def tf_generator_network(own: list, mapping: list, synthesis: list, static_kwargs: dict,
                         version: int = 4, name: str = "G") -> TFNetwork:
    """A TF `G_main` network with its `synthesis` and `mapping` components (in TF's creation order)."""
    comps = {"synthesis": TFNetwork("G_synthesis", "G_synthesis_stylegan2", synthesis, static_kwargs=static_kwargs,
                                    version=version),
             "mapping": TFNetwork("G_mapping", "G_mapping", mapping, static_kwargs=static_kwargs, version=version)}
    return TFNetwork(name, "G_main", own, comps, static_kwargs, version=version)


def tf_pickle(path: Path, nets: Any, protocol: int = 4, numpy_legacy: bool = True) -> Path:
    """Write `nets` (the `(G, D, Gs)` tuple) as NVIDIA's TF code did (numpy 1.x names by default)."""
    with fake_nvidia_modules():
        data = pickle.dumps(nets, protocol=protocol)
    path.write_bytes(_numpy_legacy(data) if numpy_legacy else data)
    return path


# --- What the TF variables compute, following the TF code step by step -------------------------------

def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).double()


def _lrelu(x: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    x = F.leaky_relu(x, 0.2) * math.sqrt(2)
    return x.clamp(-clamp, clamp) if clamp is not None else x


def _dense(x: torch.Tensor, p: dict, scope: str, lrmul: float = 1.0) -> torch.Tensor:
    """dense_layer + apply_bias_act: x @ (w * he * lrmul) + b * lrmul, w stored [in, out]."""
    w = _t(p[f"{scope}/weight"])
    return x @ (w * lrmul / math.sqrt(w.shape[0])) + _t(p[f"{scope}/bias"]) * lrmul


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


def _fir(x: torch.Tensor, k: torch.Tensor, pad0: int, pad1: int) -> torch.Tensor:
    """upfirdn_2d's FIR step: pad, then filter every channel with the 2D kernel `k`."""
    c = x.shape[1]
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    return F.conv2d(x, k.flip([0, 1])[None, None].repeat(c, 1, 1, 1).to(x.dtype), groups=c)


def _kernel(gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    k = torch.outer(k, k)
    return k / k.sum() * gain


def _conv_tf(x: torch.Tensor, w: torch.Tensor, up: bool = False, down: bool = False) -> torch.Tensor:
    """TF conv2d on NCHW with a [kh, kw, in, out] kernel; up/down as upsample_conv_2d / conv_downsample_2d."""
    kh = w.shape[0]
    if up:  # conv2d_transpose with the kernel flipped and in/out swapped, then the FIR filter
        wt = w.flip([0, 1]).permute(2, 3, 0, 1)  # [in, out, kh, kw] for conv_transpose2d
        x = F.conv_transpose2d(x, wt, stride=2)
        p = (4 - 2) - (kh - 1)
        return _fir(x, _kernel(4.0), (p + 1) // 2 + 1, p // 2 + 1)
    if down:
        p = (4 - 2) + (kh - 1)
        x = _fir(x, _kernel(), (p + 1) // 2, p // 2)
        return F.conv2d(x, w.permute(3, 2, 0, 1), stride=2)
    return F.conv2d(x, w.permute(3, 2, 0, 1), padding=kh // 2)


def _modulated(x: torch.Tensor, dlatent: torch.Tensor, p: dict, scope: str, demodulate: bool = True,
               up: bool = False) -> torch.Tensor:
    """modulated_conv2d_layer, one sample at a time (TF's fused_modconv=True path)."""
    w = _t(p[f"{scope}/weight"])
    kh, _, cin, _ = w.shape
    w = w / math.sqrt(kh * kh * cin)
    s = dlatent @ (_t(p[f"{scope}/mod_weight"]) / math.sqrt(dlatent.shape[1])) + _t(p[f"{scope}/mod_bias"]) + 1
    out = []
    for b in range(x.shape[0]):
        ww = w * s[b][None, None, :, None]
        if demodulate:
            ww = ww * (ww.square().sum(dim=[0, 1, 2]) + 1e-8).rsqrt()[None, None, None, :]
        out.append(_conv_tf(x[b:b + 1], ww, up=up))
    return torch.cat(out)


def tf_generator(params: dict, z: np.ndarray, resolution: int, mapping_lrmul: float = 0.01,
                 truncation_psi: float = 1.0, labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(dlatents, images) of a TF StyleGAN2 generator with noise read from its variables (float64)."""
    x = _normalize(_t(z))
    if labels is not None:
        x = torch.cat([x, _normalize(_dense(_t(labels), params, "mapping/LabelEmbed"))], dim=1)
    i = 0
    while f"mapping/Dense{i}/weight" in params:
        x = _lrelu(_dense(x, params, f"mapping/Dense{i}", mapping_lrmul))
        i += 1
    log2 = int(math.log2(resolution))
    num_layers = log2 * 2 - 2
    dlatents = x[:, None].repeat(1, num_layers, 1)
    if truncation_psi != 1:
        avg = _t(params["dlatent_avg"])
        dlatents = avg + (dlatents - avg) * truncation_psi

    def layer(x: torch.Tensor, idx: int, scope: str, up: bool = False) -> torch.Tensor:
        x = _modulated(x, dlatents[:, idx], params, scope, up=up)
        x = x + _t(params[f"synthesis/noise{idx}"]) * float(params[f"{scope}/noise_strength"])
        return _lrelu(x + _t(params[f"{scope}/bias"])[None, :, None, None])

    def torgb(x: torch.Tensor, idx: int, scope: str) -> torch.Tensor:
        return _modulated(x, dlatents[:, idx], params, scope, demodulate=False) + \
            _t(params[f"{scope}/bias"])[None, :, None, None]

    x = _t(params["synthesis/4x4/Const/const"]).repeat(z.shape[0], 1, 1, 1)
    x = layer(x, 0, "synthesis/4x4/Conv")
    y = torgb(x, 1, "synthesis/4x4/ToRGB")
    for res in range(3, log2 + 1):
        scope = f"synthesis/{2 ** res}x{2 ** res}"
        x = layer(x, res * 2 - 5, f"{scope}/Conv0_up", up=True)
        x = layer(x, res * 2 - 4, f"{scope}/Conv1")
        y = _upsample(y) + torgb(x, res * 2 - 3, f"{scope}/ToRGB")
    return dlatents, y


def _upsample(y: torch.Tensor) -> torch.Tensor:
    """upsample_2d: insert zeros, then the FIR filter with gain 4."""
    n, c, h, w = y.shape
    up = y.new_zeros(n, c, h * 2, w * 2)
    up[:, :, ::2, ::2] = y
    return _fir(up, _kernel(4.0), 2, 1)


def tf_discriminator(params: dict, images: np.ndarray, resolution: int, mbstd_group_size: int = 4,
                     mbstd_num_features: int = 1, labels: np.ndarray | None = None,
                     mapping_lrmul: float = 0.1) -> torch.Tensor:
    """Scores of a TF StyleGAN2 residual discriminator (stylegan2-ada's label mapping when conditional)."""
    def conv(x: torch.Tensor, scope: str, down: bool = False, act: bool = True) -> torch.Tensor:
        x = _conv_tf(x, _t(params[f"{scope}/weight"]) / math.sqrt(np.prod(params[f"{scope}/weight"].shape[:3])),
                     down=down)
        if f"{scope}/bias" in params:
            x = x + _t(params[f"{scope}/bias"])[None, :, None, None]
        return _lrelu(x) if act else x

    log2 = int(math.log2(resolution))
    x = conv(_t(images), f"{resolution}x{resolution}/FromRGB")
    for res in range(log2, 2, -1):
        scope = f"{2 ** res}x{2 ** res}"
        t = x
        x = conv(x, f"{scope}/Conv0")
        x = conv(x, f"{scope}/Conv1_down", down=True)
        t = conv(t, f"{scope}/Skip", down=True, act=False)
        x = (x + t) * (1 / math.sqrt(2))
    if mbstd_num_features:
        g = min(mbstd_group_size, x.shape[0])
        n, c, h, w = x.shape
        y = x.reshape(g, -1, mbstd_num_features, c // mbstd_num_features, h, w)
        y = (y - y.mean(dim=0, keepdim=True)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4], keepdim=True).mean(dim=2)
        x = torch.cat([x, y.repeat(g, 1, h, w)], dim=1)
    x = conv(x, "4x4/Conv")
    x = _lrelu(_dense(x.reshape(x.shape[0], -1), params, "4x4/Dense0"))
    x = _dense(x, params, "Output")
    if labels is None:
        return x
    y = _normalize(_dense(_t(labels), params, "LabelEmbed"))
    i = 0
    while f"Mapping{i}/weight" in params:
        y = _lrelu(_dense(y, params, f"Mapping{i}", mapping_lrmul))
        i += 1
    return (x * y).sum(dim=1, keepdim=True) / math.sqrt(y.shape[1])

"""Import StyleGAN2 networks from NVIDIA's stylegan2-ada-pytorch / stylegan3 pickles.

The architecture is read from the records' attributes and tensor shapes, never from the
code shipped inside the pickle; the tensors then load 1:1 into our modules.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from facegen_cli.convert.safe_pickle import PersistentRecord, flatten_state_dict, load_restricted
from facegen_cli.errors import FacegenError
from facegen_cli.models.stylegan2 import Discriminator, Generator

STYLEGAN2_G = ("training.networks.Generator", "training.networks_stylegan2.Generator")
STYLEGAN2_D = ("training.networks.Discriminator", "training.networks_stylegan2.Discriminator")
STYLEGAN3_G = "training.networks_stylegan3.Generator"


def _channel_settings(channels: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) that reproduce the per-resolution channel counts."""
    channel_max = max(channels.values())
    below = [res * ch for res, ch in channels.items() if ch < channel_max]
    channel_base = min(below) if below else channel_max * max(channels)
    return channel_base, channel_max


def _count_fc(mapping: PersistentRecord) -> int:
    return sum(1 for name in mapping.children if name.startswith("fc"))


def generator_kwargs(G: PersistentRecord) -> dict:
    """Our Generator kwargs for an NVIDIA StyleGAN2 generator record."""
    if G.class_name == STYLEGAN3_G:
        raise FacegenError("this is an alias-free StyleGAN3 network; facegen supports StyleGAN2 networks only for now")
    if G.class_name not in STYLEGAN2_G:
        raise FacegenError(f"unsupported generator class {G.class_name!r}")
    synthesis = G.children["synthesis"]
    mapping = G.children["mapping"]
    blocks = {int(name[1:]): rec for name, rec in synthesis.children.items() if name.startswith("b")}
    for res, block in blocks.items():
        if block.attr("architecture", "skip") != "skip":
            raise FacegenError(f"synthesis architecture {block.attr('architecture')!r} is not supported (only 'skip')")
    channels = {res: int(flatten_state_dict(b.children["conv1"])["weight"].shape[0]) for res, b in blocks.items()}
    channel_base, channel_max = _channel_settings(channels)
    clamp = blocks[max(blocks)].children["conv1"].attr("conv_clamp")
    fc0 = mapping.children["fc0"]
    return dict(
        z_dim=int(G.attr("z_dim")), c_dim=int(G.attr("c_dim")), w_dim=int(G.attr("w_dim")),
        img_resolution=int(G.attr("img_resolution")), img_channels=int(G.attr("img_channels")),
        mapping_layers=_count_fc(mapping), mapping_lr_multiplier=float(fc0.attr("bias_gain", 0.01)),
        channel_base=channel_base, channel_max=channel_max,
        num_fp16_res=sum(1 for b in blocks.values() if b.attr("use_fp16")),
        conv_clamp=None if clamp is None else float(clamp),
    )


def discriminator_kwargs(D: PersistentRecord) -> dict:
    """Our Discriminator kwargs for an NVIDIA StyleGAN2 discriminator record."""
    if D.class_name not in STYLEGAN2_D:
        raise FacegenError(f"unsupported discriminator class {D.class_name!r}")
    blocks = {int(name[1:]): rec for name, rec in D.children.items() if name.startswith("b") and name != "b4"}
    for block in blocks.values():
        if block.attr("architecture", "resnet") != "resnet":
            raise FacegenError(f"discriminator architecture {block.attr('architecture')!r} is not supported")
    channels = {res: int(flatten_state_dict(b.children["conv0"])["weight"].shape[0]) for res, b in blocks.items()}
    epilogue = D.children["b4"]
    channels[4] = int(flatten_state_dict(epilogue.children["conv"])["weight"].shape[0])
    channel_base, channel_max = _channel_settings(channels)
    mbstd = epilogue.children.get("mbstd")
    kwargs = dict(
        c_dim=int(D.attr("c_dim")), img_resolution=int(D.attr("img_resolution")),
        img_channels=int(D.attr("img_channels")), channel_base=channel_base, channel_max=channel_max,
        num_fp16_res=sum(1 for b in blocks.values() if b.attr("use_fp16")),
        conv_clamp=blocks[max(blocks)].children["conv0"].attr("conv_clamp"),
        cmap_dim=int(epilogue.attr("cmap_dim", 0)) or None,
        mbstd_group_size=mbstd.attr("group_size") if mbstd else None,
        mbstd_num_channels=int(mbstd.attr("num_channels")) if mbstd else 0,
    )
    if "mapping" in D.children:
        kwargs["mapping_layers"] = _count_fc(D.children["mapping"])
    return kwargs


def load_into(module: nn.Module, record: PersistentRecord, what: str) -> nn.Module:
    """Copy a record's tensors into `module`, requiring an exact 1:1 match of names and shapes."""
    state = flatten_state_dict(record)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise FacegenError(f"{what} does not match a StyleGAN2 layout (missing {missing[:3]}, unexpected {extra[:3]})")
    for name, t in state.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise FacegenError(f"{what}: {name} has shape {tuple(t.shape)}, expected {tuple(own[name].shape)}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return module.eval().requires_grad_(False)


def import_nvidia_pickle(path: Path) -> dict:
    """Read an NVIDIA pickle into {'G_kwargs', 'D_kwargs', 'G_ema', 'G', 'D', 'provenance'}."""
    try:
        data = load_restricted(path.read_bytes())
    except FacegenError as e:
        raise FacegenError(f"{path}: {e}") from None
    if isinstance(data, PersistentRecord):
        data = {"G_ema": data}
    if not isinstance(data, dict) or not any(k in data for k in ("G_ema", "G")):
        raise FacegenError(f"{path}: not an NVIDIA network pickle (no G_ema or G inside)")
    g_rec = data.get("G_ema") or data["G"]
    G_kwargs = generator_kwargs(g_rec)
    out = {"G_kwargs": G_kwargs, "D_kwargs": {}, "G": None, "D": None}
    out["G_ema"] = load_into(Generator(**G_kwargs), g_rec, f"{path}: G_ema")
    if isinstance(data.get("G"), PersistentRecord) and data.get("G_ema") is not None:
        out["G"] = load_into(Generator(**G_kwargs), data["G"], f"{path}: G")
    if isinstance(data.get("D"), PersistentRecord):
        out["D_kwargs"] = discriminator_kwargs(data["D"])
        out["D"] = load_into(Discriminator(**out["D_kwargs"]), data["D"], f"{path}: D")
    training_set = data.get("training_set_kwargs") or {}
    out["provenance"] = {"source": "nvidia-pickle", "source_file": path.name,
                         "source_class": g_rec.class_name, "dataset": str(training_set.get("path", ""))}
    return out


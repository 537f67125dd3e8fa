"""StyleGAN2 networks from NVIDIA's PyTorch pickles (stylegan2-ada-pytorch `training/networks.py`,
stylegan3 `training/networks_stylegan2.py`).

The architecture is read from the records' attributes and tensor shapes, never from the
code shipped inside the pickle; the tensors then load 1:1 into our modules.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from facegen_cli.checkpoint import load_strict
from facegen_cli.convert.safe_pickle import PersistentRecord, as_tensor, flatten_state_dict
from facegen_cli.errors import FacegenError
from facegen_cli.models.stylegan2 import Discriminator, Generator

# Our discriminator's label-mapping layers use NVIDIA's default learning-rate multiplier.
D_MAPPING_LR = 0.01
# Buffers our modules fix at construction and NVIDIA's pickles (and rosinality's files) may leave out.
FIXED_BUFFERS = ("resample_filter",)


def channel_settings(channels: dict[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) that reproduce the per-resolution channel counts."""
    channel_max = max(channels.values())
    below = [res * ch for res, ch in channels.items() if ch < channel_max]
    channel_base = min(below) if below else channel_max * max(channels)
    return channel_base, channel_max


def load_exact(module: nn.Module, state: Mapping[str, Any], what: str,
               scale: Mapping[str, float] | None = None, layout: str = "StyleGAN2") -> nn.Module:
    """Copy `state` (tensors, TensorRefs or arrays) into `module`, requiring the same names and shapes.

    Buffers the source does not store (the fixed resampling filters) keep our values; `scale`
    multiplies named entries (a learning-rate multiplier folded into the stored weights).
    """
    return load_strict(module, state, what, f"the {layout} layout", keep_own=FIXED_BUFFERS, to_tensor=as_tensor,
                       scale=scale)


def _blocks(record: PersistentRecord, skip: str = "") -> dict[int, PersistentRecord]:
    return {int(name[1:]): rec for name, rec in record.children.items()
            if name[:1] == "b" and name[1:].isdigit() and name != skip}


def _count_fc(mapping: PersistentRecord) -> int:
    return sum(1 for name in mapping.children if name.startswith("fc") and name[2:].isdigit())


def _shape(record: PersistentRecord, name: str) -> tuple[int, ...]:
    return tuple(flatten_state_dict(record)[name].shape)


def _check_class(record: PersistentRecord, expected: str, what: str) -> None:
    if record.name != expected:
        raise FacegenError(f"{what}: expected an NVIDIA {expected}, found class {record.class_name!r}")


def generator_kwargs(G: PersistentRecord) -> dict:
    """Our Generator kwargs for an NVIDIA StyleGAN2 generator record."""
    _check_class(G, "Generator", "G")
    synthesis, mapping = G.children["synthesis"], G.children["mapping"]
    blocks = _blocks(synthesis)
    for block in blocks.values():
        if block.attr("architecture", "skip") != "skip":
            raise FacegenError(f"synthesis architecture {block.attr('architecture')!r} is not supported (only 'skip')")
    channels = {res: _shape(b.children["conv1"], "weight")[0] for res, b in blocks.items()}
    channel_base, channel_max = channel_settings(channels)
    clamp = blocks[max(blocks)].children["conv1"].attr("conv_clamp")
    return dict(
        z_dim=int(G.attr("z_dim")), c_dim=int(G.attr("c_dim")), w_dim=int(G.attr("w_dim")),
        img_resolution=int(G.attr("img_resolution")), img_channels=int(G.attr("img_channels")),
        mapping_layers=_count_fc(mapping),
        mapping_lr_multiplier=float(mapping.children["fc0"].attr("bias_gain", 0.01)),
        channel_base=channel_base, channel_max=channel_max,
        num_fp16_res=sum(1 for b in blocks.values() if b.attr("use_fp16")),
        conv_clamp=None if clamp is None else float(clamp),
    )


def discriminator_kwargs(D: PersistentRecord) -> dict:
    """Our Discriminator kwargs for an NVIDIA StyleGAN2 (residual) discriminator record."""
    _check_class(D, "Discriminator", "D")
    blocks = _blocks(D, skip="b4")
    for block in blocks.values():
        if block.attr("architecture", "resnet") != "resnet":
            raise FacegenError(f"discriminator architecture {block.attr('architecture')!r} is not supported "
                               f"(only 'resnet')")
    channels = {res: _shape(b.children["conv0"], "weight")[0] for res, b in blocks.items()}
    epilogue = D.children["b4"]
    channels[4] = _shape(epilogue.children["conv"], "weight")[0]
    channel_base, channel_max = channel_settings(channels)
    mbstd = epilogue.children.get("mbstd")
    clamp = blocks[max(blocks)].children["conv0"].attr("conv_clamp")
    kwargs = dict(
        c_dim=int(D.attr("c_dim")), img_resolution=int(D.attr("img_resolution")),
        img_channels=int(D.attr("img_channels")), channel_base=channel_base, channel_max=channel_max,
        num_fp16_res=sum(1 for b in blocks.values() if b.attr("use_fp16")),
        conv_clamp=None if clamp is None else float(clamp),
        cmap_dim=int(epilogue.attr("cmap_dim", 0)) or None,
        mbstd_group_size=mbstd.attr("group_size") if mbstd else None,
        mbstd_num_channels=int(mbstd.attr("num_channels")) if mbstd else 0,
    )
    if "mapping" in D.children:
        kwargs["mapping_layers"] = _count_fc(D.children["mapping"])
    return kwargs


def import_generator(G: PersistentRecord, what: str) -> tuple[dict, nn.Module]:
    """(kwargs, our Generator) for an NVIDIA StyleGAN2 generator record."""
    kwargs = generator_kwargs(G)
    return kwargs, load_exact(Generator(**kwargs), flatten_state_dict(G), what)


def import_discriminator(D: PersistentRecord, what: str) -> tuple[dict, nn.Module]:
    """(kwargs, our Discriminator) for an NVIDIA StyleGAN2 discriminator record."""
    kwargs = discriminator_kwargs(D)
    state = flatten_state_dict(D)
    scale = {}
    mapping = D.children.get("mapping")
    if mapping is not None:  # fold a non-default label-mapping learning rate into the weights
        for name, layer in mapping.children.items():
            ratio = float(layer.attr("bias_gain", D_MAPPING_LR)) / D_MAPPING_LR
            if name.startswith("fc") and ratio != 1:
                scale.update({f"mapping.{name}.weight": ratio, f"mapping.{name}.bias": ratio})
    return kwargs, load_exact(Discriminator(**kwargs), state, what, scale=scale)

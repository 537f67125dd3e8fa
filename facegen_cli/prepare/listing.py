"""Find the files under a photo folder without losing any silently, and name them for JSON."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from facegen_cli.prepare.detect import not_regular

REPORT_FILE = "prepare-report.json"
JOURNAL_FILE = ".prepare-journal.jsonl"
# Files that mark a folder as the output of `facegen prepare`; such a folder is never read as input.
OUTPUT_MARKERS = (REPORT_FILE, JOURNAL_FILE)


@dataclass
class Listing:
    """Files to read (relative posix paths, sorted) and the files and folders passed over, with why."""

    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def find_photos(raw: Path, exclude: Iterable[Path] = ()) -> Listing:
    """Every non-hidden regular file under `raw`, following symlinked files and folders.

    Passed over with a reason: hidden files and folders (names starting with a dot: `.DS_Store`,
    AppleDouble `._x.jpg`, `.git/`; never read, and a hidden folder is not entered), FIFOs, devices
    and sockets (never opened), folders that cannot be listed, symlinks that lead nowhere, folders
    already listed (a symlink loop or a second link to one folder) and outputs of `facegen prepare`. The paths in `exclude` (this run's output) are
    left out without a word.
    """
    excluded = set()
    for path in exclude:
        try:
            excluded.add(_identity(os.stat(path)))
        except OSError:
            pass
    listing, listed = Listing(), {}

    def walk(folder: Path, rel: str, ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            with os.scandir(folder) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as e:
            listing.skipped.append((rel + "/", f"folder not listed ({e.strerror or e})"))
            return
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat()  # follows symlinks; stat never opens the file
            except OSError as e:
                why = "broken symlink" if entry.is_symlink() else "unreadable"
                listing.skipped.append((child, f"{why} ({e.strerror or e})"))
                continue
            ident = _identity(st)
            if ident in excluded:
                continue
            if entry.name.startswith("."):
                is_dir = stat.S_ISDIR(st.st_mode)
                listing.skipped.append((child + "/" if is_dir else child, f"hidden {'folder' if is_dir else 'file'}"))
            elif stat.S_ISREG(st.st_mode):
                listing.files.append(child)
            elif stat.S_ISDIR(st.st_mode):
                _folder(Path(entry.path), child, ident, ancestors)
            else:
                listing.skipped.append((child, f"not a regular file ({not_regular(st.st_mode)})"))

    def _folder(path: Path, rel: str, ident: tuple[int, int], ancestors: tuple[tuple[int, int], ...]) -> None:
        if ident in ancestors:
            listing.skipped.append((rel + "/", f"symlink loop (leads back to {listed[ident] or '.'}/)"))
        elif ident in listed:
            listing.skipped.append((rel + "/", f"folder already listed (as {listed[ident]}/)"))
        elif any((path / marker).exists() for marker in OUTPUT_MARKERS):
            listing.skipped.append((rel + "/", "output of facegen prepare, not read as photos"))
        else:
            listed[ident] = rel
            walk(path, rel, ancestors + (ident,))

    top = _identity(os.stat(raw))
    listed[top] = ""
    walk(raw, "", (top,))
    listing.files.sort()
    return listing


def public_name(rel: str) -> dict[str, str]:
    """`{"file": name}` as strict JSON readers take it; a name that is not UTF-8 shows its bad bytes
    as `\\xNN` and carries its raw bytes in hex as `file_bytes` (`bytes.fromhex` gives them back)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        return {"file": raw.decode("utf-8", "backslashreplace"), "file_bytes": raw.hex()}
    return {"file": rel}

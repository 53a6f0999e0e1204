"""Initramfs archives: the kernel's ``newc`` cpio format, written in memory.

Enough of the format for an initramfs (regular files, directories, symlinks, all owned by
root) and nothing more: the kernel unpacks archives appended one after the other, which is
how a VM's user data joins a verified image's initrd without touching its bytes.
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member: ``path`` without a leading slash."""

    path: str
    mode: int
    data: bytes = b""


def file(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | mode, data)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _member(ino: int, entry: Entry) -> bytes:
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, 0, 0, len(name), 0)
    header = _MAGIC + b"".join(f"{value:08x}".encode() for value in fields)
    out = header + name
    out += _pad(len(out))
    out += entry.data + _pad(len(entry.data))
    return out


def archive(entries: list[Entry], *, compress: bool = True) -> bytes:
    """The archive of ``entries`` (parents before children), gzip'd unless told not to."""
    raw = b"".join(_member(ino, entry) for ino, entry in enumerate(entries, start=1))
    raw += _member(0, Entry(_TRAILER, 0))
    raw += b"\0" * (-len(raw) % 512)
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw

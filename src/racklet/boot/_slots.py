"""The unit's two OS slots on its own storage: ``<storage>/slots/A/`` and ``/B/``.

A slot holds ``payload.bin`` and ``slot.json`` (the release and the payload's TUF target
info: path, length, SHA-256). ``slot.json`` is written last and removed first, so a slot
without it is incomplete and never booted; a complete slot is still re-hashed before every
boot and compared with the hash its BMC recorded. A download is written by a
:class:`SlotWriter` into an anonymous file in the slot's directory (Linux ``O_TMPFILE``) that
gets a name only after it was verified and flushed, so a power cut or a rejected download
leaves nothing behind. Blocking: call through ``asyncio.to_thread``. Nothing here decides
which slot to boot (that is the BMC's state, read by the client), nor whether bytes are
trusted (that is ``_digest``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import mmap
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from racklet.boot._manifest import PAYLOAD_NAME, PayloadManifest
from racklet.boot.errors import PayloadError
from racklet.config import fsync_dir, make_dir, write_atomic

SLOTS = ("A", "B")
SLOTS_DIR = "slots"
RECORD = "slot.json"
PARTIAL_SUFFIX = ".partial"
_HASH_CHUNK = 1 << 20
WRITE_BEHIND_BYTES = 8 << 20
"""A buffered :class:`SlotWriter` starts writing back every this many bytes while it writes."""
DIRECT_STAGE_BYTES = 1 << 20
"""What a direct :class:`SlotWriter` gathers before one write to the medium."""
DIRECT_ALIGN = 4096
"""Offset, length and memory address of a direct write: a multiple of every logical block size
in use (512 B and 4 KiB sectors)."""
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def other(slot: str | None) -> str:
    """The slot an update writes: the one not committed (A when none is)."""
    return "B" if slot == "A" else "A"


def slot_dir(storage: Path, slot: str) -> Path:
    if slot not in SLOTS:
        raise PayloadError(f"unknown slot {slot!r}")
    return storage / SLOTS_DIR / slot


def read_slot(storage: Path, slot: str) -> PayloadManifest | None:
    """The release a complete slot holds, or None if the slot is empty or incomplete."""
    try:
        document = json.loads((slot_dir(storage, slot) / RECORD).read_bytes())
        payload = document["payload"]
        return PayloadManifest(
            name=str(document["name"]),
            version=str(document["version"]),
            channel=str(document["channel"]),
            payload_path=str(payload["path"]),
            payload_length=int(payload["length"]),
            payload_sha256=str(payload["sha256"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Stamp:
    """Which file a slot's payload is (device, inode, size, change time): a file rewritten,
    replaced or touched since gets another stamp."""

    device: int
    inode: int
    size: int
    changed_ns: int


def stamp(storage: Path, slot: str) -> Stamp | None:
    try:
        info = os.stat(slot_dir(storage, slot) / PAYLOAD_NAME)
    except OSError:
        return None
    return Stamp(info.st_dev, info.st_ino, info.st_size, info.st_ctime_ns)


def verify_slot(
    storage: Path, slot: str, sha256: str, verified: Stamp | None = None
) -> PayloadManifest:
    """The slot's release if its payload still hashes to ``sha256`` (what the BMC recorded).

    ``verified``: the stamp the payload had when this same power-on verified its bytes as they
    streamed in; if the file still has it, it is not read again (the warm reboot into a
    freshly written slot). Every other boot re-hashes the whole payload.
    """
    manifest = read_slot(storage, slot)
    if manifest is None:
        raise PayloadError(f"slot {slot} is empty or incomplete")
    if manifest.payload_sha256 != sha256:
        raise PayloadError(f"slot {slot} holds another payload than its BMC recorded")
    if verified is not None and stamp(storage, slot) == verified:
        return manifest
    digest = hashlib.sha256()
    length = 0
    try:
        with open(slot_dir(storage, slot) / PAYLOAD_NAME, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
                length += len(chunk)
    except OSError as exc:
        raise PayloadError(f"slot {slot} cannot be read: {exc}") from exc
    if length != manifest.payload_length or digest.hexdigest() != sha256:
        raise PayloadError(f"slot {slot} is corrupt: its payload no longer matches SHA-256")
    return manifest


def open_for_write(storage: Path, slot: str) -> Path:
    """Mark ``slot`` incomplete (remove its record, durably) and return its directory."""
    directory = make_dir(slot_dir(storage, slot))
    (directory / RECORD).unlink(missing_ok=True)
    fsync_dir(directory)
    return directory


def install_slot(storage: Path, slot: str, verified: Path, manifest: PayloadManifest) -> None:
    """Make a TUF-verified payload (already in the slot's directory) the slot's content:
    payload renamed into place, then the record; each step durable before the next."""
    directory = slot_dir(storage, slot)
    os.replace(verified, directory / PAYLOAD_NAME)
    fsync_dir(directory)
    write_atomic(directory / RECORD, manifest.to_json(), mode=0o600)


class SlotWriter:
    """A file being written into a slot's directory, nameless until :meth:`keep`.

    Where ``O_TMPFILE`` is missing (not Linux, or a file system without it) the file is named
    ``.payload.bin.<random>.partial`` from the start; :func:`clean_partials` removes those.

    ``direct``: the bytes go to the medium (``O_DIRECT``), not through the page cache: from
    one reused, page-aligned 1 MiB buffer for sequential :meth:`write`, from the caller's
    page-aligned piece buffers for :meth:`write_at` (a swarm download). A payload is written
    once and not read again before the boot that re-hashes it from the medium, so caching it
    only cost a copy of every byte into freshly allocated pages: on the twin's host that copy
    was nearly half of a downloading unit's CPU, more than the TLS decryption and the hash. The
    tail that is not a whole block is written through the cache before ``fsync``. A file
    system without direct I/O (tmpfs before Linux 6.6, some FUSE) gets the buffered path.

    Buffered (``direct=False``, or the fallback), with write-behind: every
    :data:`WRITE_BEHIND_BYTES` the pages just written are handed to the device
    (``posix_fadvise(DONTNEED)`` starts their writeback without waiting, and drops no page
    still dirty), so :meth:`keep`'s ``fsync`` waits for the tail only. Either way the guarantee
    is the same: nothing gets a name before ``fsync`` returned.
    """

    def __init__(self, directory: Path, *, direct: bool = False) -> None:
        self._directory = directory
        self._named: Path | None = None
        self._written = 0
        self._flushed = 0
        self._stage: mmap.mmap | None = None
        self._staged = 0
        self._cached = -1
        self._cached_lock = threading.Lock()
        flags = os.O_RDWR
        if direct and _O_DIRECT:
            with contextlib.suppress(OSError):  # EINVAL: a file system without direct I/O
                self._fd = self._open(flags | _O_DIRECT)
                self._stage = mmap.mmap(-1, DIRECT_STAGE_BYTES)  # page-aligned, reused
            if self._stage is not None:
                self._direct = True
                return
        self._direct = False
        self._fd = self._open(flags)

    def _open(self, flags: int) -> int:
        try:
            return os.open(self._directory, os.O_TMPFILE | flags, 0o600)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EINVAL and flags & _O_DIRECT:
                raise  # the direct flag, not O_TMPFILE, may be what the file system refused
            self._named = _partial_name(self._directory)
            return os.open(self._named, flags | os.O_CREAT | os.O_EXCL, 0o600)

    @property
    def direct(self) -> bool:
        """Whether writes still bypass the page cache (False once the medium refused one)."""
        return self._direct

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (copied before this returns: the caller may reuse its buffer)."""
        view = memoryview(data).cast("B")
        stage = self._stage
        if stage is None:
            self._write_buffered(view)
            return
        while view:
            count = min(len(view), DIRECT_STAGE_BYTES - self._staged)
            stage[self._staged : self._staged + count] = view[:count]
            self._staged += count
            view = view[count:]
            if self._staged == DIRECT_STAGE_BYTES:
                self._flush_stage()

    def _flush_stage(self) -> None:
        """The staged bytes to the file: whole blocks straight to the medium; a tail (only the
        last flush has one), or everything after a refused direct write, through the cache."""
        assert self._stage is not None
        staged = memoryview(self._stage)[: self._staged]
        try:
            whole = len(staged) - len(staged) % DIRECT_ALIGN
            done = 0
            if whole:
                try:
                    done = os.write(self._fd, staged[:whole])
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self._stop_direct()  # the medium wants another alignment
                self._written += done
            if done < len(staged):
                self._stop_direct()
                self._write_buffered(staged[done:])
        finally:
            staged.release()
        self._staged = 0

    def _stop_direct(self) -> None:
        self._direct = False
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_O_DIRECT)

    def _write_buffered(self, view: memoryview) -> None:
        while view:
            count = os.write(self._fd, view)
            view = view[count:]
            self._written += count
        if self._written - self._flushed >= WRITE_BEHIND_BYTES:
            self._write_behind()

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` (a piece of a swarm download; thread-safe: ``pwrite``;
        a writer takes either :meth:`write` or this, not both).

        A direct writer sends the piece's whole blocks straight to the medium when ``offset``
        is a multiple of :data:`DIRECT_ALIGN` and ``data`` starts on a page (a swarm's pieces
        are 64 KiB multiples read into reused ``mmap`` buffers); the tail that is not a whole
        block (the last piece's), and everything once the medium refused a direct write
        (EINVAL), goes through the page cache by a second descriptor of the same file (Linux
        keeps the two coherent; the ranges never overlap)."""
        view = memoryview(data).cast("B")
        while self._direct and len(view) >= DIRECT_ALIGN and offset % DIRECT_ALIGN == 0:
            whole = len(view) - len(view) % DIRECT_ALIGN
            try:
                count = os.pwrite(self._fd, view[:whole], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self._direct = False  # the medium wants another alignment
                break
            view, offset = view[count:], offset + count
        if view:
            fd = self._cached_fd()
            while view:
                count = os.pwrite(fd, view, offset)
                view, offset = view[count:], offset + count

    def _cached_fd(self) -> int:
        """A descriptor of the file that writes through the page cache: the file's own unless
        it is direct, else a second one opened without ``O_DIRECT`` (once, for all threads)."""
        if self._stage is None:
            return self._fd
        with self._cached_lock:
            if self._cached < 0:
                self._cached = os.open(f"/proc/self/fd/{self._fd}", os.O_WRONLY)
            return self._cached

    def _write_behind(self) -> None:
        start, self._flushed = self._flushed, self._written
        with contextlib.suppress(OSError, AttributeError):  # advice: a medium may ignore it
            os.posix_fadvise(self._fd, start, self._written - start, os.POSIX_FADV_DONTNEED)

    def keep(self) -> Path:
        """Flush the bytes to the medium and give them a (partial) name; return it."""
        if self._staged:
            self._flush_stage()
        os.fsync(self._fd)
        if self._named is not None:
            named, self._named = self._named, None
            return named
        path = _partial_name(self._directory)
        directory_fd = os.open(self._directory, os.O_RDONLY)
        try:  # with a dir fd, os.link is linkat(..., AT_SYMLINK_FOLLOW): names the open file
            os.link(f"/proc/self/fd/{self._fd}", path.name, dst_dir_fd=directory_fd)
        finally:
            os.close(directory_fd)
        return path

    def close(self) -> None:
        """Drop the file unless :meth:`keep` named it (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._cached >= 0:
            os.close(self._cached)
            self._cached = -1
        if self._stage is not None:
            self._stage.close()
            self._stage = None
        if self._named is not None:
            self._named.unlink(missing_ok=True)
            self._named = None

    def __enter__(self) -> SlotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _partial_name(directory: Path) -> Path:
    return directory / f".{PAYLOAD_NAME}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"


def clean_partials(directory: Path) -> None:
    """Remove downloads a power cut interrupted."""
    for stale in directory.glob(f".*{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)

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
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
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
"""A :class:`SlotWriter` starts writing back every this many bytes while the download goes on."""


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

    Write-behind: every :data:`WRITE_BEHIND_BYTES` the pages just written are handed to the
    device (``posix_fadvise(DONTNEED)`` starts their writeback without waiting, and drops no
    page still dirty), so the medium works while the download goes on and :meth:`keep`'s
    ``fsync`` waits for the tail only, instead of for the whole payload at once (five units
    finishing together used to queue 320 MB behind their fsyncs). The guarantee is unchanged:
    nothing gets a name before ``fsync`` returned.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._named: Path | None = None
        self._written = 0
        self._flushed = 0
        try:
            self._fd = os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (AttributeError, OSError):
            self._named = _partial_name(directory)
            self._fd = os.open(self._named, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            count = os.write(self._fd, view)
            view = view[count:]
            self._written += count
        if self._written - self._flushed >= WRITE_BEHIND_BYTES:
            self._write_behind()

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` (a piece of a swarm download; thread-safe: ``pwrite``)."""
        view = memoryview(data)
        while view:
            count = os.pwrite(self._fd, view, offset)
            view, offset = view[count:], offset + count

    def read_back(self, length: int, chunk_bytes: int) -> Iterator[bytes]:
        """The file's first ``length`` bytes, in chunks: what a swarm download wrote, to be
        checked whole against its signed hashes before :meth:`keep` names it."""
        offset = 0
        while offset < length:
            chunk = os.pread(self._fd, min(chunk_bytes, length - offset), offset)
            if not chunk:
                raise OSError(f"the download file ends at {offset} of {length} bytes")
            offset += len(chunk)
            yield chunk

    def _write_behind(self) -> None:
        start, self._flushed = self._flushed, self._written
        with contextlib.suppress(OSError, AttributeError):  # advice: a medium may ignore it
            os.posix_fadvise(self._fd, start, self._written - start, os.POSIX_FADV_DONTNEED)

    def keep(self) -> Path:
        """Flush the bytes to the medium and give them a (partial) name; return it."""
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

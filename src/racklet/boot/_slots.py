"""The unit's two OS slots on its own storage: ``<storage>/slots/A/`` and ``/B/``.

A slot holds ``payload.bin`` and ``slot.json`` (the release and the payload's TUF target
info: path, length, SHA-256). ``slot.json`` is written last and removed first, so a slot
without it is incomplete and never booted; a complete slot is still re-hashed before every
boot and compared with the hash its BMC recorded. Blocking: call through ``asyncio.to_thread``.
Nothing here decides which slot to boot (that is the BMC's state, read by the client).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from racklet.boot._manifest import PAYLOAD_NAME, Manifest
from racklet.boot.errors import PayloadError

SLOTS = ("A", "B")
SLOTS_DIR = "slots"
RECORD = "slot.json"
_HASH_CHUNK = 1 << 20


def other(slot: str | None) -> str:
    """The slot an update writes: the one not committed (A when none is)."""
    return "B" if slot == "A" else "A"


def slot_dir(storage: Path, slot: str) -> Path:
    if slot not in SLOTS:
        raise PayloadError(f"unknown slot {slot!r}")
    return storage / SLOTS_DIR / slot


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_slot(storage: Path, slot: str) -> Manifest | None:
    """The release a complete slot holds, or None if the slot is empty or incomplete."""
    try:
        document = json.loads((slot_dir(storage, slot) / RECORD).read_bytes())
        payload = document["payload"]
        return Manifest(
            name=str(document["name"]),
            version=str(document["version"]),
            channel=str(document["channel"]),
            payload_path=str(payload["path"]),
            payload_length=int(payload["length"]),
            payload_sha256=str(payload["sha256"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify_slot(storage: Path, slot: str, sha256: str) -> Manifest:
    """The slot's release if its payload still hashes to ``sha256`` (what the BMC recorded)."""
    manifest = read_slot(storage, slot)
    if manifest is None:
        raise PayloadError(f"slot {slot} is empty or incomplete")
    if manifest.payload_sha256 != sha256:
        raise PayloadError(f"slot {slot} holds another payload than its BMC recorded")
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
    directory = slot_dir(storage, slot)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RECORD).unlink(missing_ok=True)
    _fsync_dir(directory)
    return directory


def install_slot(storage: Path, slot: str, verified: Path, manifest: Manifest) -> None:
    """Make a TUF-verified payload (already in the slot's directory) the slot's content:
    payload renamed into place, then the record; each step durable before the next."""
    directory = slot_dir(storage, slot)
    os.replace(verified, directory / PAYLOAD_NAME)
    _fsync_dir(directory)
    tmp = directory / f".{RECORD}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / RECORD)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)

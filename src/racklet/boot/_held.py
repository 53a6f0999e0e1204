"""An OS payload the unit did not download itself: a BMC holds it (a Redfish push), checks it
as the bootstrap checks a download and writes it into the unit's inactive slot.

The same checks and the same install as the bootstrap's, from the same code: the target must
be signed for the unit's channel (the caller's ``updater``, a refreshed
:class:`~racklet.boot._tuf_updater.StrictUpdater` anchored in the unit's TUF root), within
:class:`~racklet.boot.BootLimits`, its bytes matching the signed length and every signed hash
(:class:`~racklet.boot._digest.StreamCheck`), with an ``agent.json`` the OS agent can run
(``_install``); python-tuf's errors become the bootstrap's (``_tuf_client.translate``). The
install is the bootstrap's too (``_slots``): the slot's record removed first, the bytes copied
into a nameless file and hashed again on the way (they crossed to another medium), named only
once flushed, then the record. The release's name and version come from the signed target
path (``<channel>/<name>/<version>/payload.bin``), so they are as trusted as the bytes.

Deliberately not here: the rollback floor and the try-boot (the BMC's A/B state decides and
records them), and fetching anything (the metadata comes with the payload). Blocking.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tuf.api import exceptions as tuf_errors

from racklet.boot._digest import StreamCheck
from racklet.boot._install import read_agent_config
from racklet.boot._manifest import PAYLOAD_NAME, PayloadManifest
from racklet.boot._slots import (
    SlotWriter,
    clean_partials,
    install_slot,
    open_for_write,
)
from racklet.boot._tuf_api import Updater
from racklet.boot._tuf_client import payload_manifest, signed_payload, translate
from racklet.boot._types import BootLimits
from racklet.boot.errors import BootError, ManifestError, PayloadError

__all__ = ["install_held_payload", "verify_held_payload"]

_CHUNK = 1 << 20


def _release(target_path: str, channel: str) -> tuple[str, str]:
    parts = target_path.split("/")
    if len(parts) != 4 or parts[0] != channel or parts[3] != PAYLOAD_NAME or not all(parts):
        raise ManifestError(
            f"{target_path!r} is not a {channel}/<name>/<version>/{PAYLOAD_NAME} target"
        )
    return parts[1], parts[2]


def _copy(source: Path, check: StreamCheck, writer: SlotWriter | None) -> None:
    with source.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            check.count(len(chunk))
            check.update(chunk)
            if writer is not None:
                writer.write(chunk)
    check.verify()


def verify_held_payload(
    updater: Updater, channel: str, target_path: str, payload: Path, limits: BootLimits
) -> PayloadManifest:
    """The release ``payload`` is, if ``updater``'s (refreshed) metadata signs it as
    ``target_path`` of ``channel``; else a :class:`~racklet.boot.BootError` saying why."""
    name, version = _release(target_path, channel)
    try:
        info = signed_payload(updater, target_path, channel, limits)
        _copy(payload, StreamCheck(target_path, info.length, info.hashes), None)
    except BootError:
        raise
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
        raise translate(exc) from exc
    except OSError as exc:
        raise PayloadError(f"the payload cannot be read: {exc}") from exc
    read_agent_config(payload, limits.max_agent_config_bytes)
    return payload_manifest(info, name, version, channel)


def install_held_payload(
    storage: Path, slot: str, payload: Path, manifest: PayloadManifest
) -> None:
    """Write a verified ``payload`` into ``slot`` of the unit's ``storage`` as the bootstrap
    installs a download; the copy is hashed on the way and refused if it differs."""
    if not manifest.payload_sha256:
        raise PayloadError(f"{manifest.payload_path} is signed without a SHA-256")
    directory = open_for_write(storage, slot)
    clean_partials(directory)
    check = StreamCheck(
        manifest.payload_path, manifest.payload_length, {"sha256": manifest.payload_sha256}
    )
    with SlotWriter(directory, direct=True) as writer:
        try:
            _copy(payload, check, writer)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise translate(exc) from exc
        kept = writer.keep()
    try:
        install_slot(storage, slot, kept, manifest)
    except BaseException:
        with contextlib.suppress(OSError):
            kept.unlink()
        raise

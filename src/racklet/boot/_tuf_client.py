"""Drive python-tuf's ngclient for one boot: refresh, resolve the channel, fetch the payload.

Two steps, so the client can decide between them whether it needs the payload at all (an
A/B unit downloads only when the channel's release is newer than its committed slot).

Blocking (ngclient is synchronous): the bootstrap client runs :func:`fetch_release` in a worker
thread. The metadata cache lives in the unit's storage, so what a unit once trusted (timestamp,
snapshot versions) bounds what it accepts next boot: that is what defeats rollback. The trust
anchor is the root the BMC handed over, never a cached one. ngclient's exceptions are
translated here into :mod:`racklet.boot.errors`, each message naming what was rejected.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tuf.api import exceptions as tuf_errors

from racklet.boot._manifest import PAYLOAD_NAME, Manifest, ReleasePointer, parse_release_pointer
from racklet.boot._tuf_api import FetcherInterface, TargetFile, Updater, UpdaterConfig
from racklet.boot._types import BootLimits
from racklet.boot.errors import (
    BootError,
    FetchError,
    ManifestError,
    MetadataError,
    PayloadError,
    SignatureError,
    TrustError,
)

PARTIAL_SUFFIX = ".partial"
POINTER = "current.json"


@dataclass(frozen=True)
class FetchedRelease:
    """A release whose pointer and payload TUF verified; the payload sits in ``payload``."""

    manifest: Manifest
    payload: Path


def updater_config(limits: BootLimits) -> UpdaterConfig:
    return UpdaterConfig(
        root_max_length=limits.max_metadata_bytes,
        timestamp_max_length=limits.max_timestamp_bytes,
        snapshot_max_length=limits.max_metadata_bytes,
        targets_max_length=limits.max_metadata_bytes,
        max_root_rotations=limits.max_root_rotations,
    )


@dataclass
class Channel:
    """A refreshed ngclient and the channel's verified pointer; :meth:`download` fetches it."""

    updater: Updater
    pointer: ReleasePointer
    channel: str
    limits: BootLimits

    def download(self, download_dir: Path) -> FetchedRelease:
        """Download and verify the pointer's payload into a temp file in ``download_dir``."""
        try:
            info = self.updater.get_targetinfo(self.pointer.payload_target)
            if info is None:
                raise ManifestError(
                    f"{self.pointer.payload_target} is not a target signed for {self.channel}"
                )
            limit = self.limits.max_payload_bytes
            if info.length > limit:
                raise ManifestError(
                    f"payload of {info.length} bytes exceeds the {limit}-byte limit"
                )
            path = _download(self.updater, info, download_dir)
        except BootError:
            raise
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise BootError(f"unit storage failed during the boot: {exc}") from exc
        manifest = Manifest(
            name=self.pointer.name,
            version=self.pointer.version,
            channel=self.channel,
            payload_path=info.path,
            payload_length=info.length,
            payload_sha256=info.hashes.get("sha256", ""),
        )
        return FetchedRelease(manifest, path)


def open_channel(
    *,
    root: bytes,
    metadata_dir: Path,
    base_url: str,
    channel: str,
    scratch_dir: Path,
    fetcher: FetcherInterface,
    limits: BootLimits,
) -> Channel:
    """Refresh the metadata (anchored in ``root``) and read the channel's signed pointer."""
    try:
        metadata_dir.mkdir(parents=True, exist_ok=True)
        scratch_dir.mkdir(parents=True, exist_ok=True)
        updater = Updater(
            str(metadata_dir),
            f"{base_url}/metadata/",
            target_base_url=f"{base_url}/targets/",
            fetcher=fetcher,
            config=updater_config(limits),
            bootstrap=root,
        )
        updater.refresh()
        pointer = _read_pointer(updater, channel, scratch_dir, limits)
    except BootError:
        raise
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
        raise translate(exc) from exc
    except OSError as exc:
        raise BootError(f"unit storage failed during the boot: {exc}") from exc
    return Channel(updater, pointer, channel, limits)


def _read_pointer(
    updater: Updater, channel: str, download_dir: Path, limits: BootLimits
) -> ReleasePointer:
    info = updater.get_targetinfo(f"{channel}/{POINTER}")
    if info is None:
        raise ManifestError(f"channel {channel!r} has no current release")
    if info.length > limits.max_pointer_bytes:
        raise ManifestError(f"{channel}/{POINTER} of {info.length} bytes is too large")
    path = _download(updater, info, download_dir)
    try:
        data = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    return parse_release_pointer(data, channel)


def _download(updater: Updater, info: TargetFile, download_dir: Path) -> Path:
    """ngclient downloads into an anonymous temp file and verifies length and hashes; only
    then does it write ``path``, which therefore never holds unverified bytes."""
    path = download_dir / f".{PAYLOAD_NAME}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
    try:
        updater.download_target(info, str(path))
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def clean_partials(download_dir: Path) -> None:
    """Remove downloads a power cut interrupted."""
    for stale in download_dir.glob(f".*{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


def translate(exc: Exception) -> BootError:
    """One line naming what TUF rejected and why."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and not text.endswith(str(cause)):
        text = f"{text}: {' '.join(str(cause).split())}"
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return SignatureError(f"TUF metadata rejected, untrusted signature: {text}")
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return MetadataError(f"TUF metadata rejected, expired (freeze attack?): {text}")
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return MetadataError(f"TUF metadata rejected, rollback or mix-and-match: {text}")
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return PayloadError(f"TUF rejected a length or hash mismatch: {text}")
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        return MetadataError(f"download longer than TUF allows (endless data): {text}")
    if isinstance(exc, tuf_errors.SlowRetrievalError):
        return FetchError(f"boot server too slow (slow retrieval): {text}")
    if isinstance(exc, tuf_errors.DownloadError):
        return FetchError(f"cannot fetch from the boot server: {text}")
    if isinstance(exc, tuf_errors.RepositoryError):
        return MetadataError(f"TUF metadata rejected: {text}")
    return TrustError(f"the TUF root from the BMC is unusable: {text}")

"""Drive python-tuf's ngclient for one boot: refresh, resolve the channel, fetch the payload.

Two steps, so the client can decide between them whether it needs the payload at all (an
A/B unit downloads only when the channel's release is newer than its committed slot).

Blocking (ngclient is synchronous): the bootstrap client runs this in a worker thread. The
metadata cache lives in the unit's storage, so what a unit once trusted (timestamp, snapshot
versions) bounds what it accepts next boot: that is what defeats rollback. The trust anchor is
the root the BMC handed over, never a cached one. ngclient verifies the metadata and resolves
the target info; the targets themselves are streamed once through the same fetcher, checked
by :class:`~racklet.boot._digest.StreamCheck` on the way and written straight into the slot
(ngclient's ``download_target`` would spool, re-read and copy 64 MB). ngclient's exceptions
are translated here into :mod:`racklet.boot.errors`, each message naming what was rejected.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tuf.api import exceptions as tuf_errors

from racklet.boot._digest import StreamCheck
from racklet.boot._manifest import PayloadManifest, ReleasePointer, parse_release_pointer
from racklet.boot._p2p import PEERS_PATH, Peer, RangeFetcher, Swarm, SwarmFailed, parse_plan
from racklet.boot._slots import SlotWriter
from racklet.boot._stream_fetch import StreamFetcher
from racklet.boot._tuf_api import (
    FetcherInterface,
    Metadata,
    Root,
    TargetFile,
    Updater,
    UpdaterConfig,
)
from racklet.boot._tuf_updater import StrictUpdater
from racklet.boot._types import BootLimits, TrustBundle
from racklet.boot.errors import (
    BootError,
    FetchError,
    ManifestError,
    MetadataError,
    PayloadError,
    SignatureError,
    TrustError,
)
from racklet.config import make_dir
from racklet.log import ContextLogger

POINTER = "current.json"
BOOT_V1 = "/boot/v1"  # where the machine listener serves TUF (client.BOOT_PATH)


@dataclass(frozen=True)
class FetchedRelease:
    """A release whose pointer and payload TUF verified; the payload sits in ``payload``."""

    manifest: PayloadManifest
    payload: Path


def updater_config(limits: BootLimits) -> UpdaterConfig:
    return UpdaterConfig(
        root_max_length=limits.max_metadata_bytes,
        timestamp_max_length=limits.max_timestamp_bytes,
        snapshot_max_length=limits.max_metadata_bytes,
        targets_max_length=limits.max_metadata_bytes,
        max_root_rotations=limits.max_root_rotations,
    )


@dataclass(frozen=True)
class PeerAccess:
    """How a download reaches the rack's other units (``racklet.boot._p2p``): a fetcher for
    each peer, pinned to its identity; None anywhere means the bulk server alone."""

    peer_fetcher: Callable[[Peer], RangeFetcher]
    logger: ContextLogger
    dropped: list[tuple[str, str]] = field(default_factory=list)
    """(peer, why) of the peers dropped for bad bytes or failures, for the OS to report."""


@dataclass
class Channel:
    """A refreshed ngclient and the channel's verified pointer; :meth:`download` fetches it."""

    updater: Updater
    pointer: ReleasePointer
    channel: str
    limits: BootLimits
    targets: _Targets

    def download(self, download_dir: Path) -> FetchedRelease:
        """Download and verify the pointer's payload into ``download_dir`` (a slot's): the
        returned file exists only once every byte of it was verified and flushed."""
        try:
            info = signed_payload(
                self.updater, self.pointer.payload_target, self.channel, self.limits
            )
            path = self.targets.to_file(info, download_dir)
        except BootError:
            raise
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
            raise translate(exc) from exc
        except OSError as exc:
            raise BootError(f"unit storage failed during the boot: {exc}") from exc
        manifest = payload_manifest(info, self.pointer.name, self.pointer.version, self.channel)
        return FetchedRelease(manifest, path)


def signed_payload(
    updater: Updater, target_path: str, channel: str, limits: BootLimits
) -> TargetFile:
    """The signed target ``target_path`` of ``channel``, within the payload size limit; a
    :class:`~racklet.boot.errors.ManifestError` otherwise (a download and a held payload are
    held to the same rules)."""
    info = updater.get_targetinfo(target_path)
    if info is None:
        raise ManifestError(f"{target_path} is not a target signed for {channel}")
    if info.length > limits.max_payload_bytes:
        raise ManifestError(
            f"payload of {info.length} bytes exceeds the {limits.max_payload_bytes}-byte limit"
        )
    return info


def payload_manifest(info: TargetFile, name: str, version: str, channel: str) -> PayloadManifest:
    """What the slot records of a verified payload: its release and the signed length and hash."""
    return PayloadManifest(
        name=name,
        version=version,
        channel=channel,
        payload_path=info.path,
        payload_length=info.length,
        payload_sha256=info.hashes.get("sha256", ""),
    )


def open_channel(
    *,
    root: bytes,
    metadata_dir: Path,
    base_url: str,
    channel: str,
    scratch_dir: Path,
    fetcher: FetcherInterface,
    limits: BootLimits,
    target_base_url: str | None = None,
    notes: list[str] | None = None,
    p2p: PeerAccess | None = None,
) -> Channel:
    """Refresh the metadata (anchored in ``root``) and read the channel's signed pointer.

    Targets come from ``target_base_url`` when given (the bulk-target server), else from
    ``{base_url}/targets/``. A bulk-target server that cannot be reached (its controller is
    down, or restarting) is given up for the boot server's own targets path, which serves the
    same files: the hashes signed in TUF decide what is accepted, not where it came from. Why
    is appended to ``notes``, for the console. With ``p2p`` the payload comes from the rack's
    peers too, when the boot server names some.
    """
    try:
        make_dir(scratch_dir)
        updater, targets = _refreshed(
            root, metadata_dir, base_url, target_base_url, fetcher, limits, notes
        )
        targets.p2p = p2p
        pointer = _read_pointer(updater, targets, channel, limits)
    except BootError:
        raise
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
        raise translate(exc) from exc
    except OSError as exc:
        raise BootError(f"unit storage failed during the boot: {exc}") from exc
    return Channel(updater, pointer, channel, limits, targets)


def _consistent(metadata_dir: Path) -> bool:
    """Whether the trusted root (ngclient stores it after verifying it) asks for hash-prefixed
    target names (consistent snapshots), as ngclient's own ``download_target`` does."""
    root = Metadata[Root].from_bytes((metadata_dir / "root.json").read_bytes())
    return bool(root.signed.consistent_snapshot)


def _read_pointer(
    updater: Updater, targets: _Targets, channel: str, limits: BootLimits
) -> ReleasePointer:
    info = updater.get_targetinfo(f"{channel}/{POINTER}")
    if info is None:
        raise ManifestError(f"channel {channel!r} has no current release")
    if info.length > limits.max_pointer_bytes:
        raise ManifestError(f"{channel}/{POINTER} of {info.length} bytes is too large")
    return parse_release_pointer(targets.to_bytes(info), channel)


@dataclass
class _Targets:
    """Fetches targets whose info ngclient resolved, checking them in the same pass."""

    fetcher: FetcherInterface
    base_url: str
    consistent: bool
    limits: BootLimits
    fallback_url: str | None = None
    """Where targets come from once ``base_url`` could not be reached (None: nowhere else)."""
    notes: list[str] = field(default_factory=list)
    peers_url: str | None = None
    """Where the boot server names a target's peers (``/boot/v1/peers/``)."""
    p2p: PeerAccess | None = None

    def _get(self, url: str) -> Iterator[bytes | memoryview]:
        """The body, without a copy per piece where the fetcher can (``_stream`` consumes
        each piece before it asks for the next)."""
        if isinstance(self.fetcher, StreamFetcher):
            return self.fetcher.views(url)
        return self.fetcher.fetch(url)

    def _open(self, info: TargetFile) -> tuple[str, Iterator[bytes | memoryview]]:
        """The target's URL and its body; one unreachable source is given up for the other."""
        url = self.url(info)
        try:
            return url, self._get(url)
        except tuf_errors.DownloadError as exc:  # refused, or timed out (a host gone dark)
            if self.fallback_url is None or isinstance(exc, tuf_errors.DownloadHTTPError):
                raise  # an HTTP error is an answer: the other source holds the same files
            self.notes.append(
                f"bulk-target server unreachable ({' '.join(str(exc).split())}); "
                f"fetching targets from the boot server"
            )
            self.base_url, self.fallback_url = self.fallback_url, None
            url = self.url(info)
            return url, self._get(url)

    def url(self, info: TargetFile) -> str:
        path = info.path
        if self.consistent:
            directory, sep, name = path.rpartition("/")
            path = f"{directory}{sep}{next(iter(info.hashes.values()))}.{name}"
        return f"{self.base_url}{path}"

    def _stream(
        self, info: TargetFile, sink: Callable[[bytes | bytearray | memoryview], None]
    ) -> None:
        """Each chunk is counted at once (endless data stops early), then hashed and handed
        to ``sink`` in batches of ``limits.chunk_bytes``; the verdict comes at the end."""
        url, chunks = self._open(info)
        check = StreamCheck(url, info.length, info.hashes)
        batch, size = bytearray(), self.limits.chunk_bytes
        for chunk in chunks:
            check.count(len(chunk))
            if not batch and len(chunk) >= size:  # already a whole batch: no copy
                check.update(chunk)
                sink(chunk)
                continue
            batch += chunk
            if len(batch) >= size:
                check.update(batch)
                sink(batch)
                batch = bytearray()
        check.update(batch)
        sink(batch)
        check.verify()

    def to_bytes(self, info: TargetFile) -> bytes:
        out = bytearray()
        self._stream(info, out.extend)
        return bytes(out)

    def to_file(self, info: TargetFile, directory: Path) -> Path:
        swarmed = self._swarm_to_file(info, directory)
        if swarmed is not None:
            return swarmed
        with SlotWriter(directory, direct=True) as writer:
            self._stream(info, writer.write)
            return writer.keep()

    def _plan_body(self, url: str) -> bytes | None:
        """The boot server's peers answer for a target, bounded; None if it has none."""
        body, limit = bytearray(), self.limits.max_metadata_bytes
        try:
            for chunk in self.fetcher.fetch(url):
                body += chunk
                if len(body) > limit:
                    return None
        except tuf_errors.DownloadHTTPError:
            return None  # a controller without peer-to-peer, or peer-to-peer turned off
        except tuf_errors.DownloadError as exc:
            self.notes.append(f"no peers ({' '.join(str(exc).split())})")
            return None
        return bytes(body)

    def _swarm_to_file(self, info: TargetFile, directory: Path) -> Path | None:
        """Download ``info`` from the rack's peers (and the bulk server) if the boot server
        names any; None to download from the bulk server alone. The file gets its name only
        once it matched the signed length and hashes as a whole, as a plain download does."""
        sha256 = info.hashes.get("sha256")
        p2p, fetcher = self.p2p, self.fetcher
        if p2p is None or self.peers_url is None or sha256 is None:
            return None
        if not isinstance(fetcher, StreamFetcher):
            return None
        url = self.url(info)
        body = self._plan_body(f"{self.peers_url}{url.removeprefix(self.base_url)}?sha256={sha256}")
        plan = None if body is None else parse_plan(body, info.length, sha256)
        if plan is None:
            return None
        check = StreamCheck(url, info.length, info.hashes)
        with SlotWriter(directory, direct=True) as writer:
            swarm = Swarm.build(
                plan, url, fetcher, p2p.peer_fetcher, writer, check, p2p.logger, self.notes
            )
            try:
                served = swarm.run()
            except SwarmFailed as exc:
                p2p.dropped.extend(swarm.dropped)
                self.notes.append(f"peer-to-peer download abandoned: {exc}; bulk server alone")
                return None
            p2p.dropped.extend(swarm.dropped)
            try:  # the swarm fed the check every piece in order: nothing is read back
                check.verify()
            except tuf_errors.LengthOrHashMismatchError as exc:
                self.notes.append(
                    f"peer-to-peer download rejected by TUF ({exc}); bulk server alone"
                )
                return None
            shares = ", ".join(f"{name} {count} B" for name, count in served.items() if count)
            self.notes.append(f"peer-to-peer download of {info.path}: {shares}")
            return writer.keep()


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


def _refreshed(
    root: bytes,
    metadata_dir: Path,
    base_url: str,
    target_base_url: str | None,
    fetcher: FetcherInterface,
    limits: BootLimits,
    notes: list[str] | None,
) -> tuple[StrictUpdater, _Targets]:
    """A strict updater refreshed from ``base_url`` (anchored in ``root``) and the source of
    its targets: ``target_base_url`` (the bulk server), falling back to the boot server's own
    targets path. Blocking; raises python-tuf's errors for the caller to translate."""
    own_targets = f"{base_url}/targets/"
    targets_url = target_base_url or own_targets
    make_dir(metadata_dir)
    updater = StrictUpdater(
        str(metadata_dir),
        f"{base_url}/metadata/",
        target_base_url=targets_url,
        fetcher=fetcher,
        config=updater_config(limits),
        bootstrap=root,
    )
    updater.refresh()
    targets = _Targets(
        fetcher,
        targets_url,
        _consistent(metadata_dir),
        limits,
        fallback_url=own_targets if targets_url != own_targets else None,
        notes=notes if notes is not None else [],
        peers_url=f"{base_url}{PEERS_PATH}",
    )
    return updater, targets


def fetch_target(
    *,
    root: bytes,
    metadata_dir: Path,
    base_url: str,
    target_path: str,
    fetcher: FetcherInterface,
    limits: BootLimits,
    max_bytes: int,
    target_base_url: str | None = None,
    held: Callable[[str], bytes | None] | None = None,
) -> bytes:
    """One target, verified: refresh the metadata (anchored in ``root``), resolve
    ``target_path`` through the delegations and stream its bytes against the signed length
    and hashes. What the agent runs VM images through; blocking, like ``open_channel``.

    ``held`` (a SHA-256 in hex → bytes the caller already has, or None) skips the download
    when the caller holds bytes of the signed length and SHA-256 just refreshed: the same
    verdict on the same bytes, without fetching them again."""
    try:
        updater, targets = _refreshed(
            root, metadata_dir, base_url, target_base_url, fetcher, limits, None
        )
        info = updater.get_targetinfo(target_path)
        if info is None:
            raise ManifestError(f"{target_path} is not a signed target")
        if info.length > max_bytes:
            raise ManifestError(f"{target_path} of {info.length} bytes exceeds {max_bytes}")
        signed = info.hashes.get("sha256")
        kept = held(signed) if held is not None and signed else None
        if (
            kept is not None
            and len(kept) == info.length
            and hashlib.sha256(kept).hexdigest() == signed
        ):
            return kept
        return targets.to_bytes(info)
    except BootError:
        raise
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError, ValueError) as exc:
        raise translate(exc) from exc
    except OSError as exc:
        raise BootError(f"unit storage failed: {exc}") from exc


def fetch_verified_target(
    trust: TrustBundle,
    ssl_context: ssl.SSLContext,
    target_path: str,
    metadata_dir: Path,
    *,
    max_bytes: int,
    limits: BootLimits | None = None,
    held: Callable[[str], bytes | None] | None = None,
) -> bytes:
    """:func:`fetch_target` over mutual TLS from the boot and bulk-target servers the unit's
    trust bundle names, with the unit's identity (``ssl_context``). Blocking."""
    limits = limits or BootLimits()
    fetcher = StreamFetcher(
        ssl_context=ssl_context,
        connect_timeout=limits.connect_timeout,
        read_timeout=limits.read_timeout,
        deadline=time.monotonic() + limits.total_timeout,
    )
    try:
        return fetch_target(
            root=trust.tuf_root,
            metadata_dir=metadata_dir,
            base_url=f"{trust.boot_server}{BOOT_V1}",
            target_base_url=trust.targets_url,
            target_path=target_path,
            fetcher=fetcher,
            limits=limits,
            max_bytes=max_bytes,
            held=held,
        )
    finally:
        fetcher.close()

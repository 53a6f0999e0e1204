"""The rack's TUF repository: the management side that signs what units may boot.

Roles: ``root`` (threshold configurable, keys in ``root-keys/``, apart from the online keys),
``targets`` delegating one role per release channel (``stable``, ...), ``snapshot`` and a
short-lived ``timestamp`` that :func:`refresh_timestamp` re-signs before it expires.
Consistent snapshots: metadata is written versioned (``3.stable.json``) and target files
hash-prefixed (``stable/racklet-os/0.2.0/<sha256>.payload.bin``), so nothing a client may be
reading is ever overwritten; a publish writes targets first, then the channel's metadata, then
the snapshot, and switches ``timestamp.json`` last (one atomic rename). A crash at any point
leaves the previous release fully served. Each channel also carries a signed pointer target,
``<channel>/current.json``, naming the release units of that channel boot.

On disk (``base``)::

    repository.json            channels and expiry settings (public)
    root-keys/root-N.pem       root keys (0600; keep offline)
    keys/<role>.pem            online keys (0600)
    repo/metadata/             served at /boot/v1/metadata/
    repo/targets/              served at /boot/v1/targets/

Not thread-safe across processes by itself: every write holds ``base/.lock`` (``flock``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tuf.api.exceptions import RepositoryError as TufRepositoryError
from tuf.api.serialization import DeserializationError

from racklet.boot._manifest import valid_name, valid_version
from racklet.boot._payload import MAX_PAYLOAD_BYTES
from racklet.boot._tuf_api import (
    CryptoSigner,
    DelegatedRole,
    Delegations,
    Key,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from racklet.boot._tuf_keys import (
    ONLINE_KEYS_DIR,
    ROOT_KEYS_DIR,
    load_key,
    new_key,
    root_key_names,
)
from racklet.boot.errors import PublishError, RepositoryError
from racklet.config import atomic_file, make_dir, open_lock, write_atomic

CURRENT = "current.json"
METADATA_DIR = "metadata"
TARGETS_DIR = "targets"
SETTINGS = "repository.json"
ONLINE_ROLES = ("targets", "snapshot", "timestamp")

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SignedT = TypeVar("_SignedT", Root, Targets, Snapshot, Timestamp)


@dataclass(frozen=True)
class Expiry:
    """How long each role's signature stays valid. The timestamp's is short on purpose:
    a unit that cannot get a fresh one (a freeze attack) stops booting new metadata soon."""

    root: dt.timedelta = dt.timedelta(days=365)
    targets: dt.timedelta = dt.timedelta(days=90)
    snapshot: dt.timedelta = dt.timedelta(days=7)
    timestamp: dt.timedelta = dt.timedelta(days=1)

    def for_role(self, role: str) -> dt.timedelta:
        lifetimes = {"root": self.root, "snapshot": self.snapshot, "timestamp": self.timestamp}
        return lifetimes.get(role, self.targets)  # targets and every channel role


@dataclass(frozen=True)
class ReleaseFile:
    """One signed file of a release, as units find it."""

    name: str
    target_path: str
    length: int
    sha256: str


@dataclass(frozen=True)
class PublishedRelease:
    """A named, versioned set of targets in one channel."""

    channel: str
    name: str
    version: str
    files: tuple[ReleaseFile, ...]
    current: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _check_file_name(name: str) -> None:
    if not _FILE_NAME.fullmatch(name) or name == CURRENT:
        raise PublishError(f"invalid file name {name!r} (letters, digits, '.', '_', '-')")


class TufRepository:
    """Create with :meth:`create`, open with :meth:`open`; publish, list, refresh."""

    def __init__(self, base: Path, channels: tuple[str, ...], expiry: Expiry) -> None:
        self.base = base
        self.channels = channels
        self.expiry = expiry

    # -- paths ------------------------------------------------------------------------------

    @property
    def repo_dir(self) -> Path:
        """What the boot server serves (``metadata/`` and ``targets/``)."""
        return self.base / "repo"

    @property
    def metadata_dir(self) -> Path:
        return self.repo_dir / METADATA_DIR

    @property
    def targets_dir(self) -> Path:
        return self.repo_dir / TARGETS_DIR

    @property
    def root_keys_dir(self) -> Path:
        return self.base / ROOT_KEYS_DIR

    @property
    def online_keys_dir(self) -> Path:
        return self.base / ONLINE_KEYS_DIR

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        base: Path,
        *,
        channels: tuple[str, ...] = ("stable",),
        root_keys: int = 1,
        root_threshold: int = 1,
        expiry: Expiry | None = None,
    ) -> TufRepository:
        """A new repository: fresh keys, version-1 metadata of every role, no releases."""
        if not channels or any(not valid_name(c) or c in (*ONLINE_ROLES, "root") for c in channels):
            raise PublishError(f"invalid channel names {channels!r}")
        if not 1 <= root_threshold <= root_keys:
            raise PublishError(
                f"root threshold must be between 1 and the number of root keys ({root_keys}), "
                f"got {root_threshold}"
            )
        expiry = expiry or Expiry()
        if (base / SETTINGS).exists():
            raise PublishError(f"a TUF repository already exists in {base}")
        repo = cls(base, tuple(channels), expiry)
        try:
            make_dir(base)
            with repo._locked():
                repo._initialise(root_keys, root_threshold)
        except OSError as exc:
            raise PublishError(f"cannot create a TUF repository in {base}: {exc}") from exc
        return repo

    @classmethod
    def open(cls, base: Path) -> TufRepository:
        """Open an existing repository (its settings file names channels and expiries)."""
        try:
            settings = json.loads((base / SETTINGS).read_text())
            channels = tuple(str(c) for c in settings["channels"])
            expiry = Expiry(
                **{k: dt.timedelta(seconds=float(v)) for k, v in settings["expiry"].items()}
            )
        except FileNotFoundError as exc:
            raise RepositoryError(f"no TUF repository in {base}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RepositoryError(f"{base / SETTINGS} is unreadable: {exc}") from exc
        return cls(base, channels, expiry)

    def _initialise(self, root_keys: int, root_threshold: int) -> None:
        settings = {
            "channels": list(self.channels),
            "expiry": {
                role: self.expiry.for_role(role).total_seconds()
                for role in ("root", "targets", "snapshot", "timestamp")
            },
        }
        now = _now()
        root_signers = [new_key(self.root_keys_dir, f"root-{i + 1}") for i in range(root_keys)]
        online = {role: new_key(self.online_keys_dir, role) for role in ONLINE_ROLES}
        channel_signers = {c: new_key(self.online_keys_dir, c) for c in self.channels}

        root = Root(expires=now + self.expiry.root, consistent_snapshot=True)
        for signer in root_signers:
            root.add_key(signer.public_key, "root")
        root.roles["root"].threshold = root_threshold
        for role, signer in online.items():
            root.add_key(signer.public_key, role)
        roles = {
            c: DelegatedRole(c, [s.public_key.keyid], 1, True, paths=[f"{c}/*", f"{c}/*/*/*"])
            for c, s in channel_signers.items()
        }
        keys: dict[str, Key] = {s.public_key.keyid: s.public_key for s in channel_signers.values()}
        targets = Targets(expires=now + self.expiry.targets)
        targets.delegations = Delegations(keys=keys, roles=roles)
        make_dir(self.metadata_dir)
        make_dir(self.targets_dir)
        self._write_root(Metadata(root), root_signers)
        self._write_versioned("targets", Metadata(targets), online["targets"])
        meta = {"targets.json": MetaFile(1)}
        for channel, signer in channel_signers.items():
            self._write_versioned(
                channel, Metadata(Targets(expires=now + self.expiry.targets)), signer
            )
            meta[f"{channel}.json"] = MetaFile(1)
        snapshot = Metadata(Snapshot(expires=now + self.expiry.snapshot, meta=meta))
        self._write_versioned("snapshot", snapshot, online["snapshot"])
        timestamp = Metadata(Timestamp(expires=now + self.expiry.timestamp))
        self._write_timestamp(timestamp, online["timestamp"])
        write_atomic(self.base / SETTINGS, json.dumps(settings, indent=2) + "\n")

    # -- reading state ----------------------------------------------------------------------

    def _load(self, name: str, kind: type[_SignedT]) -> Metadata[_SignedT]:
        path = self.metadata_dir / name
        try:
            md = Metadata[kind].from_bytes(path.read_bytes())  # type: ignore[valid-type]
        except FileNotFoundError as exc:
            raise RepositoryError(f"repository metadata {name} is missing") from exc
        except (OSError, DeserializationError) as exc:
            raise RepositoryError(f"repository metadata {name} is unreadable: {exc}") from exc
        if not isinstance(md.signed, kind):
            raise RepositoryError(f"{name} is not {kind.type} metadata")
        return md

    def root_version(self) -> int:
        versions = [
            int(p.name.split(".", 1)[0])
            for p in self.metadata_dir.glob("*.root.json")
            if p.name.split(".", 1)[0].isdigit()
        ]
        if not versions:
            raise RepositoryError(f"no root metadata in {self.metadata_dir}")
        return max(versions)

    def root_bytes(self) -> bytes:
        """The current root metadata: the trust anchor a unit's BMC hands to the unit."""
        return (self.metadata_dir / f"{self.root_version()}.root.json").read_bytes()

    def _root(self) -> Metadata[Root]:
        return self._load(f"{self.root_version()}.root.json", Root)

    def _timestamp(self) -> Metadata[Timestamp]:
        return self._load("timestamp.json", Timestamp)

    def _snapshot(self) -> Metadata[Snapshot]:
        version = self._timestamp().signed.snapshot_meta.version
        return self._load(f"{version}.snapshot.json", Snapshot)

    def _targets(self, role: str, snapshot: Metadata[Snapshot]) -> Metadata[Targets]:
        meta = snapshot.signed.meta.get(f"{role}.json")
        if meta is None:
            raise RepositoryError(f"the snapshot does not list role {role!r}")
        return self._load(f"{meta.version}.{role}.json", Targets)

    # -- writing ----------------------------------------------------------------------------

    def _signers(self, role: str) -> list[CryptoSigner]:
        if role == "root":
            return [load_key(self.root_keys_dir, n) for n in root_key_names(self.root_keys_dir)]
        return [load_key(self.online_keys_dir, role)]

    def _write_root(self, md: Metadata[Root], signers: list[CryptoSigner]) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        data = md.to_bytes()
        write_atomic(self.metadata_dir / f"{md.signed.version}.root.json", data)
        write_atomic(self.metadata_dir / "root.json", data)

    def _write_versioned(self, role: str, md: Metadata[Any], signer: CryptoSigner) -> None:
        md.sign(signer)
        write_atomic(self.metadata_dir / f"{md.signed.version}.{role}.json", md.to_bytes())

    def _write_timestamp(self, md: Metadata[Timestamp], signer: CryptoSigner) -> None:
        md.sign(signer)
        write_atomic(self.metadata_dir / "timestamp.json", md.to_bytes())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open_lock(self.base / ".lock") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _commit(self, snapshot_meta: Mapping[str, int], now: dt.datetime) -> None:
        """New snapshot (listing the given role versions), then the timestamp: the switch."""
        snapshot = self._snapshot()
        for name, version in snapshot_meta.items():
            snapshot.signed.meta[name] = MetaFile(version)
        snapshot.signed.version += 1
        snapshot.signed.expires = now + self.expiry.snapshot
        self._write_versioned("snapshot", snapshot, self._signers("snapshot")[0])
        timestamp = self._timestamp()
        timestamp.signed.snapshot_meta = MetaFile(snapshot.signed.version)
        timestamp.signed.version += 1
        timestamp.signed.expires = now + self.expiry.timestamp
        self._write_timestamp(timestamp, self._signers("timestamp")[0])

    # -- publishing -------------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        name: str,
        version: str,
        files: Mapping[str, bytes | Path],
        *,
        current: bool = True,
    ) -> PublishedRelease:
        """Sign and publish a release; with ``current`` (default) units of ``channel`` boot it.

        Atomic: every target file is in place before the channel metadata, snapshot and
        timestamp that name it; any failure leaves the previous state served.
        """
        if channel not in self.channels:
            raise PublishError(f"unknown channel {channel!r} (have: {', '.join(self.channels)})")
        if not valid_name(name):
            raise PublishError(
                f"invalid release name {name!r} (lowercase letters, digits, '.', '-')"
            )
        if not valid_version(version):
            raise PublishError(f"invalid release version {version!r}")
        if not files:
            raise PublishError("a release needs at least one file")
        for file_name in files:
            _check_file_name(file_name)
        try:
            with self._locked():
                return self._publish(channel, name, version, files, current)
        except OSError as exc:
            raise PublishError(f"cannot publish into {self.base}: {exc}") from exc

    def _publish(
        self,
        channel: str,
        name: str,
        version: str,
        files: Mapping[str, bytes | Path],
        current: bool,
    ) -> PublishedRelease:
        prefix = f"{channel}/{name}/{version}"
        placed = [self._place_target(f"{prefix}/{fn}", data) for fn, data in files.items()]
        now = _now()
        snapshot = self._snapshot()
        role = self._targets(channel, snapshot)
        for target in placed:
            role.signed.targets[target.path] = target
        if current:
            pointer = {
                "name": name,
                "version": version,
                "files": {fn: f"{prefix}/{fn}" for fn in files},
            }
            data = (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode()
            role.signed.targets[f"{channel}/{CURRENT}"] = self._place_target(
                f"{channel}/{CURRENT}", data
            )
        role.signed.version += 1
        role.signed.expires = now + self.expiry.targets
        self._write_versioned(channel, role, self._signers(channel)[0])
        self._commit({f"{channel}.json": role.signed.version}, now)
        return self._release(channel, name, version, role.signed, current=current)

    def _place_target(self, target_path: str, data: bytes | Path) -> TargetFile:
        """Write one target file under its hash-prefixed name; return its TUF description."""
        directory = self.targets_dir / os.path.dirname(target_path)
        basename = os.path.basename(target_path)
        hasher = hashlib.sha256()
        length = 0
        with atomic_file(directory / basename, mode=0o644) as out:
            if isinstance(data, Path):
                with open(data, "rb") as source:
                    while chunk := source.read(1 << 20):
                        hasher.update(chunk)
                        out.write(chunk)
                        length += len(chunk)
            else:
                hasher.update(data)
                out.write(data)
                length = len(data)
            if not 0 < length <= MAX_PAYLOAD_BYTES:
                raise PublishError(
                    f"{basename} must be between 1 and {MAX_PAYLOAD_BYTES} bytes, got {length}"
                )
            digest = hasher.hexdigest()
            out.target = directory / f"{digest}.{basename}"  # hash-prefixed: consistent snapshot
        return TargetFile(length, {"sha256": digest}, target_path)

    # -- listing ----------------------------------------------------------------------------

    def list(self) -> list[PublishedRelease]:
        """Every release in every channel, as the served metadata says."""
        snapshot = self._snapshot()
        releases: list[PublishedRelease] = []
        for channel in self.channels:
            signed = self._targets(channel, snapshot).signed
            current = self._current(channel, signed)
            keys = sorted({tuple(p.split("/")[1:3]) for p in signed.targets if p.count("/") == 3})
            for name, version in keys:
                is_current = current == (name, version)
                releases.append(self._release(channel, name, version, signed, current=is_current))
        return releases

    def _current(self, channel: str, signed: Targets) -> tuple[str, str] | None:
        info = signed.targets.get(f"{channel}/{CURRENT}")
        if info is None:
            return None
        path = self.targets_dir / channel / f"{info.hashes['sha256']}.{CURRENT}"
        try:
            pointer = json.loads(path.read_bytes())
            return str(pointer["name"]), str(pointer["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _release(
        self, channel: str, name: str, version: str, signed: Targets, *, current: bool
    ) -> PublishedRelease:
        prefix = f"{channel}/{name}/{version}/"
        files = tuple(
            ReleaseFile(p[len(prefix) :], p, t.length, t.hashes["sha256"])
            for p, t in sorted(signed.targets.items())
            if p.startswith(prefix)
        )
        return PublishedRelease(channel, name, version, files, current)

    # -- maintenance ------------------------------------------------------------------------

    def refresh(self, *, now: dt.datetime | None = None) -> bool:
        """Re-sign online roles whose signatures are past half their lifetime.

        Channel and targets roles are bumped when needed (then the snapshot), the snapshot when
        needed, and the timestamp always if anything changed or it is past half its lifetime.
        Returns whether anything was re-signed.
        """
        now = now or _now()
        with self._locked():
            snapshot = self._snapshot()
            bumped: dict[str, int] = {}
            for role in ("targets", *self.channels):
                md = self._targets(role, snapshot)
                if self._stale(md.signed.expires, self.expiry.targets, now):
                    md.signed.version += 1
                    md.signed.expires = now + self.expiry.targets
                    self._write_versioned(role, md, self._signers(role)[0])
                    bumped[f"{role}.json"] = md.signed.version
            if bumped or self._stale(snapshot.signed.expires, self.expiry.snapshot, now):
                self._commit(bumped, now)
                return True
            timestamp = self._timestamp()
            if not self._stale(timestamp.signed.expires, self.expiry.timestamp, now):
                return False
            timestamp.signed.version += 1
            timestamp.signed.expires = now + self.expiry.timestamp
            self._write_timestamp(timestamp, self._signers("timestamp")[0])
            return True

    @staticmethod
    def _stale(expires: dt.datetime, lifetime: dt.timedelta, now: dt.datetime) -> bool:
        return expires - now < lifetime / 2

    def rotate_key(self, role: str) -> None:
        """Replace an online role's key: a new root version (signed by the root keys) trusts
        the new key only, then the role is re-signed with it. Recovers from a compromised
        online key, including a fast-forward attack on the timestamp or snapshot."""
        if role not in ONLINE_ROLES:
            raise PublishError(f"only {', '.join(ONLINE_ROLES)} keys rotate through root")
        with self._locked():
            root = self._root()
            old = list(root.signed.roles[role].keyids)
            for keyid in old:
                root.signed.revoke_key(keyid, role)
            signer = new_key(self.online_keys_dir, role)
            root.signed.add_key(signer.public_key, role)
            root.signed.version += 1
            root.signed.expires = _now() + self.expiry.root
            self._write_root(root, self._signers("root"))
            now = _now()
            if role == "targets":
                snapshot = self._snapshot()
                md = self._targets("targets", snapshot)
                md.signed.version += 1
                self._write_versioned("targets", md, signer)
                self._commit({"targets.json": md.signed.version}, now)
            else:
                self._commit({}, now)

    def ensure_channel(self, channel: str) -> bool:
        """Add ``channel`` (a delegation of ``targets``, its own online key) if this
        repository lacks it, e.g. ``bmc-firmware`` in a rack created before that channel
        existed. Idempotent; True if it was added.

        The root does not change (delegations live in ``targets``), so every trust anchor
        already handed out stays valid. Order: the channel's key and version-1 metadata, a new
        ``targets`` naming it, then snapshot and timestamp (the switch), then the settings
        file; a crash before the switch leaves the old state served and is redone next time.
        """
        if not valid_name(channel) or channel in (*ONLINE_ROLES, "root"):
            raise PublishError(f"invalid channel name {channel!r}")
        try:
            with self._locked():
                return self._ensure_channel(channel)
        except OSError as exc:
            raise PublishError(f"cannot add channel {channel} in {self.base}: {exc}") from exc

    def _ensure_channel(self, channel: str) -> bool:
        settings_path = self.base / SETTINGS
        settings = json.loads(settings_path.read_text())
        snapshot = self._snapshot()
        targets = self._targets("targets", snapshot)
        delegations = targets.signed.delegations
        if delegations is None or delegations.roles is None:
            raise RepositoryError("the targets role delegates no channel")
        added = channel not in delegations.roles
        if added:
            now = _now()
            signer = new_key(self.online_keys_dir, channel)
            self._write_versioned(
                channel, Metadata(Targets(expires=now + self.expiry.targets)), signer
            )
            keyid = signer.public_key.keyid
            delegations.keys[keyid] = signer.public_key
            delegations.roles[channel] = DelegatedRole(
                channel, [keyid], 1, True, paths=[f"{channel}/*", f"{channel}/*/*/*"]
            )
            targets.signed.version += 1
            targets.signed.expires = now + self.expiry.targets
            self._write_versioned("targets", targets, self._signers("targets")[0])
            self._commit({"targets.json": targets.signed.version, f"{channel}.json": 1}, now)
        if channel not in settings["channels"]:
            settings["channels"].append(channel)
            write_atomic(settings_path, json.dumps(settings, indent=2) + "\n")
        if channel not in self.channels:
            self.channels = (*self.channels, channel)
        return added

    def remove(self) -> None:
        """Delete the repository, keys included (factory reset)."""
        shutil.rmtree(self.base, ignore_errors=True)


def refresh_timestamp(repo: TufRepository) -> bool:
    """Keep the short-lived roles fresh; the controller calls this periodically.

    Returns whether anything was re-signed. Translates failures into ``RepositoryError``.
    """
    try:
        return repo.refresh()
    except (OSError, TufRepositoryError, ValueError) as exc:
        raise RepositoryError(f"cannot refresh the TUF timestamp: {exc}") from exc

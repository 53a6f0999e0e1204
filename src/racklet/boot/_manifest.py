"""The boot verdicts Racklet adds on top of TUF: bytes in, verdict out. No network, no disk.

TUF (python-tuf's trusted metadata set, driven by ``_tuf_client``) decides whether metadata and
target bytes are trusted. What a verified target *means* is judged here: the channel's
``current.json`` pointer (which release to boot, and which file is the payload) and the
payload's ``agent.json``. These functions only ever see bytes TUF already verified.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TypeGuard

from racklet.boot.errors import ManifestError, PayloadError

PAYLOAD_NAME = "payload.bin"

_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")


@dataclass(frozen=True)
class PayloadManifest:
    """What a unit booted: the release, and the payload target as TUF verified it."""

    name: str
    version: str
    channel: str
    payload_path: str
    payload_length: int
    payload_sha256: str

    def to_json(self) -> bytes:
        """The record kept beside the installed payload (stable key order)."""
        document = {
            "name": self.name,
            "version": self.version,
            "channel": self.channel,
            "payload": {
                "path": self.payload_path,
                "length": self.payload_length,
                "sha256": self.payload_sha256,
            },
        }
        return (json.dumps(document, indent=2) + "\n").encode()


@dataclass(frozen=True)
class ReleasePointer:
    """A channel's signed ``current.json``: the release its units boot."""

    name: str
    version: str
    files: dict[str, str]

    @property
    def payload_target(self) -> str:
        return self.files[PAYLOAD_NAME]


@dataclass(frozen=True)
class AgentConfig:
    """``agent.json`` from the payload: how the OS behaves, in simulated seconds."""

    version: str
    os_boot_seconds: float
    heartbeat_interval_seconds: float


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def valid_version(version: str) -> bool:
    return bool(_VERSION.fullmatch(version))


def parse_release_pointer(data: bytes, channel: str) -> ReleasePointer:
    """Judge a verified ``<channel>/current.json``: it must name a release in that channel
    whose files include the payload."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"{channel}/current.json is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ManifestError(f"{channel}/current.json is not a JSON object")
    name, version, files = document.get("name"), document.get("version"), document.get("files")
    if not isinstance(name, str) or not valid_name(name):
        raise ManifestError(f"{channel}/current.json names an invalid release {name!r}")
    if not isinstance(version, str) or not valid_version(version):
        raise ManifestError(f"{channel}/current.json has an invalid version {version!r}")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ManifestError(f"{channel}/current.json has no valid 'files' map")
    prefix = f"{channel}/{name}/{version}/"
    for file_name, target in files.items():
        if target != prefix + file_name:
            raise ManifestError(f"{channel}/current.json points outside its release: {target!r}")
    if PAYLOAD_NAME not in files:
        raise ManifestError(f"release {name} {version} has no {PAYLOAD_NAME}")
    return ReleasePointer(name, version, dict(files))


def parse_agent_config(data: bytes) -> AgentConfig:
    """Parse ``agent.json`` from a verified payload."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise PayloadError(f"agent.json in the payload is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PayloadError("agent.json in the payload is not a JSON object")
    version = document.get("version")
    boot = document.get("osBootSeconds")
    interval = document.get("heartbeatIntervalSeconds")
    if not isinstance(version, str) or not valid_version(version):
        raise PayloadError(f"agent.json has an invalid version: {version!r}")
    if not _number(boot) or not 0 <= boot <= 3600:
        raise PayloadError(f"agent.json osBootSeconds must be in [0, 3600], got {boot!r}")
    if not _number(interval) or not 0.1 <= interval <= 3600:
        raise PayloadError(
            f"agent.json heartbeatIntervalSeconds must be in [0.1, 3600], got {interval!r}"
        )
    return AgentConfig(version, float(boot), float(interval))


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)

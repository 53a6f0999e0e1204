"""The verification kernel: bytes in, verdict out. No network, no disk, no clock.

``verify_manifest`` decides whether manifest bytes are trusted; ``check_payload_digest`` and
``parse_agent_config`` judge what the client measured or extracted. The client around them
does all I/O (house style 3). A TUF metadata set replaces the single signature later; only this
module changes then.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from racklet.boot.errors import ManifestError, PayloadError, SignatureError

API_VERSION = "racklet.dev/v1alpha1"
KIND = "BootManifest"
SIGNATURE_BYTES = 64
PAYLOAD_NAME = "payload.bin"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")


@dataclass(frozen=True)
class Manifest:
    """A boot manifest: which payload to boot and how to recognise it."""

    name: str
    version: str
    created: str
    payload_path: str
    payload_length: int
    payload_sha256: str

    def to_json(self) -> bytes:
        """The canonical bytes that get signed and served (stable key order)."""
        document = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "payload": {
                "path": self.payload_path,
                "length": self.payload_length,
                "sha256": self.payload_sha256,
            },
        }
        return (json.dumps(document, indent=2) + "\n").encode()


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


def load_public_key(public_key_pem: bytes | str) -> Ed25519PublicKey:
    """Parse an Ed25519 public key (PEM); anything else is a :class:`SignatureError`."""
    data = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"the boot signing key is not a valid PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("the boot signing key is not an Ed25519 key")
    return key


def verify_manifest(
    manifest_bytes: bytes,
    signature: bytes,
    public_key_pem: bytes | str,
    *,
    max_payload_bytes: int | None = None,
) -> Manifest:
    """Verify the signature over the exact manifest bytes, then parse and validate them."""
    key = load_public_key(public_key_pem)
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(
            f"manifest signature is {len(signature)} bytes, expected {SIGNATURE_BYTES}"
        )
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature as exc:
        raise SignatureError(
            "manifest signature does not verify with the rack's boot signing key"
        ) from exc
    return parse_manifest(manifest_bytes, max_payload_bytes=max_payload_bytes)


def parse_manifest(manifest_bytes: bytes, *, max_payload_bytes: int | None = None) -> Manifest:
    """Validate manifest structure; call only on bytes whose signature was verified."""
    try:
        document = json.loads(manifest_bytes)
    except ValueError as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ManifestError("manifest is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise ManifestError(
            f"manifest is not a {API_VERSION} {KIND} "
            f"(got {document.get('apiVersion')!r} {document.get('kind')!r})"
        )
    name = _string(document, "name")
    version = _string(document, "version")
    created = _string(document, "created")
    if not valid_name(name) or not valid_version(version):
        raise ManifestError(f"manifest has an invalid name or version: {name!r} {version!r}")
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise ManifestError("manifest has no 'payload' object")
    path = _string(payload, "path")
    if path != PAYLOAD_NAME:
        raise ManifestError(f"manifest payload path must be {PAYLOAD_NAME!r}, got {path!r}")
    length = payload.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
        raise ManifestError(f"manifest payload length must be a positive integer, got {length!r}")
    if max_payload_bytes is not None and length > max_payload_bytes:
        raise ManifestError(
            f"manifest payload of {length} bytes exceeds the {max_payload_bytes}-byte limit"
        )
    digest = _string(payload, "sha256")
    if not _SHA256.fullmatch(digest):
        raise ManifestError(f"manifest payload sha256 is not 64 lowercase hex digits: {digest!r}")
    return Manifest(name, version, created, path, length, digest)


def check_payload_digest(manifest: Manifest, length: int, sha256_hex: str) -> None:
    """Judge a measured payload against its manifest."""
    if length != manifest.payload_length:
        raise PayloadError(
            f"payload is {length} bytes, the signed manifest says {manifest.payload_length}"
        )
    if sha256_hex != manifest.payload_sha256:
        raise PayloadError(
            f"payload SHA-256 mismatch: got {sha256_hex}, "
            f"the signed manifest says {manifest.payload_sha256}"
        )


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


def _string(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"manifest field {key!r} must be a non-empty string")
    return value

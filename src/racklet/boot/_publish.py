"""The publish side: the boot signing key and an atomically published repository.

Writes are ordered so a reader (the boot server) never sees a manifest whose payload is not
in place: payload first, then the signature, then the manifest, each via a temp file in the
same directory and ``os.replace``. A reader racing a republish may see an old manifest with a
new payload; the client then rejects the boot and a retry succeeds. (TUF snapshots close that
window later.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from racklet.boot._manifest import PAYLOAD_NAME, Manifest, valid_name, valid_version
from racklet.boot._payload import MAX_PAYLOAD_BYTES
from racklet.boot.errors import PublishError
from racklet.config import write_private

SIGNING_KEY = "signing.key"
SIGNING_PUB = "signing.pub"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"


def generate_signing_key(directory: Path) -> Path:
    """Create ``signing.key`` (Ed25519, PEM, 0600) and ``signing.pub``; return the key path."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_path = directory / SIGNING_KEY
    try:
        write_private(key_path, private)
        _write_atomic(directory / SIGNING_PUB, public)
    except OSError as exc:
        raise PublishError(f"cannot write the boot signing key to {directory}: {exc}") from exc
    return key_path


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as exc:
        raise PublishError(f"cannot load the boot signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise PublishError(f"{path} is not an Ed25519 private key")
    return key


def publish(
    repo_dir: Path,
    payload: bytes,
    signing_key: Path,
    *,
    name: str = "racklet-os",
    version: str = "0.1.0",
) -> Manifest:
    """Sign and publish ``payload`` into ``repo_dir`` atomically; return its manifest."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise PublishError("payload must be bytes")
    if not 0 < len(payload) <= MAX_PAYLOAD_BYTES:
        raise PublishError(
            f"payload must be between 1 and {MAX_PAYLOAD_BYTES} bytes, got {len(payload)}"
        )
    if not valid_name(name):
        raise PublishError(f"invalid payload name {name!r} (lowercase letters, digits, '.', '-')")
    if not valid_version(version):
        raise PublishError(f"invalid payload version {version!r}")
    key = load_signing_key(signing_key)
    manifest = Manifest(
        name=name,
        version=version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        payload_path=PAYLOAD_NAME,
        payload_length=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
    )
    document = manifest.to_json()
    signature = key.sign(document)
    try:
        repo_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(repo_dir / PAYLOAD_NAME, payload)
        _write_atomic(repo_dir / SIGNATURE_NAME, signature)
        _write_atomic(repo_dir / MANIFEST_NAME, document)
    except OSError as exc:
        raise PublishError(f"cannot publish into {repo_dir}: {exc}") from exc
    return manifest


def _write_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

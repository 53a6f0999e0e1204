"""The verification kernel: bytes in, verdict out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from racklet.boot import (
    ManifestError,
    PayloadError,
    SignatureError,
    build_default_payload,
    generate_signing_key,
    parse_agent_config,
    publish,
    verify_manifest,
)
from racklet.boot._manifest import check_payload_digest


@pytest.fixture
def signed(tmp_path: Path) -> tuple[bytes, bytes, bytes, Ed25519PrivateKey]:
    key_path = generate_signing_key(tmp_path)
    publish(tmp_path / "repo", build_default_payload(8192), key_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return (
        (tmp_path / "repo" / "manifest.json").read_bytes(),
        (tmp_path / "repo" / "manifest.sig").read_bytes(),
        (tmp_path / "signing.pub").read_bytes(),
        key,
    )


def test_tampered_manifest_fails_the_signature(signed: tuple[bytes, bytes, bytes, object]) -> None:
    manifest, signature, public, _ = signed
    tampered = manifest.replace(b'"0.1.0"', b'"9.9.9"')
    assert tampered != manifest
    with pytest.raises(SignatureError, match="does not verify"):
        verify_manifest(tampered, signature, public)


def test_other_key_fails_the_signature(signed: tuple[bytes, bytes, bytes, object]) -> None:
    manifest, signature, _, _ = signed
    other = Ed25519PrivateKey.generate().public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SignatureError, match="does not verify"):
        verify_manifest(manifest, signature, pem)


def test_non_ed25519_or_garbage_key_is_refused(signed: tuple[bytes, bytes, bytes, object]) -> None:
    manifest, signature, _, _ = signed
    ecdsa = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SignatureError, match="not an Ed25519"):
        verify_manifest(manifest, signature, ecdsa)
    with pytest.raises(SignatureError, match="not a valid PEM"):
        verify_manifest(manifest, signature, b"not a key")


def test_truncated_signature_is_refused(signed: tuple[bytes, bytes, bytes, object]) -> None:
    manifest, signature, public, _ = signed
    with pytest.raises(SignatureError, match="63 bytes"):
        verify_manifest(manifest, signature[:63], public)


def _resign(key: Ed25519PrivateKey, document: object) -> tuple[bytes, bytes]:
    data = json.dumps(document).encode()
    return data, key.sign(data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(kind="Other"), "BootManifest"),
        (lambda d: d["payload"].update(path="../etc/passwd"), "path"),
        (lambda d: d["payload"].update(length=-1), "length"),
        (lambda d: d["payload"].update(length=True), "length"),
        (lambda d: d["payload"].update(sha256="ABC"), "sha256"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(name="Bad Name"), "invalid name"),
    ],
)
def test_signed_but_malformed_manifest_is_refused(
    signed: tuple[bytes, bytes, bytes, Ed25519PrivateKey], mutate: object, message: str
) -> None:
    manifest, _, public, key = signed
    document = json.loads(manifest)
    mutate(document)  # type: ignore[operator]
    data, signature = _resign(key, document)
    with pytest.raises(ManifestError, match=message):
        verify_manifest(data, signature, public)


def test_manifest_over_the_payload_limit_is_refused(
    signed: tuple[bytes, bytes, bytes, Ed25519PrivateKey],
) -> None:
    manifest, signature, public, _ = signed
    assert verify_manifest(manifest, signature, public, max_payload_bytes=8192)
    with pytest.raises(ManifestError, match="8191-byte limit"):
        verify_manifest(manifest, signature, public, max_payload_bytes=8191)


def test_payload_digest_check(signed: tuple[bytes, bytes, bytes, Ed25519PrivateKey]) -> None:
    manifest = verify_manifest(signed[0], signed[1], signed[2])
    check_payload_digest(manifest, manifest.payload_length, manifest.payload_sha256)
    with pytest.raises(PayloadError, match="SHA-256 mismatch"):
        check_payload_digest(manifest, manifest.payload_length, "0" * 64)
    with pytest.raises(PayloadError, match="8191 bytes"):
        check_payload_digest(manifest, 8191, manifest.payload_sha256)


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"nope",
        b'{"version": "1", "osBootSeconds": -1, "heartbeatIntervalSeconds": 1}',
        b'{"version": "1", "osBootSeconds": 1, "heartbeatIntervalSeconds": 0}',
        b'{"version": "1", "osBootSeconds": "1", "heartbeatIntervalSeconds": 1}',
        b'{"osBootSeconds": 1, "heartbeatIntervalSeconds": 1}',
    ],
)
def test_bad_agent_config_is_refused(data: bytes) -> None:
    with pytest.raises(PayloadError, match=r"agent\.json"):
        parse_agent_config(data)

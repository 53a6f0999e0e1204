"""A payload a BMC holds (a Redfish push) goes into a unit's slot as the bootstrap installs a
download: the bytes copied are hashed again against the signed SHA-256, and a slot whose copy
differs keeps no record and no payload, so no boot ever reads it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from racklet.boot import PayloadError, PayloadManifest, build_default_payload
from racklet.boot import install_held_payload as install
from racklet.boot._slots import read_slot, verify_slot


def _manifest(data: bytes) -> PayloadManifest:
    return PayloadManifest(
        name="racklet-os",
        version="0.2.0",
        channel="stable",
        payload_path="stable/racklet-os/0.2.0/payload.bin",
        payload_length=len(data),
        payload_sha256=hashlib.sha256(data).hexdigest(),
    )


def test_a_held_payload_is_installed_so_the_bootstrap_boots_it(tmp_path: Path) -> None:
    data = build_default_payload(8192, "0.2.0")
    (tmp_path / "upload.bin").write_bytes(data)
    manifest = _manifest(data)
    install(tmp_path / "unit", "B", tmp_path / "upload.bin", manifest)
    # the bootstrap's own check of a slot before it boots it
    assert verify_slot(tmp_path / "unit", "B", manifest.payload_sha256) == manifest
    payload = tmp_path / "unit" / "slots" / "B" / "payload.bin"
    assert payload.stat().st_mode & 0o777 == 0o600


def test_a_copy_that_differs_from_the_signed_hash_leaves_nothing(tmp_path: Path) -> None:
    data = build_default_payload(8192, "0.2.0")
    manifest = _manifest(data)
    install(tmp_path / "unit", "B", _write(tmp_path, data), manifest)
    changed = data[:-1] + bytes([data[-1] ^ 1])  # the upload changed after its verification
    with pytest.raises(PayloadError, match="length or hash mismatch"):
        install(tmp_path / "unit", "B", _write(tmp_path, changed), manifest)
    slot = tmp_path / "unit" / "slots" / "B"
    assert read_slot(tmp_path / "unit", "B") is None  # incomplete: never booted
    assert sorted(p.name for p in slot.iterdir()) == ["payload.bin"]  # the old bytes, no record


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path

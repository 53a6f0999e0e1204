"""The publish side: signing key, deterministic default payload, atomic signed repository."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

import racklet.boot as boot
from racklet.boot import (
    PublishError,
    build_default_payload,
    generate_signing_key,
    parse_agent_config,
    publish,
    verify_manifest,
)


def test_public_surface_is_pinned() -> None:
    assert set(boot.__all__) == {
        "MAX_PAYLOAD_BYTES",
        "MIN_PAYLOAD_BYTES",
        "AgentConfig",
        "BootError",
        "BootLimits",
        "BootedPayload",
        "FetchError",
        "Manifest",
        "ManifestError",
        "PayloadError",
        "PublishError",
        "SignatureError",
        "TrustBundle",
        "TrustError",
        "UnitIdentity",
        "VerificationError",
        "build_default_payload",
        "generate_signing_key",
        "parse_agent_config",
        "publish",
        "unit_client_context",
        "unit_server_context",
        "verify_manifest",
    }


def test_signing_key_is_private(tmp_path: Path) -> None:
    key = generate_signing_key(tmp_path)
    assert key == tmp_path / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    assert (tmp_path / "signing.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_default_payload_is_deterministic_and_exact() -> None:
    first = build_default_payload(65536, "0.1.0")
    assert first == build_default_payload(65536, "0.1.0")
    assert len(first) == 65536
    assert build_default_payload(65536, "0.2.0") != first
    assert len(build_default_payload(10_001)) == 10_001


def test_default_payload_is_a_tar_with_the_agent_config() -> None:
    data = build_default_payload(20000, "1.2.3")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        agent = archive.extractfile("agent.json")
        assert agent is not None
        config = parse_agent_config(agent.read())
        os_release = archive.extractfile("etc/os-release")
        assert os_release is not None
        assert b'VERSION_ID="1.2.3"' in os_release.read()
    assert names == ["etc/os-release", "agent.json", "rootfs.img"]
    assert config.version == "1.2.3"
    assert config.os_boot_seconds >= 0
    assert config.heartbeat_interval_seconds > 0


@pytest.mark.parametrize("size", [0, 100, 4095, (1 << 30) + 1, -1])
def test_default_payload_rejects_sizes_out_of_bounds(size: int) -> None:
    with pytest.raises(PublishError, match="between"):
        build_default_payload(size)


def test_default_payload_rejects_a_bad_version() -> None:
    with pytest.raises(PublishError, match="version"):
        build_default_payload(65536, "../../etc")


def test_publish_then_verify_round_trip(tmp_path: Path) -> None:
    key = generate_signing_key(tmp_path)
    payload = build_default_payload(8192)
    manifest = publish(tmp_path / "repo", payload, key, version="0.3.0")
    repo = tmp_path / "repo"
    assert (repo / "payload.bin").read_bytes() == payload
    document = json.loads((repo / "manifest.json").read_text())
    assert document["apiVersion"] == "racklet.dev/v1alpha1"
    assert document["kind"] == "BootManifest"
    assert document["payload"] == {
        "path": "payload.bin",
        "length": 8192,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    signature = (repo / "manifest.sig").read_bytes()
    assert len(signature) == 64
    verified = verify_manifest(
        (repo / "manifest.json").read_bytes(), signature, (tmp_path / "signing.pub").read_bytes()
    )
    assert verified == manifest
    assert verified.version == "0.3.0"
    assert not [p.name for p in repo.iterdir() if p.name.startswith(".")]


def test_republish_replaces_every_file(tmp_path: Path) -> None:
    key = generate_signing_key(tmp_path)
    publish(tmp_path / "repo", build_default_payload(8192, "0.1.0"), key, version="0.1.0")
    second = publish(tmp_path / "repo", build_default_payload(8192, "0.2.0"), key, version="0.2.0")
    repo = tmp_path / "repo"
    verified = verify_manifest(
        (repo / "manifest.json").read_bytes(),
        (repo / "manifest.sig").read_bytes(),
        (tmp_path / "signing.pub").read_text(),
    )
    assert verified == second
    assert hashlib.sha256((repo / "payload.bin").read_bytes()).hexdigest() == second.payload_sha256


def test_publish_validates_its_inputs(tmp_path: Path) -> None:
    key = generate_signing_key(tmp_path)
    with pytest.raises(PublishError, match="between"):
        publish(tmp_path / "repo", b"", key)
    with pytest.raises(PublishError, match="name"):
        publish(tmp_path / "repo", b"x", key, name="Bad Name")
    with pytest.raises(PublishError, match="version"):
        publish(tmp_path / "repo", b"x", key, version="")
    with pytest.raises(PublishError, match="signing key"):
        publish(tmp_path / "repo", b"x", tmp_path / "missing.key")
    assert not (tmp_path / "repo").exists()

"""The bootstrap client against the real boot server over mutual TLS and a fake BMC."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import Receive, Scope, Send

from racklet.boot import (
    BootError,
    BootLimits,
    FetchError,
    ManifestError,
    PayloadError,
    SignatureError,
    TrustError,
)
from racklet.boot.client import bootstrap
from racklet.hw import Activity
from tests.boot.fakes import BootRig, FakeBmc, FakeHost, wait_for


def _installed(host: FakeHost) -> Path:
    return host.storage / "boot" / "payload.bin"


def _leftovers(host: FakeHost) -> list[str]:
    boot_dir = host.storage / "boot"
    return sorted(p.name for p in boot_dir.iterdir()) if boot_dir.exists() else []


def _assert_failed_cleanly(host: FakeHost, bmc: FakeBmc, fragment: str) -> None:
    failures = [line for line in host.lines if line.startswith("bootstrap: boot failed: ")]
    assert len(failures) == 1, host.lines
    assert fragment in failures[0]
    assert "\n" not in failures[0]
    reasons = [r["reason"] for r in bmc.ops("failed")]
    assert len(reasons) == 1 and fragment in reasons[0]
    assert Activity.BOOTING not in host.activities
    assert not [name for name in _leftovers(host) if name.endswith(".partial")]


async def test_boots_a_verified_payload(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    booted = await bootstrap(host)
    assert booted.unit == "unit-1"
    assert booted.manifest == rig.manifest
    assert booted.agent.version == "0.1.0"
    assert booted.identity.cert_pem == rig.unit_identity.cert_pem.decode()
    assert booted.trust.boot_server == rig.url
    assert _installed(host).read_bytes() == rig.payload
    stored_manifest = json.loads((host.storage / "boot" / "manifest.json").read_text())
    assert stored_manifest["payload"]["sha256"] == rig.manifest.payload_sha256
    assert _leftovers(host) == ["manifest.json", "payload.bin"]
    states = [r["state"] for r in bmc.ops("progress")]
    assert states == ["SystemHardwareInitializationComplete", "OSBootStarted"]
    assert bmc.ops("failed") == []
    assert host.activities[-1] is Activity.BOOTING
    assert any("booting racklet-os 0.1.0" in line for line in host.lines)


async def test_unit_key_is_never_written_to_unit_storage(rig: BootRig, host: FakeHost) -> None:
    await bootstrap(host)
    key = rig.unit_identity.key_pem
    for path in host.storage.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path


async def test_tampered_payload_is_rejected(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    tampered = bytearray(rig.payload)
    tampered[len(tampered) // 2] ^= 0x01
    (rig.repo / "payload.bin").write_bytes(bytes(tampered))
    with pytest.raises(PayloadError, match="SHA-256 mismatch"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "payload SHA-256 mismatch")
    assert not _installed(host).exists()
    assert host.activities[-1] is Activity.HALTED


async def test_failure_keeps_the_previous_verified_payload(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host)
    tampered = bytearray(rig.payload)
    tampered[-1000] ^= 0xFF
    (rig.repo / "payload.bin").write_bytes(bytes(tampered))
    with pytest.raises(PayloadError):
        await bootstrap(host)
    digest = hashlib.sha256(_installed(host).read_bytes()).hexdigest()
    assert digest == rig.manifest.payload_sha256


async def test_tampered_manifest_is_rejected(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    manifest = rig.repo / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"0.1.0"', b'"0.1.1"'))
    with pytest.raises(SignatureError):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "signature does not verify")
    assert not _installed(host).exists()


async def test_wrong_signing_key_is_rejected(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    stranger = Ed25519PrivateKey.generate().public_key()
    bmc.trust["signingKey"] = stranger.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(SignatureError):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "signature does not verify")
    assert not _installed(host).exists()


async def test_announced_oversize_payload_is_not_downloaded(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    (rig.repo / "payload.bin").write_bytes(rig.payload + b"\0" * 4096)
    with pytest.raises(PayloadError, match="announces a payload of"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "announces")
    assert not _installed(host).exists()


async def test_endless_payload_is_cut_off(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    chunk = b"\xa5" * 65536
    cap = 4096  # 256 MiB if the client read it all
    sent = 0

    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")],
                }
            )
            for _ in range(cap):
                if gone.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    rig.payload_override = endless
    with pytest.raises(PayloadError, match="longer than the 65536 bytes"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "longer than")
    assert not _installed(host).exists()
    assert sent < cap * len(chunk) // 4


async def test_manifest_over_its_size_limit_is_refused(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    with pytest.raises(ManifestError, match="100-byte limit"):
        await bootstrap(host, limits=BootLimits(max_manifest_bytes=100))
    _assert_failed_cleanly(host, bmc, "100-byte limit")


async def test_payload_over_the_limit_is_refused_before_download(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    with pytest.raises(ManifestError, match="exceeds the 4096-byte limit"):
        await bootstrap(host, limits=BootLimits(max_payload_bytes=4096))
    _assert_failed_cleanly(host, bmc, "4096-byte limit")


async def test_unreachable_boot_server_is_a_fetch_error(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await rig.stop()
    with pytest.raises(FetchError, match="cannot fetch the manifest"):
        await bootstrap(host, limits=BootLimits(connect_timeout=2.0))
    _assert_failed_cleanly(host, bmc, "cannot fetch the manifest")


async def test_missing_trust_bundle_is_a_trust_error(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    del bmc.trust["caBundle"]
    with pytest.raises(TrustError, match="caBundle"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "caBundle")


async def test_identity_from_another_ca_is_refused_by_the_server(
    tmp_path: Path, rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    other = BootRig(tmp_path / "other-rack")
    bmc.identity["key"] = other.unit_identity.key_pem.decode()
    bmc.identity["cert"] = other.unit_identity.cert_pem.decode()
    with pytest.raises(FetchError):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "cannot fetch")


async def test_every_failure_is_a_boot_error(rig: BootRig, host: FakeHost) -> None:
    (rig.repo / "manifest.sig").write_bytes(b"short")
    with pytest.raises(BootError, match="5 bytes, expected 64"):
        await bootstrap(host)


async def test_hung_bmc_fails_the_boot(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    bmc.hang_on.add("trust")
    with pytest.raises(TrustError, match="did not answer 'trust'"):
        await bootstrap(host, limits=BootLimits(link_timeout=0.2))
    failures = [line for line in host.lines if line.startswith("bootstrap: boot failed: ")]
    assert failures == [
        "bootstrap: boot failed: backplane link: the BMC did not answer 'trust' within 0.2 s"
    ]
    assert host.activities[-1] is Activity.HALTED


async def test_power_cut_mid_download_leaves_nothing_bootable(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    async def stalls(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(rig.payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        half = rig.payload[: len(rig.payload) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    rig.payload_override = stalls
    task = asyncio.create_task(bootstrap(host, limits=BootLimits(chunk_bytes=4096)))
    await wait_for(
        lambda: any(name.endswith(".partial") for name in _leftovers(host)), "a partial download"
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _leftovers(host) == []
    assert bmc.ops("failed") == []

"""The bootstrap client against the real boot server over mutual TLS and a fake BMC."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send

from racklet.boot import (
    BootError,
    BootLimits,
    FetchError,
    ManifestError,
    MetadataError,
    PayloadError,
    TrustError,
)
from racklet.boot.client import bootstrap
from racklet.hw import Activity
from tests.boot.fakes import BootRig, FakeBmc, FakeHost, wait_for


def _installed(host: FakeHost) -> Path:
    return host.storage / "slots" / "A" / "payload.bin"


def _leftovers(host: FakeHost) -> list[str]:
    boot_dir = host.storage / "slots" / "A"
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
    assert (booted.manifest.name, booted.manifest.version) == ("racklet-os", "0.1.0")
    assert booted.manifest.payload_sha256 == rig.release.files[0].sha256
    assert booted.manifest.payload_path == "stable/racklet-os/0.1.0/payload.bin"
    assert booted.agent.version == "0.1.0"
    assert booted.identity.cert_pem == rig.unit_identity.cert_pem.decode()
    assert booted.trust.boot_server == rig.url
    assert _installed(host).read_bytes() == rig.payload
    stored_manifest = json.loads((host.storage / "slots" / "A" / "slot.json").read_text())
    assert stored_manifest["payload"]["sha256"] == hashlib.sha256(rig.payload).hexdigest()
    cache = host.storage / "tuf" / "metadata"
    assert {"root.json", "timestamp.json", "snapshot.json", "targets.json", "stable.json"} <= {
        p.name for p in cache.iterdir()
    }
    assert _leftovers(host) == ["payload.bin", "slot.json"]
    assert (booted.slot, booted.trial) == ("A", None)  # the first install is committed at once
    committed = bmc.ab.load().committed
    assert committed is not None
    assert (committed.slot, committed.version) == ("A", "0.1.0")
    assert bmc.ab.load().rollback_version == "0.1.0"
    states = [r["state"] for r in bmc.ops("progress")]
    assert states == ["SystemHardwareInitializationComplete", "OSBootStarted"]
    assert bmc.ops("failed") == []
    assert host.activities[-1] is Activity.BOOTING
    assert any("booting racklet-os 0.1.0" in line for line in host.lines)


async def test_an_unreachable_bulk_target_server_is_given_up_for_the_boot_server(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    """On an HA rack the bulk-target server runs with one controller; while it is down a unit
    still installs its release, from the boot server's own targets path, checked the same."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    bmc.trust["targetsUrl"] = f"https://127.0.0.1:{closed}/boot/v1/targets/"
    booted = await bootstrap(host)
    assert (booted.manifest.name, booted.manifest.version) == ("racklet-os", "0.1.0")
    assert _installed(host).read_bytes() == rig.payload
    notes = [line for line in host.lines if "bulk-target server unreachable" in line]
    assert len(notes) == 1 and f"127.0.0.1:{closed}" in notes[0]


async def test_unit_key_is_never_written_to_unit_storage(rig: BootRig, host: FakeHost) -> None:
    await bootstrap(host)
    key = rig.unit_identity.key_pem
    for path in host.storage.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path


async def test_tampered_payload_is_rejected(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    tampered = bytearray(rig.payload)
    tampered[len(tampered) // 2] ^= 0x01
    rig.payload_file.write_bytes(bytes(tampered))
    with pytest.raises(PayloadError, match="hash mismatch"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "hash mismatch")
    assert not _installed(host).exists()
    assert host.activities[-1] is Activity.HALTED


async def test_committed_slot_boots_without_refetching_its_payload(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host)
    tampered = bytearray(rig.payload)
    tampered[-1000] ^= 0xFF
    rig.payload_file.write_bytes(bytes(tampered))  # the server's copy, never fetched again
    booted = await bootstrap(host)
    assert (booted.manifest.version, booted.slot) == ("0.1.0", "A")
    digest = hashlib.sha256(_installed(host).read_bytes()).hexdigest()
    assert digest == rig.release.files[0].sha256


async def test_corrupt_committed_slot_is_reinstalled_through_a_trial(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host)
    corrupt = bytearray(_installed(host).read_bytes())
    corrupt[5000] ^= 0x01
    _installed(host).write_bytes(bytes(corrupt))
    booted = await bootstrap(host)
    assert (booted.manifest.version, booted.slot) == ("0.1.0", "B")
    assert booted.trial is not None
    assert "bootstrap: slot A is corrupt" in host.console_text
    digest = hashlib.sha256((host.storage / "slots" / "B" / "payload.bin").read_bytes())
    assert digest.hexdigest() == rig.release.files[0].sha256


async def test_tampered_metadata_is_rejected(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    timestamp = rig.repo / "metadata" / "timestamp.json"
    document = json.loads(timestamp.read_bytes())
    document["signed"]["expires"] = "2099-01-01T00:00:00Z"
    timestamp.write_text(json.dumps(document))
    with pytest.raises(BootError, match="untrusted signature"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "timestamp was signed by 0/1 keys")
    assert not _installed(host).exists()


async def test_oversize_payload_on_the_server_is_rejected(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    rig.payload_file.write_bytes(rig.payload + b"\0" * 4096)
    with pytest.raises(MetadataError, match="exceeding the maximum allowed length of 65536"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "endless data")
    assert not _installed(host).exists()


async def test_endless_payload_is_cut_off(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    chunk = b"\xa5" * 65536
    cap = 4096  # 256 MiB if the client read it all

    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
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
                await asyncio.sleep(0)  # let the disconnect watcher run
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    rig.overrides[rig.payload_path] = endless
    with pytest.raises(MetadataError, match="endless data"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "exceeding the maximum allowed length of 65536")
    assert not _installed(host).exists()
    received = re.search(r"Downloaded (\d+) bytes", bmc.ops("failed")[0]["reason"])
    assert received is not None and int(received.group(1)) < 1 << 20  # not 256 MiB


async def test_metadata_over_its_size_limit_is_refused(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    with pytest.raises(MetadataError, match="maximum allowed length of 100"):
        await bootstrap(host, limits=BootLimits(max_timestamp_bytes=100))
    _assert_failed_cleanly(host, bmc, "maximum allowed length of 100")


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
    with pytest.raises(FetchError, match="cannot fetch from the boot server"):
        await bootstrap(host, limits=BootLimits(connect_timeout=2.0))
    _assert_failed_cleanly(host, bmc, "Connection refused")


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
    (rig.repo / "metadata" / "timestamp.json").write_bytes(b"{truncated")
    with pytest.raises(BootError, match="TUF metadata rejected"):
        await bootstrap(host)


async def test_unusable_tuf_root_from_the_bmc_is_a_trust_error(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    bmc.trust["tufRoot"] = "{not a root"
    with pytest.raises(BootError, match="TUF"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "TUF")
    bmc.requests.clear()
    host.lines.clear()
    del bmc.trust["tufRoot"]
    with pytest.raises(TrustError, match="no TUF root"):
        await bootstrap(host)
    _assert_failed_cleanly(host, bmc, "no TUF root")


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
    half_sent = asyncio.Event()

    async def stalls(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(rig.payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        half = rig.payload[: len(rig.payload) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        half_sent.set()
        while (await receive())["type"] != "http.disconnect":
            pass

    rig.overrides[rig.payload_path] = stalls
    # a short read timeout only so the worker thread, stuck on the stalled socket, ends soon
    task = asyncio.create_task(bootstrap(host, limits=BootLimits(read_timeout=1.0)))
    await wait_for(lambda: half_sent.is_set(), "half the payload on the wire")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [n for n in _leftovers(host) if n != "tuf"] == []
    assert not _installed(host).exists()
    assert bmc.ops("failed") == []


async def test_no_carrier_means_no_network(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    host.carrier = False  # the switch port is down: a partitioned unit
    with pytest.raises(FetchError, match="no Ethernet link"):
        await bootstrap(host)
    assert "bootstrap: waiting for Ethernet link" in host.lines
    assert [r["reason"] for r in bmc.ops("failed")] != []
    assert not _installed(host).exists(), "nothing was installed without a network"


async def test_without_carrier_the_committed_slot_still_boots(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host)  # installs and commits slot A
    host.carrier = False
    booted = await bootstrap(host)
    assert (booted.slot, booted.manifest.version) == ("A", "0.1.0")
    assert any("booting the committed slot" in line for line in host.lines)

"""The attacks TUF defends against, each mounted on the real boot server over mutual TLS.

Every one must end the same way: a one-line reason on the unit's console, the same reason sent
to the BMC as ``failed``, and nothing unverified booted (no payload installed, or the previously
verified one left untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from starlette.types import Receive, Scope, Send
from tuf.api.metadata import Metadata

from racklet.boot import (
    BootError,
    BootLimits,
    FetchError,
    MetadataError,
    PayloadError,
    SignatureError,
    build_default_payload,
)
from racklet.boot._tuf_api import CryptoSigner
from racklet.boot._tuf_keys import load_key
from racklet.boot.client import bootstrap
from racklet.hw import Activity
from tests.boot.fakes import ASGIApp, BootRig, FakeBmc, FakeHost


def _installed(host: FakeHost, slot: str = "A") -> Path:
    return host.storage / "slots" / slot / "payload.bin"


def _serve(body: bytes) -> ASGIApp:
    """A mirror that answers with fixed bytes (replayed, forged or foreign metadata)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _resign(rig: BootRig, name: str, signer: CryptoSigner, **changes: object) -> bytes:
    md = Metadata.from_bytes((rig.repo / "metadata" / name).read_bytes())
    for field, value in changes.items():
        setattr(md.signed, field, value)
    md.sign(signer)
    return md.to_bytes()


async def _rejected(
    host: FakeHost, bmc: FakeBmc, error: type[BootError], fragment: str, **limits: float
) -> str:
    booted_before = host.activities.count(Activity.BOOTING)
    with pytest.raises(error, match=fragment):
        await bootstrap(host, limits=BootLimits(**limits))  # type: ignore[arg-type]
    line = host.lines[-1]
    assert line.startswith("bootstrap: boot failed: ") and fragment in line
    assert fragment in bmc.ops("failed")[-1]["reason"]
    assert host.activities.count(Activity.BOOTING) == booted_before  # nothing booted
    assert host.activities[-1] is Activity.HALTED
    return line


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_rollback_to_older_metadata(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    old_timestamp = (rig.repo / "metadata" / "timestamp.json").read_bytes()
    newer = rig.tuf.publish("stable", "racklet-os", "0.2.0", {"payload.bin": b"new" * 9000})
    del newer  # the unit boots 0.2.0's metadata once and remembers its versions
    rig.tuf.publish(
        "stable", "racklet-os", "0.2.1", {"payload.bin": build_default_payload(65536, "0.2.1")}
    )
    booted = await bootstrap(host)
    assert booted.manifest.version == "0.2.1"
    installed = _digest(_installed(host))
    rig.overrides["/boot/v1/metadata/timestamp.json"] = _serve(old_timestamp)
    await _rejected(host, bmc, MetadataError, "rollback")
    assert _digest(_installed(host)) == installed


async def test_freeze_with_an_expired_timestamp(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    stale = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    key = load_key(rig.tuf.online_keys_dir, "timestamp")
    frozen = _resign(rig, "timestamp.json", key, expires=stale)
    rig.overrides["/boot/v1/metadata/timestamp.json"] = _serve(frozen)
    await _rejected(host, bmc, MetadataError, "expired")
    assert not _installed(host).exists()


async def test_arbitrary_software_in_place_of_the_target(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    evil = build_default_payload(len(rig.payload), "6.6.6")  # a valid-looking OS, same size
    rig.overrides[rig.payload_path] = _serve(evil)
    await _rejected(host, bmc, PayloadError, "hash mismatch")
    assert not _installed(host).exists()


async def test_mix_and_match_of_metadata_versions(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    rig.tuf.publish("stable", "racklet-os", "0.2.0", {"payload.bin": b"new" * 9000})
    # the snapshot names 3.stable.json; the mirror mixes in the older, validly signed 2
    older = (rig.repo / "metadata" / "2.stable.json").read_bytes()
    rig.overrides["/boot/v1/metadata/3.stable.json"] = _serve(older)
    await _rejected(host, bmc, MetadataError, "Expected stable v3, got v2")
    assert not _installed(host).exists()


async def test_endless_metadata(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4096):  # 64 MiB if the unit read it all; it stops after 16 KiB
            await send({"type": "http.response.body", "body": b" " * 16384, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})

    rig.overrides["/boot/v1/metadata/timestamp.json"] = endless
    await _rejected(host, bmc, MetadataError, "endless data")
    assert not _installed(host).exists()


async def test_metadata_signed_by_an_untrusted_key(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    intruder = CryptoSigner.generate_ed25519()
    forged = _resign(rig, "timestamp.json", intruder, version=99)
    rig.overrides["/boot/v1/metadata/timestamp.json"] = _serve(forged)
    await _rejected(host, bmc, SignatureError, "untrusted signature")
    assert not _installed(host).exists()


async def test_fast_forward_is_recovered_by_rotating_the_key(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    # an attacker holding the timestamp key fast-forwards the unit to version 1000 ...
    key = load_key(rig.tuf.online_keys_dir, "timestamp")
    rig.overrides["/boot/v1/metadata/timestamp.json"] = _serve(
        _resign(rig, "timestamp.json", key, version=1000)
    )
    await bootstrap(host)
    del rig.overrides["/boot/v1/metadata/timestamp.json"]
    # ... so the genuine timestamp now looks like a rollback and the unit refuses it
    new = build_default_payload(65536, "0.2.0")
    rig.tuf.publish("stable", "racklet-os", "0.2.0", {"payload.bin": new})
    await _rejected(host, bmc, MetadataError, "rollback")
    # the operator rotates the timestamp key: a new root (from the root keys) trusts only the
    # new key, the unit follows the root chain from its BMC's anchor and forgets version 1000
    rig.tuf.rotate_key("timestamp")
    booted = await bootstrap(host)
    assert (booted.manifest.version, booted.slot) == ("0.2.0", "B")  # an update: a trial
    assert _installed(host, "B").read_bytes() == new


async def test_slow_retrieval(rig: BootRig, host: FakeHost, bmc: FakeBmc) -> None:
    async def drip(scope: Scope, receive: Receive, send: Send) -> None:
        body = (rig.repo / "metadata" / "timestamp.json").read_bytes()
        headers = [(b"content-length", str(len(body)).encode())]
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for index in range(len(body)):  # a byte at a time, each gap under the read timeout
                if gone.is_set():
                    return
                part = body[index : index + 1]
                await send({"type": "http.response.body", "body": part, "more_body": True})
                await asyncio.sleep(0.2)  # the attacker's pace, not a wait on the test's part
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    rig.overrides["/boot/v1/metadata/timestamp.json"] = drip
    await _rejected(host, bmc, FetchError, "slow retrieval", read_timeout=1.0, total_timeout=1.0)
    assert not _installed(host).exists()

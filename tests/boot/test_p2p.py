"""Peer-to-peer payload distribution inside the rack (issue 16, item 3).

Real parts throughout: the boot server app with its peers route, the bulk-target server
(whose access log counts the bytes it served), units booted by the real bootstrap over mutual
TLS, and each peer's real agent route (``racklet.node._p2p``) serving the slot it booted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.responses import JSONResponse

from racklet.boot import (
    P2P_PREFIX,
    BootedPayload,
    BulkTargetServer,
    Peer,
    UnitIdentity,
    build_default_payload,
    slot_payload,
)
from racklet.boot._p2p import PieceTable, compute_piece_table, parse_plan
from racklet.boot.client import bootstrap
from racklet.net import client_context
from racklet.node._p2p import PeerServer
from racklet.pki import CRL_NAME, RackCA, server_context_with_crl, write_crl
from tests.boot.fakes import BootRig, FakeHost

PAYLOAD_BYTES = 1 << 20  # 16 pieces of 64 KiB
_SERVED = re.compile(r"serving \S+\.payload\.bin \[(\d+), (\d+)\)")


class BulkBytes(logging.Handler):
    """The bulk-target server's access log, summed: the payload bytes it sent (the signed
    ``current.json`` pointers, 124 bytes a boot, are left out). The peers run the same
    server code in this process; their lines name ``<sha256>``, not ``….payload.bin``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.total = 0

    def emit(self, record: logging.LogRecord) -> None:
        match = _SERVED.search(record.getMessage())
        if match is not None:
            self.total += int(match.group(2)) - int(match.group(1))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[BootRig]:
    rig = BootRig(tmp_path / "rack", payload_size=PAYLOAD_BYTES)
    await rig.start()
    pki = rig.root / "pki"
    write_crl(rig.ca, pki)
    key, cert = rig.ca.issue("racklet-controller", role="controller").write(rig.root, "bulk")
    context = server_context_with_crl(cert, key, ca=rig.ca_path, crl=pki / CRL_NAME)
    bulk = BulkTargetServer(rig.repo / "targets", context)
    await bulk.start()
    rig.targets_url = bulk.url
    try:
        yield rig
    finally:
        await bulk.stop()
        await rig.stop()


@pytest.fixture
def bulk_bytes() -> Iterator[BulkBytes]:
    handler = BulkBytes()
    logger = logging.getLogger("racklet.boot-bulk")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def _boot(rig: BootRig, root: Path, unit: str) -> tuple[FakeHost, BootedPayload]:
    host = FakeHost(root / unit, rig.bmc(f"bmc-{unit}", unit))
    try:
        return host, await bootstrap(host)
    finally:
        await host.fake_link.close()


@contextlib.asynccontextmanager
async def _serving(host: FakeHost, booted: BootedPayload) -> AsyncIterator[Peer]:
    """The unit's peer server (what its OS runs), for the payload it booted."""
    server = PeerServer(host.storage, booted, crl=None)
    url = await server.start()
    try:
        yield Peer(booted.unit, url)
    finally:
        await server.stop()


def _table_of(path: Path) -> PieceTable:
    with open(path, "rb") as handle:
        return compute_piece_table(handle.fileno())


def _corrupt(host: FakeHost, booted: BootedPayload, offset: int) -> None:
    path = slot_payload(host.storage, booted.slot)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_peer_serving_bad_pieces_is_dropped_and_the_unit_boots_the_right_bytes(
    rig: BootRig, tmp_path: Path, bulk_bytes: BulkBytes
) -> None:
    good_host, good = await _boot(rig, tmp_path, "unit-2")
    bad_host, bad = await _boot(rig, tmp_path, "unit-3")
    for piece in range(PAYLOAD_BYTES // 65536):  # its storage rotted after it booted
        _corrupt(bad_host, bad, piece * 65536 + 17)
    async with _serving(good_host, good) as good_peer, _serving(bad_host, bad) as bad_peer:
        # The bad peer alone: dropped at its first piece; the bulk server serves the rest.
        rig.peers = [bad_peer]
        bulk_bytes.total = 0
        host, booted = await _boot(rig, tmp_path, "unit-1")
        assert slot_payload(host.storage, booted.slot).read_bytes() == rig.payload
        assert rig.peer_questions[-1] == ("unit-1", rig.release.files[0].sha256)
        assert re.search(
            r"bootstrap: peer unit-3 served bad bytes \(piece \d+, bytes \d+-\d+\); "
            r"dropped for this download",
            host.console_text,
        )
        assert bulk_bytes.total == PAYLOAD_BYTES
        # The OS reports it in its first heartbeat, for the controller's event.
        ((unit, why),) = booted.dropped_peers
        assert unit == "unit-3" and why.startswith("served bad bytes (piece ")

        # Beside a good peer: whatever the bad one sent was refused, the good one carried
        # every piece, and the bulk server none.
        rig.peers = [bad_peer, good_peer]
        bulk_bytes.total = 0
        host, booted = await _boot(rig, tmp_path, "unit-4")
        assert slot_payload(host.storage, booted.slot).read_bytes() == rig.payload
        summary = re.search(r"peer-to-peer download of \S+: (.*)", host.console_text)
        assert summary is not None
        assert summary.group(1) == f"unit-2 {PAYLOAD_BYTES} B"
        assert bulk_bytes.total == 0


async def test_a_peer_outside_the_rack_is_refused_both_ways(
    rig: BootRig, tmp_path: Path, bulk_bytes: BulkBytes
) -> None:
    host2, unit2 = await _boot(rig, tmp_path, "unit-2")
    other_ca = RackCA.create(tmp_path / "rack-2-pki", rack="rack-2")
    stranger = other_ca.issue("unit-9", role="unit/unit-9", server=True, client=True)
    key, cert = stranger.write(tmp_path, "stranger")
    async with _serving(host2, unit2) as peer:
        url = f"{peer.url}{P2P_PREFIX}{unit2.manifest.payload_sha256}"
        # A unit of another rack (its own CA) cannot even finish the handshake.
        stranger_ssl = client_context(tmp_path / "rack-2-pki" / "ca.crt", cert, key)
        async with httpx.AsyncClient(verify=stranger_ssl) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)
        # This rack's BMC, or no certificate at all: refused at the handshake too.
        bmc_key, bmc_cert = rig.ca.issue("bmc", role="bmc/unit-1", client=True).write(
            tmp_path, "bmc"
        )
        for verify in (
            client_context(rig.ca_path, bmc_cert, bmc_key),
            client_context(rig.ca_path),
        ):
            async with httpx.AsyncClient(verify=verify) as client:
                # TLS 1.3: the server's alert may reach the client after its side of the
                # handshake, as a read error httpx does not always wrap
                with pytest.raises((httpx.TransportError, ssl.SSLError)):
                    await client.get(url)
        # A unit of this rack gets the range it asked for.
        unit_key, unit_cert = rig.ca.issue("u", role="unit/unit-5", client=True).write(
            tmp_path, "unit-5"
        )
        async with httpx.AsyncClient(verify=client_context(rig.ca_path, unit_cert, unit_key)) as c:
            answer = await c.get(url, headers={"Range": "bytes=10-19"})
            assert (answer.status_code, answer.content) == (206, rig.payload[10:20])
        # A peer that is not the unit the controller named (unit-2 answering for unit-4)
        # fails the booting unit's pinned handshake.
        rig.peers = [Peer("unit-4", peer.url)]
        host, booted = await _boot(rig, tmp_path, "unit-1")
        assert slot_payload(host.storage, booted.slot).read_bytes() == rig.payload
        assert "peer unit-4 failed" in host.console_text

    # The other way: a "peer" that proves another rack's unit identity is refused by the
    # booting unit, which boots from the bulk server instead.
    foreign = UnitIdentity("unit-9", stranger.key_pem.decode(), stranger.cert_pem.decode())
    host9 = FakeHost(tmp_path / "unit-9", rig.bmc("bmc-9", "unit-9"))
    foreign_booted = dataclasses.replace(unit2, unit="unit-9", identity=foreign)
    (host9.storage / "slots").mkdir(parents=True)
    slot_payload(host9.storage, unit2.slot).parent.mkdir()
    slot_payload(host9.storage, unit2.slot).write_bytes(rig.payload)
    async with _serving(host9, foreign_booted) as foreign_peer:
        rig.peers = [foreign_peer]
        bulk_bytes.total = 0
        host, booted = await _boot(rig, tmp_path, "unit-3")
    await host9.fake_link.close()
    assert slot_payload(host.storage, booted.slot).read_bytes() == rig.payload
    assert "peer unit-9 failed" in host.console_text
    assert bulk_bytes.total == PAYLOAD_BYTES


async def test_a_sixteen_unit_update_takes_about_one_payload_from_the_bulk_server(
    rig: BootRig, tmp_path: Path, bulk_bytes: BulkBytes
) -> None:
    """16 units on 0.1.0 update to 0.2.0 in waves (1, 3, 12, as a rollout's canary and
    batches): the bulk server's access log shows at most 2 payloads for the whole rack."""
    names = [f"unit-{n}" for n in range(1, 17)]
    booted_at: dict[str, tuple[FakeHost, BootedPayload]] = {}
    for wave in (names[:8], names[8:]):
        results = await asyncio.gather(*(_boot(rig, tmp_path, name) for name in wave))
        booted_at.update(zip(wave, results, strict=True))
    new = build_default_payload(PAYLOAD_BYTES, version="0.2.0")
    release = await asyncio.to_thread(
        rig.tuf.publish, "stable", "racklet-os", "0.2.0", {"payload.bin": new}
    )
    bulk_bytes.total = 0
    async with contextlib.AsyncExitStack() as stack:
        for wave in (names[:1], names[1:4], names[4:]):
            results = await asyncio.gather(*(_boot(rig, tmp_path, name) for name in wave))
            for host, booted in results:
                assert booted.manifest.version == "0.2.0"
                assert booted.manifest.payload_sha256 == release.files[0].sha256
                assert slot_payload(host.storage, booted.slot).read_bytes() == new
                rig.peers.append(await stack.enter_async_context(_serving(host, booted)))
    assert len(rig.peers) == 16
    assert bulk_bytes.total <= 2 * len(new), f"bulk server sent {bulk_bytes.total} bytes"
    # Without peer-to-peer the same update costs one payload per unit.
    assert bulk_bytes.total < 16 * len(new) / 4


def test_the_piece_table_is_the_files_hashes(tmp_path: Path) -> None:
    data = build_default_payload(PAYLOAD_BYTES + 1000)
    path = tmp_path / "target"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        table = compute_piece_table(handle.fileno())
    size = table.piece_bytes
    assert table.sha256 == hashlib.sha256(data).hexdigest()
    assert table.pieces == tuple(
        hashlib.sha256(data[i : i + size]).hexdigest() for i in range(0, len(data), size)
    )


def test_a_peers_answer_that_does_not_describe_the_signed_target_is_ignored(
    tmp_path: Path,
) -> None:
    """The piece table is not signed: an answer for another length or hash, with a piece list
    that does not cover the target, or with a peer that is not HTTPS, is not used (the unit
    downloads from the bulk server alone)."""
    data = build_default_payload(PAYLOAD_BYTES)
    path = tmp_path / "target"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        table = compute_piece_table(handle.fileno())
    good = table.to_json() | {"peers": [{"unit": "unit-2", "url": "https://127.0.0.1:1"}]}
    sha, length = table.sha256, table.length
    assert parse_plan(json.dumps(good).encode(), length, sha) is not None
    for bad in (
        good | {"sha256": "0" * 64},
        good | {"length": length + 1},
        good | {"pieces": table.to_json()["pieces"][:-1]},
        good | {"pieceBytes": 1},
        good | {"peers": [{"unit": "unit-2", "url": "http://127.0.0.1:1"}]},
        good | {"peers": []},
    ):
        assert parse_plan(json.dumps(bad).encode(), length, sha) is None
    assert parse_plan(b"not json", length, sha) is None


async def test_a_lying_piece_table_cannot_get_bytes_named_tuf_decides(
    rig: BootRig, tmp_path: Path, bulk_bytes: BulkBytes
) -> None:
    """A compromised controller's piece table matching a compromised peer's bad bytes: every
    piece passes, the whole file fails the TUF-signed hash, and the unit downloads from the
    bulk server alone; the bad bytes never get a name."""
    host2, unit2 = await _boot(rig, tmp_path, "unit-2")
    _corrupt(host2, unit2, 3 * 65536 + 5)
    lie = await asyncio.to_thread(_table_of, slot_payload(host2.storage, unit2.slot))
    async with _serving(host2, unit2) as peer:
        answer = lie.to_json() | {
            "sha256": rig.release.files[0].sha256,  # claims the signed target
            "peers": [{"unit": peer.unit, "url": peer.url}],
        }
        rig.overrides[rig.payload_path.replace("/targets/", "/peers/", 1)] = JSONResponse(answer)
        bulk_bytes.total = 0
        host, booted = await _boot(rig, tmp_path, "unit-1")
    assert slot_payload(host.storage, booted.slot).read_bytes() == rig.payload
    assert "peer-to-peer download rejected by TUF" in host.console_text
    assert bulk_bytes.total == PAYLOAD_BYTES
    leftovers = {p.name for p in (host.storage / "slots" / booted.slot).iterdir()}
    assert leftovers == {"payload.bin", "slot.json"}

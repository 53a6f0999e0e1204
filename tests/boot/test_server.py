"""The boot server: TUF metadata and targets to verified clients only, streamed whole."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from racklet.boot import Peer
from racklet.boot.server import create_boot_app
from racklet.net import client_context
from tests.boot.fakes import BootRig


async def test_serves_the_repository_to_a_verified_client(rig: BootRig) -> None:
    async with rig.client("unit-1") as client:
        timestamp = await client.get(f"{rig.url}/boot/v1/metadata/timestamp.json")
        root = await client.get(f"{rig.url}/boot/v1/metadata/1.root.json")
        payload = await client.get(f"{rig.url}{rig.payload_path}")
    assert timestamp.status_code == 200
    assert timestamp.headers["content-type"].startswith("application/json")
    assert timestamp.content == (rig.repo / "metadata" / "timestamp.json").read_bytes()
    assert root.content == rig.tuf.root_bytes()
    assert payload.status_code == 200
    assert payload.headers["content-length"] == str(len(rig.payload))
    assert "etag" in payload.headers and "last-modified" in payload.headers
    assert hashlib.sha256(payload.content).hexdigest() == rig.release.files[0].sha256


async def test_large_payload_streams_whole(rig: BootRig) -> None:
    big = bytes(range(256)) * (5 * 4096 + 7)  # > 5 MiB: several server chunks
    rig.payload_file.write_bytes(big)
    digest = hashlib.sha256()
    async with (
        rig.client("unit-1") as client,
        client.stream("GET", f"{rig.url}{rig.payload_path}") as response,
    ):
        assert response.headers["content-length"] == str(len(big))
        async for chunk in response.aiter_raw():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(big).hexdigest()


async def test_head_gives_the_length_without_a_body(rig: BootRig) -> None:
    async with rig.client("unit-1") as client:
        response = await client.head(f"{rig.url}{rig.payload_path}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(rig.payload))
    assert response.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "keys/timestamp.pem",
        "metadata/..%2F..%2Fkeys%2Ftimestamp.pem",
        "targets/../../keys/timestamp.pem",
        "targets/stable/.hidden.partial",
        "metadata/timestamp.pem",
        "metadata/",
        "targets/stable",
        "repository.json",
    ],
)
async def test_anything_else_is_not_found(rig: BootRig, path: str) -> None:
    async with rig.client("unit-1") as client:
        response = await client.get(f"{rig.url}/boot/v1/{path}")
    assert response.status_code == 404


async def test_unpublished_file_is_not_found(rig: BootRig) -> None:
    rig.payload_file.unlink()
    async with rig.client("unit-1") as client:
        response = await client.get(f"{rig.url}{rig.payload_path}")
    assert response.status_code == 404


async def test_client_without_certificate_is_refused_at_the_handshake(rig: BootRig) -> None:
    async with rig.client(None) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{rig.url}/boot/v1/metadata/timestamp.json")


async def test_request_without_verified_certificate_is_forbidden(rig: BootRig) -> None:
    """Defence in depth: even on a listener that does not demand certificates."""
    transport = httpx.ASGITransport(app=create_boot_app(rig.repo))
    async with httpx.AsyncClient(transport=transport, base_url="http://boot") as client:
        response = await client.get("/metadata/timestamp.json")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("role", "metadata", "firmware", "payload"),
    [("rmc", 200, 404, 403), ("bmc/unit-1", 403, 403, 403), ("controller", 403, 403, 403)],
)
async def test_the_rmc_reads_metadata_and_bmc_firmware_only(
    rig: BootRig, role: str, metadata: int, firmware: int, payload: int
) -> None:
    """The RMC's SimpleUpdate fetches BMC firmware and its TUF metadata (a name under
    ``bmc-firmware/`` that is not published is a 404); a unit's OS payload, and anything to
    any other role that is not a unit, is refused."""
    key, cert = rig.ca.issue("other", role=role, server=False, client=True).write(rig.root, "x")
    async with httpx.AsyncClient(verify=client_context(rig.ca_path, cert, key)) as client:
        found = await client.get(f"{rig.url}/boot/v1/metadata/timestamp.json")
        absent = await client.get(f"{rig.url}/boot/v1/targets/bmc-firmware/racklet-bmc/1/x.img")
        os_payload = await client.get(f"{rig.url}{rig.payload_path}")
    assert (found.status_code, absent.status_code, os_payload.status_code) == (
        metadata,
        firmware,
        payload,
    )


async def test_no_piece_table_is_computed_when_no_unit_runs_the_expected_target(
    rig: BootRig,
) -> None:
    """Every unit of a rack update asks for the new payload's peers at once, before any unit
    runs it: the answer is "no peers" without the piece table (a hash of the whole payload,
    which every unit would wait for). Once a unit runs it, the table comes with the peers."""
    sha256 = rig.release.files[0].sha256
    url = f"{rig.url}{rig.payload_path.replace('/targets/', '/peers/', 1)}"
    async with rig.client("unit-1") as client:
        nobody = await client.get(url, params={"sha256": sha256})
        rig.peers = [Peer("unit-2", "https://127.0.0.1:1/")]
        somebody = await client.get(url, params={"sha256": sha256})
        malformed = await client.get(url, params={"sha256": "not-a-digest"})
    assert (nobody.status_code, nobody.json()) == (200, {"peers": []})
    assert somebody.status_code == 200
    answer = somebody.json()
    assert answer["sha256"] == sha256 and answer["length"] == len(rig.payload)
    assert answer["pieces"] and answer["peers"] == [
        {"unit": "unit-2", "url": "https://127.0.0.1:1/"}
    ]
    assert malformed.status_code == 400 and "sha256" in malformed.json()["message"]
    assert rig.peer_questions[0] == ("unit-1", sha256)

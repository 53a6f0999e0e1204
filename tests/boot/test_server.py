"""The boot server: the three files to verified clients only, streamed with their length."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from racklet.boot.server import create_boot_app
from tests.boot.fakes import BootRig


async def test_serves_the_repository_to_a_verified_client(rig: BootRig) -> None:
    async with rig.client("unit-1") as client:
        manifest = await client.get(f"{rig.url}/boot/v1/manifest.json")
        signature = await client.get(f"{rig.url}/boot/v1/manifest.sig")
        payload = await client.get(f"{rig.url}/boot/v1/payload.bin")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/json")
    assert manifest.content == (rig.repo / "manifest.json").read_bytes()
    assert signature.content == (rig.repo / "manifest.sig").read_bytes()
    assert payload.status_code == 200
    assert payload.headers["content-length"] == str(len(rig.payload))
    assert "etag" in payload.headers and "last-modified" in payload.headers
    assert hashlib.sha256(payload.content).hexdigest() == rig.manifest.payload_sha256


async def test_large_payload_streams_whole(rig: BootRig) -> None:
    big = bytes(range(256)) * (5 * 4096 + 7)  # > 5 MiB: several server chunks
    (rig.repo / "payload.bin").write_bytes(big)
    digest = hashlib.sha256()
    async with (
        rig.client("unit-1") as client,
        client.stream("GET", f"{rig.url}/boot/v1/payload.bin") as response,
    ):
        assert response.headers["content-length"] == str(len(big))
        async for chunk in response.aiter_raw():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(big).hexdigest()


async def test_head_gives_the_length_without_a_body(rig: BootRig) -> None:
    async with rig.client("unit-1") as client:
        response = await client.head(f"{rig.url}/boot/v1/payload.bin")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(rig.payload))
    assert response.content == b""


@pytest.mark.parametrize("path", ["signing.key", "..%2Fsigning.key", "other.bin", "repo"])
async def test_anything_else_is_not_found(rig: BootRig, path: str) -> None:
    async with rig.client("unit-1") as client:
        response = await client.get(f"{rig.url}/boot/v1/{path}")
    assert response.status_code == 404


async def test_unpublished_file_is_not_found(rig: BootRig) -> None:
    (rig.repo / "payload.bin").unlink()
    async with rig.client("unit-1") as client:
        response = await client.get(f"{rig.url}/boot/v1/payload.bin")
    assert response.status_code == 404


async def test_client_without_certificate_is_refused_at_the_handshake(rig: BootRig) -> None:
    async with rig.client(None) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{rig.url}/boot/v1/manifest.json")


async def test_request_without_verified_certificate_is_forbidden(rig: BootRig) -> None:
    """Defence in depth: even on a listener that does not demand certificates."""
    transport = httpx.ASGITransport(app=create_boot_app(rig.repo))
    async with httpx.AsyncClient(transport=transport, base_url="http://boot") as client:
        response = await client.get("/manifest.json")
    assert response.status_code == 403

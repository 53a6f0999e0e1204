"""The Redfish client logs in, re-logs in once, reads typed views and translates errors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from racklet.net import AppServer, server_context
from racklet.pki import RackCA
from racklet.redfish import (
    MAX_EVENT_BYTES,
    RedfishClient,
    RedfishError,
    RedfishUnreachable,
    bounded_lines,
    sse_frames,
)
from tests.redfish.fake_bmc import PASSWORD, USER, FakeBmc

CA = Path("/nonexistent-ca.crt")  # unused with an in-process transport


def client_for(bmc: FakeBmc, password: str = PASSWORD) -> RedfishClient:
    return RedfishClient(
        "https://bmc.test",
        USER,
        password,
        ca_bundle=CA,
        transport=httpx.ASGITransport(app=bmc.app),
    )


async def test_reads_system_chassis_and_environment() -> None:
    bmc = FakeBmc("unit-1")
    unit = bmc.units["unit-1"]
    unit.power_state, unit.last_state, unit.oem_last_state = "On", "OEM", "BootFailed"
    unit.failure = "payload sha-256 mismatch"
    unit.power_watts, unit.energy_joules, unit.temperature_celsius = 3.25, 120.0, 41.5
    unit.absent = True
    async with client_for(bmc) as client:
        system = await client.system("unit-1")
        assert system.power_state == "On" and system.boot_failed
        assert system.messages == ("payload sha-256 mismatch",)
        chassis = await client.chassis("unit-1")
        assert chassis.absent and chassis.max_power_watts == 6.0
        env = await client.environment_metrics("unit-1")
        assert (env.power_watts, env.energy_joules, env.temperature_celsius) == (3.25, 120.0, 41.5)
    assert bmc.logins == 1


async def test_logs_in_again_once_when_the_session_expires() -> None:
    bmc = FakeBmc("unit-1")
    async with client_for(bmc) as client:
        await client.system("unit-1")
        bmc.expire_sessions()
        await client.reset("unit-1", "On")
        assert bmc.logins == 2
        assert bmc.resets == [("unit-1", "On")]


async def test_bad_credentials_and_missing_resources_carry_the_message() -> None:
    bmc = FakeBmc("unit-1")
    async with client_for(bmc, password="wrong") as client:
        with pytest.raises(RedfishError) as caught:
            await client.system("unit-1")
        assert caught.value.status == 401 and caught.value.message == "Invalid credentials."
    async with client_for(bmc) as client:
        with pytest.raises(RedfishError, match="was not found") as missing:
            await client.chassis("unit-9")
        assert missing.value.status == 404
        with pytest.raises(ValueError, match="ResetType"):
            await client.reset("unit-1", "Explode")


async def test_console_follows_next_links_from_skip() -> None:
    bmc = FakeBmc("unit-1", page_size=2)
    bmc.units["unit-1"].console = [f"line {i}" for i in range(7)]
    async with client_for(bmc) as client:
        assert await client.console_entries("unit-1") == [f"line {i}" for i in range(7)]
        assert await client.console_entries("unit-1", skip=5) == ["line 5", "line 6"]
        assert await client.console_entries("unit-1", skip=7) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_over_tls_trusting_only_the_rack_ca(tmp_path: Path) -> None:
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("unit-1-bmc", role="bmc/unit-1").write(tmp_path, "server")
    bmc = FakeBmc("unit-1")
    port = _free_port()
    server = AppServer(bmc.app, port=port, ssl_context=server_context(crt, key), name="bmc")
    await server.start()
    try:
        url = f"https://127.0.0.1:{port}"
        async with RedfishClient(url, USER, PASSWORD, ca_bundle=tmp_path / "pki/ca.crt") as ok:
            assert (await ok.system("unit-1")).power_state == "Off"
        other = RackCA.create(tmp_path / "other")
        async with RedfishClient(url, USER, PASSWORD, ca_bundle=tmp_path / "other/ca.crt") as bad:
            with pytest.raises(RedfishUnreachable):
                await bad.system("unit-1")
        assert other.cert != ca.cert
    finally:
        await server.stop()
    async with RedfishClient(url, USER, PASSWORD, ca_bundle=tmp_path / "pki/ca.crt") as gone:
        with pytest.raises(RedfishUnreachable, match=r"127\.0\.0\.1"):
            await gone.system("unit-1")


async def test_the_event_stream_yields_each_event_and_drops_what_is_not_one() -> None:
    """SSE as a BMC sends it: a comment first, ``id:`` lines, one JSON ``Event`` per frame;
    a frame that is not a JSON object, or longer than a BMC's event can be, is dropped and
    the stream goes on."""
    lines = [
        ": racklet bmc event stream",
        "",
        "id: 1",
        'data: {"Id": "1", "Events": [{"MessageId": "ResourceEvent.1.4.ResourcePoweredOff"}]}',
        "",
        "data: not json",
        "",
        "data: " + '"' + "x" * MAX_EVENT_BYTES + '"',
        "",
        "id: 2",
        'data: {"Id": "2",',
        'data:  "Events": []}',
        "",
    ]

    async def feed() -> AsyncIterator[str]:
        for line in lines:
            yield line

    got = [payload async for _, payload in sse_frames(feed())]
    assert [p["Id"] for p in got] == ["1", "2"]


async def test_a_line_longer_than_any_event_drops_the_stream() -> None:
    """A BMC that streams bytes without a line break is cut off at the event size limit (a
    compromised BMC must not make the controller buffer without bound); lines split across
    chunks and ``\r\n`` endings are read whole."""

    async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    lines = [line async for line in bounded_lines(chunks(b"id: 1\r\nda", b"ta: {}\n\n"), "/sse")]
    assert lines == ["id: 1", "data: {}", ""]
    endless = chunks(*[b"x" * 4096] * (MAX_EVENT_BYTES // 4096 + 2))
    with pytest.raises(RedfishUnreachable, match="longer than"):
        async for _ in bounded_lines(endless, "/sse"):
            pass

"""The RMC reads a BMC's event stream bounded: a compromised BMC that streams a line without
end is cut off at the event size limit instead of growing the RMC's memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.redfish import MAX_EVENT_BYTES
from racklet.rmc._satellite import AggregationSource, SatelliteClient
from racklet.rmc.errors import SatelliteUnreachable
from tests.rmc.conftest import free_port

SSE = "/redfish/v1/EventService/SSE"


async def _endless_line() -> AsyncIterator[bytes]:
    yield b'id: unit-1:1\ndata: {"Id": "1"}\n\n'  # one good frame first
    for _ in range(MAX_EVENT_BYTES // 4096 + 8):
        yield b"x" * 4096  # then no line break, ever


async def _stream(request: Request) -> Response:
    return StreamingResponse(_endless_line(), media_type="text/event-stream")


@pytest.fixture
async def hostile_bmc(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("unit-1-bmc", role="bmc/unit-1").write(tmp_path / "bmc", "server")
    port = free_port()
    app = Starlette(routes=[Route(SSE, _stream)])
    server = AppServer(app, port=port, ssl_context=server_context(crt, key), name="bmc")
    await server.start()
    try:
        yield f"https://127.0.0.1:{port}", tmp_path / "pki" / "ca.crt"
    finally:
        await server.stop()


async def test_a_bmc_streaming_a_line_without_end_is_cut_off(
    hostile_bmc: tuple[str, Path],
) -> None:
    url, ca = hostile_bmc
    client = SatelliteClient(AggregationSource("unit-1", url), client_context(ca), timeout=10.0)
    got = []
    try:
        with pytest.raises(SatelliteUnreachable, match="longer than"):
            async with client.events(SSE) as frames:
                async for event_id, payload in frames:
                    got.append((event_id, payload))
    finally:
        await client.aclose()
    assert got == [("unit-1:1", {"Id": "1"})]

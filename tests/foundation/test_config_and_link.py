"""racklet.yaml is private and validated; the backplane link frames and refuses properly."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from racklet import config as rack_config
from racklet.errors import ConfigError
from racklet.link import LinkClient, LinkError, serve_link


def _config(tmp_path: Path) -> rack_config.RackConfig:
    return rack_config.RackConfig(
        stateDir=str(tmp_path),
        rack=rack_config.RackSettings(units=1),
        api=rack_config.ApiConfig(url="https://127.0.0.1:1", caBundle="ca.crt", token="secret"),
        controller=rack_config.ControllerConfig(apiPort=1, machinePort=2),
        units=[
            rack_config.UnitConfig(
                name="unit-1",
                slot=1,
                bmc=rack_config.BmcConfig(url="https://127.0.0.1:3", username="a", password="b"),
                agentPort=4,
            )
        ],
    )


def test_config_round_trip_is_private(tmp_path: Path) -> None:
    path = rack_config.save(_config(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = rack_config.load(path)
    assert loaded.api.token == "secret"
    assert loaded.controller.machine_url == "https://127.0.0.1:2"
    assert "caBundle" in path.read_text()


def test_config_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no running rack"):
        rack_config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rack: [unclosed")
    with pytest.raises(ConfigError, match="cannot read"):
        rack_config.load(bad)
    with pytest.raises(ConfigError, match="unknown unit 'unit-2'"):
        _config(tmp_path).unit("unit-2")


async def _link_pair(handlers: dict[str, Any]) -> tuple[LinkClient, asyncio.Task[None]]:
    unit_sock, bmc_sock = socket.socketpair()
    bmc_reader, bmc_writer = await asyncio.open_connection(sock=bmc_sock)
    task = asyncio.create_task(serve_link(bmc_reader, bmc_writer, handlers))
    reader, writer = await asyncio.open_connection(sock=unit_sock)
    return LinkClient(reader, writer), task


async def test_link_request_and_refusals() -> None:
    async def trust(request: dict[str, Any]) -> dict[str, Any]:
        return {"bootServer": "https://127.0.0.1:1"}

    async def failing(request: dict[str, Any]) -> dict[str, Any]:
        raise LinkError("no identity provisioned")

    client, task = await _link_pair({"trust": trust, "identity": failing})
    assert (await client.request("trust"))["bootServer"] == "https://127.0.0.1:1"
    with pytest.raises(LinkError, match="unknown op 'nope'"):
        await client.request("nope")
    with pytest.raises(LinkError, match="no identity provisioned"):
        await client.request("identity")
    await client.close()
    await asyncio.wait_for(task, 5)


async def test_oversized_frame_is_refused_not_read() -> None:
    unit_sock, bmc_sock = socket.socketpair()
    bmc_reader, bmc_writer = await asyncio.open_connection(sock=bmc_sock)
    task = asyncio.create_task(serve_link(bmc_reader, bmc_writer, {}))
    reader, writer = await asyncio.open_connection(sock=unit_sock)
    writer.write((1 << 30).to_bytes(4, "big"))
    await writer.drain()
    from racklet.link._protocol import read_frame

    answer = await asyncio.wait_for(read_frame(reader), 5)
    assert answer is not None and answer["ok"] is False and "exceeds" in answer["error"]
    await asyncio.wait_for(task, 5)
    writer.close()

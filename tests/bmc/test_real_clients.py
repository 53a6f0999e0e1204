"""Real Redfish clients against the real BMC on a twin board: DMTF's ``redfish`` library
and OpenStack's ``sushy`` drive power, boot override and sensor reads; the SSE event stream
carries the power events, read through each library's own logged-in session; a rack-CA
client certificate logs the controller in."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sushy

import redfish
from racklet.net import client_context
from tests.bmc.twin_bench import ADMIN, OPERATOR, UNIT, TwinBmc, running_twin_bmc

SYSTEM = f"/redfish/v1/Systems/{UNIT}"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


async def _eventually(check: Any, what: str, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_dmtf_redfish_library_powers_the_unit_and_reads_its_sensors(twin: TwinBmc) -> None:
    unit = twin.rack.unit(UNIT)

    def session() -> Any:
        client = redfish.redfish_client(
            base_url=twin.url, username=OPERATOR[0], password=OPERATOR[1], cafile=str(twin.ca)
        )
        client.login(auth="session")
        return client

    client = await asyncio.to_thread(session)
    try:
        reset = await asyncio.to_thread(
            client.post, f"{SYSTEM}/Actions/ComputerSystem.Reset", body={"ResetType": "On"}
        )
        assert reset.status == 204
        await _eventually(lambda: unit.power_watts > 1.0, "the unit to draw power")
        system = await asyncio.to_thread(client.get, SYSTEM)
        assert system.dict["PowerState"] == "On"

        async def power_reading() -> float | None:
            sensor = await asyncio.to_thread(
                client.get, f"/redfish/v1/Chassis/{UNIT}/Sensors/power"
            )
            return sensor.dict["Reading"]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (reading := await power_reading()) is None or reading < 1.0:
            assert loop.time() < deadline, "the BMC never read the unit's draw"
            await asyncio.sleep(0.05)
        assert abs(reading - unit.power_watts) < 1.5
        info = await asyncio.to_thread(client.get, f"{SYSTEM}/ResetActionInfo")
        assert "PowerCycle" in info.dict["Parameters"][0]["AllowableValues"]
    finally:
        await asyncio.to_thread(client.logout)


async def test_sushy_sets_a_network_boot_override_on_the_board(twin: TwinBmc) -> None:
    def override() -> tuple[str, Any]:
        # An explicit auth object, closed here: sushy would otherwise log out from __del__
        # during a later test, retrying against a stopped BMC and stalling that test's loop.
        auth = sushy.auth.SessionOrBasicAuth(username=OPERATOR[0], password=OPERATOR[1])
        root = sushy.Sushy(twin.url + "/redfish/v1", auth=auth, verify=str(twin.ca))
        try:
            system = root.get_system(SYSTEM)
            system.set_system_boot_options(
                sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_CONTINUOUS
            )
            system.refresh()
            return system.boot.target, system.boot.enabled
        finally:
            auth.close()

    target, enabled = await asyncio.to_thread(override)
    assert target == sushy.BOOT_SOURCE_TARGET_PXE
    assert enabled == sushy.BOOT_SOURCE_ENABLED_CONTINUOUS
    assert twin.rack.board(UNIT).boot_select.get().value == "UefiHttp"


async def test_the_sse_stream_carries_power_events(twin: TwinBmc) -> None:
    seen: list[dict[str, Any]] = []
    async with httpx.AsyncClient(
        base_url=twin.url, verify=client_context(twin.ca), auth=ADMIN, timeout=20.0
    ) as http:

        async def listen() -> None:
            async with http.stream("GET", "/redfish/v1/EventService/SSE") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:]))

        listener = asyncio.create_task(listen())
        try:
            # The stream is open once the BMC counts a subscriber.
            await _eventually(lambda: bool(twin.service.context.events._streams), "the stream")
            reset = await http.post(
                f"{SYSTEM}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
            )
            assert reset.status_code == 204

            def powered_on() -> bool:
                ids = [record["MessageId"] for e in seen for record in e["Events"]]
                return "ResourceEvent.1.4.ResourcePoweredOn" in ids

            await _eventually(powered_on, "a PoweredOn event on the stream")
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        record = next(r for e in seen for r in e["Events"] if r["MessageId"].endswith("PoweredOn"))
        assert record["OriginOfCondition"]["@odata.id"] == SYSTEM
        log = (await http.get("/redfish/v1/Managers/bmc/LogServices/EventLog/Entries")).json()
        assert any(m["MessageId"].endswith("PoweredOn") for m in log["Members"])


async def test_a_rack_ca_client_certificate_logs_the_controller_in(twin: TwinBmc) -> None:
    certs = twin.state_dir.parent / "clients"
    certs.mkdir()
    twin.pki.issue("racklet-controller", role="controller", server=False, client=True).write(
        certs, "controller"
    )
    twin.pki.issue("stranger", server=False, client=True).write(certs, "stranger")

    def as_(name: str) -> httpx.AsyncClient:
        context = client_context(twin.ca, certs / f"{name}.crt", certs / f"{name}.key")
        return httpx.AsyncClient(base_url=twin.url, verify=context, timeout=20.0)

    async with as_("controller") as controller:
        assert (await controller.get(SYSTEM)).json()["Id"] == UNIT
        reset = await controller.post(
            f"{SYSTEM}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )
        assert reset.status_code == 204
        # The controller's role is Operator: it cannot manage accounts.
        new = {"UserName": "x", "Password": "a-long-enough-secret", "RoleId": "Operator"}
        assert (
            await controller.post("/redfish/v1/AccountService/Accounts", json=new)
        ).status_code == 403
    async with as_("stranger") as stranger:
        assert (await stranger.get(SYSTEM)).status_code == 401


async def test_both_libraries_read_the_unit_console_log(twin: TwinBmc) -> None:
    """The console the unit printed at boot, read as LogService entries by each client."""
    entries = f"{SYSTEM}/LogServices/Console/Entries"
    booted = "racklet: booted into an idle OS"

    def with_redfish() -> list[str]:
        client = redfish.redfish_client(
            base_url=twin.url, username=OPERATOR[0], password=OPERATOR[1], cafile=str(twin.ca)
        )
        client.login(auth="session")
        try:
            if client.get(SYSTEM).dict["PowerState"] != "On":
                reset = client.post(
                    f"{SYSTEM}/Actions/ComputerSystem.Reset", body={"ResetType": "On"}
                )
                assert reset.status == 204
            service = client.get(f"{SYSTEM}/LogServices/Console").dict
            assert service["Entries"]["@odata.id"] == entries
            return [m["Message"] for m in client.get(entries).dict["Members"]]
        finally:
            client.logout()

    def with_sushy() -> list[str]:
        root = sushy.Sushy(
            twin.url + "/redfish/v1",
            username=OPERATOR[0],
            password=OPERATOR[1],
            verify=str(twin.ca),
        )
        system = root.get_system(SYSTEM)
        assert system.power_state == sushy.POWER_STATE_ON
        # sushy models no LogService; its authenticated connector reads any resource.
        body = root._conn.get(entries).json()
        return [m["Message"] for m in body["Members"]]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while booted not in (lines := await asyncio.to_thread(with_redfish)):
        assert loop.time() < deadline, f"the console never showed the boot line: {lines}"
        await asyncio.sleep(0.1)
    assert booted in await asyncio.to_thread(with_sushy)


def _read_events_until(
    session: Any, url: str, headers: dict[str, str], ca: str, wanted: str
) -> list[str]:
    """Read an SSE stream with a logged-in client's HTTP session until ``wanted`` arrives."""
    ids: list[str] = []
    with session.get(url, headers=headers, stream=True, timeout=20, verify=ca) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for raw in response.iter_lines():
            line = raw.decode() if isinstance(raw, bytes) else raw
            if line.startswith("data: "):
                ids += [r["MessageId"] for r in json.loads(line[6:])["Events"]]
                if any(i.endswith(wanted) for i in ids):
                    return ids
    return ids


async def test_both_libraries_sessions_read_the_event_stream(twin: TwinBmc) -> None:
    """Neither library models SSE, so each opens the stream on its own logged-in session."""
    import requests

    sse = f"{twin.url}/redfish/v1/EventService/SSE"

    def with_sushy() -> list[str]:
        auth = sushy.auth.SessionOrBasicAuth(username=ADMIN[0], password=ADMIN[1])
        root = sushy.Sushy(twin.url + "/redfish/v1", auth=auth, verify=str(twin.ca))
        try:
            system = root.get_system(SYSTEM)
            connection = root._conn  # sushy's authenticated connector (session token set)
            reader = _ReaderThread(
                lambda: _read_events_until(
                    connection._session, sse, {}, str(twin.ca), "ResourcePoweredOn"
                )
            )
            reader.wait_until_open(twin)
            system.reset_system(sushy.RESET_ON)
            return reader.result()
        finally:
            auth.close()

    def with_redfish() -> list[str]:
        client = redfish.redfish_client(
            base_url=twin.url, username=ADMIN[0], password=ADMIN[1], cafile=str(twin.ca)
        )
        client.login(auth="session")
        try:
            headers = {"X-Auth-Token": client.get_session_key()}
            reader = _ReaderThread(
                lambda: _read_events_until(
                    requests.Session(), sse, headers, str(twin.ca), "ResourcePoweredOff"
                )
            )
            reader.wait_until_open(twin)
            reset = client.post(
                f"{SYSTEM}/Actions/ComputerSystem.Reset", body={"ResetType": "ForceOff"}
            )
            assert reset.status in (200, 204), reset.text
            return reader.result()
        finally:
            client.logout()

    assert any(i.endswith("ResourcePoweredOn") for i in await asyncio.to_thread(with_sushy))
    assert any(i.endswith("ResourcePoweredOff") for i in await asyncio.to_thread(with_redfish))


class _ReaderThread:
    """Runs a blocking stream reader beside the client that triggers the event."""

    def __init__(self, read: Any) -> None:
        import threading

        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=lambda: self._outcome.append(read()), daemon=True)

    def wait_until_open(self, twin: TwinBmc) -> None:
        """Start reading, and return once the BMC counts *this* reader as a subscriber."""
        import time

        streams = twin.service.context.events._streams
        before = set(streams)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not set(streams) - before:
            assert time.monotonic() < deadline, "the event stream never opened"
            time.sleep(0.02)

    def result(self) -> list[str]:
        self._thread.join(timeout=30)
        assert self._outcome, "the stream reader did not finish"
        return list(self._outcome[0])

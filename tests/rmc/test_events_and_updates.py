"""The RMC aggregates EventService and UpdateService: every BMC's events on the RMC's one
stream and to its push subscriptions, and an update pushed at the RMC for one unit lands on
that unit's BMC only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redfish_utilities
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import redfish
from racklet.net import AppServer, server_context
from racklet.pki import RackCA
from tests.bmc.resources.update.test_update import DigestList, os_payload
from tests.rmc.conftest import (
    ADMIN,
    READER,
    UNITS,
    Rack,
    eventually,
    free_port,
    running_rack,
)

SSE = "/redfish/v1/EventService/SSE"
INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
IMAGE = b"racklet payload 2.0.0\n" * 1000


async def _frames(stream: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(id, payload) of each event frame of an SSE answer."""
    event_id, data = "", ""
    async for line in stream.aiter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif not line and data:
            yield event_id, json.loads(data)
            event_id, data = "", ""


async def _first(
    frames: AsyncIterator[tuple[str, dict[str, Any]]], wanted: Any, within: float = 20.0
) -> tuple[str, dict[str, Any]]:
    async def find() -> tuple[str, dict[str, Any]]:
        async for event_id, payload in frames:
            if wanted(payload):
                return event_id, payload
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), within)


def _record(payload: dict[str, Any]) -> dict[str, Any]:
    return dict(payload["Events"][0])


async def test_the_rmc_stream_carries_every_bmcs_events_and_its_own(rack: Rack) -> None:
    await eventually(lambda: rack.rmc.fan_in.connected == set(UNITS), "the RMC's event relays")
    async with rack.client(auth=READER) as client, client.stream("GET", SSE) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = _frames(stream)
        async with rack.bmc("unit-2") as bmc:  # someone powers unit-2 on at its own BMC
            answer = await bmc.post(
                "/redfish/v1/Systems/unit-2/Actions/ComputerSystem.Reset",
                json={"ResetType": "On"},
            )
            assert answer.status_code == 204
        event_id, payload = await _first(
            frames, lambda p: _record(p)["MessageId"].endswith("ResourcePoweredOn")
        )
        record = _record(payload)
        assert event_id.startswith("unit-2:")
        assert payload["Oem"]["Racklet"]["Source"] == "unit-2"
        # The URI is the aggregate's: a client follows it at the RMC.
        assert record["OriginOfCondition"]["@odata.id"] == "/redfish/v1/Systems/unit-2_unit-2"

        async with rack.client() as admin:  # an event of the RMC's own, on the same stream
            test = await admin.post(
                "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent",
                json={"MessageId": "ResourceEvent.1.4.ResourceChanged", "Severity": "OK"},
            )
            assert test.status_code == 204
        event_id, payload = await _first(
            frames, lambda p: _record(p)["MessageId"] == "ResourceEvent.1.4.ResourceChanged"
        )
        assert event_id.startswith("rmc:")


async def test_a_read_only_account_cannot_submit_a_test_event(rack: Rack) -> None:
    async with rack.client(auth=READER) as client:
        answer = await client.post(
            "/redfish/v1/EventService/Actions/EventService.SubmitTestEvent",
            json={"MessageId": "ResourceEvent.1.4.ResourceChanged"},
        )
    assert answer.status_code == 403


@pytest.fixture
def verifier() -> DigestList:
    return DigestList({IMAGE: os_payload(IMAGE, "2.0.0")})


@pytest.fixture
async def updating(tmp_path: Path, verifier: DigestList) -> AsyncIterator[Rack]:
    async with running_rack(tmp_path, image_verifier=verifier) as rack:
        # unit-1 runs a committed 1.0.0 from slot A, as its bootstrap's first install leaves it
        committed = {"slot": "A", "version": "1.0.0", "sha256": "a" * 64}
        ab = {"committed": committed, "rollbackVersion": "1.0.0"}
        (tmp_path / "bmc" / "unit-1" / "ab.json").write_text(json.dumps(ab))
        yield rack


# redfish_utilities opens the image and leaves closing it to the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_update_pushed_at_the_rmc_reaches_only_the_named_units_bmc(
    updating: Rack, tmp_path: Path
) -> None:
    rack = updating
    image = tmp_path / "payload.img"
    image.write_bytes(IMAGE)
    target = f"{INVENTORY}/unit-1_slot-b"

    def push() -> tuple[int, str, int, dict[str, Any]]:
        """DMTF's redfish_utilities, as rf_update.py runs it, against the RMC."""
        context = redfish.redfish_client(
            base_url=rack.url, username=ADMIN[0], password=ADMIN[1], cafile=str(rack.ca)
        )
        context.login(auth="session")
        try:
            inventory = context.get(INVENTORY).dict
            assert {"@odata.id": target} in inventory["Members"]
            pushed = redfish_utilities.multipart_push_update(context, str(image), targets=[target])
            monitor = pushed.getheader("Location")
            for _ in range(200):
                final = context.get(monitor)
                if final.status != 202:
                    break
            slot = context.get(target).dict
            return pushed.status, monitor, final.status, slot
        finally:
            context.logout()

    status, monitor, final, slot = await asyncio.to_thread(push)
    assert status == 202
    assert monitor.startswith("/redfish/v1/TaskService/TaskMonitors/unit-1_")
    assert final == 200
    assert (slot["Version"], slot["Status"]["State"]) == ("2.0.0", "StandbySpare")
    assert slot["Id"] == "unit-1_slot-b"
    assert (tmp_path / "units" / "unit-1" / "slots" / "B" / "payload.bin").read_bytes() == IMAGE
    async with rack.bmc("unit-2") as bmc:  # the other unit's BMC saw nothing
        other = (await bmc.get(f"{INVENTORY}/slot-b")).json()
        tasks = (await bmc.get("/redfish/v1/TaskService/Tasks")).json()
    assert other.get("Version") != "2.0.0"
    assert tasks["Members"] == []


@pytest.mark.parametrize(
    ("targets", "why"),
    [
        ([f"{INVENTORY}/unit-1_slot-b", f"{INVENTORY}/unit-2_slot-b"], "two units"),
        (["/redfish/v1/Managers/rmc"], "the RMC itself"),
        ([], "no target"),
    ],
)
async def test_a_push_naming_no_one_unit_is_refused_and_reaches_no_bmc(
    rack: Rack, targets: list[str], why: str
) -> None:
    files = {
        "UpdateParameters": (None, json.dumps({"Targets": targets}), "application/json"),
        "UpdateFile": ("payload.img", IMAGE, "application/octet-stream"),
    }
    async with rack.client() as client:
        answer = await client.post("/redfish/v1/UpdateService/update-multipart", files=files)
    assert answer.status_code == 400, why
    for unit in UNITS:
        async with rack.bmc(unit) as bmc:
            tasks = (await bmc.get("/redfish/v1/TaskService/Tasks")).json()
        assert tasks["Members"] == [], why


class _Listener:
    """An HTTPS event listener, as a monitoring system runs one (rack-CA certificate)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.refuse = False
        self.app = Starlette(routes=[Route("/events", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        if self.refuse:
            return Response(status_code=503)
        self.events.append(json.loads(await request.body()))
        return Response(status_code=204)


@pytest.fixture
async def listener(rack: Rack, tmp_path: Path) -> AsyncIterator[tuple[_Listener, str]]:
    key, crt = RackCA.load(rack.ca.parent).issue("listener").write(tmp_path / "listener", "server")
    found = _Listener()
    port = free_port()
    server = AppServer(found.app, port=port, ssl_context=server_context(crt, key), name="listener")
    await server.start()
    try:
        yield found, f"https://127.0.0.1:{port}/events"
    finally:
        await server.stop()


async def test_a_subscription_gets_every_bmcs_events_with_its_context(
    rack: Rack, listener: tuple[_Listener, str]
) -> None:
    received, destination = listener
    await eventually(lambda: rack.rmc.fan_in.connected == set(UNITS), "the RMC's event relays")

    def subscribe() -> str:
        """DMTF's redfish_utilities, as rf_event_service.py subscribe runs it."""
        context = redfish.redfish_client(
            base_url=rack.url, username=ADMIN[0], password=ADMIN[1], cafile=str(rack.ca)
        )
        context.login(auth="session")
        try:
            answer = redfish_utilities.create_event_subscription(
                context, destination, format="Event", client_context="lab-monitor"
            )
            return str(answer.getheader("Location"))
        finally:
            context.logout()

    location = await asyncio.to_thread(subscribe)
    assert location.startswith("/redfish/v1/EventService/Subscriptions/")
    async with rack.bmc("unit-1") as bmc:
        await bmc.post(
            "/redfish/v1/Systems/unit-1/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )

    def powered_on() -> bool:
        return any(
            e["Events"][0]["MessageId"].endswith("ResourcePoweredOn") for e in received.events
        )

    await eventually(powered_on, "the power event at the listener")
    event = next(e for e in received.events if e["Events"][0]["MessageId"].endswith("PoweredOn"))
    assert event["Context"] == "lab-monitor"
    assert event["Events"][0]["OriginOfCondition"]["@odata.id"] == (
        "/redfish/v1/Systems/unit-1_unit-1"
    )
    async with rack.client() as client:
        tested = await client.post(
            "/redfish/v1/EventService/Actions/EventService.TestEventSubscription", json={}
        )
        assert tested.status_code == 204
        await eventually(lambda: any(e["Id"] == "test" for e in received.events), "a test event")
        shown = (await client.get(location)).json()
        assert (shown["Destination"], shown["Context"]) == (destination, "lab-monitor")
        assert (await client.delete(location)).status_code == 204
        assert (await client.get(location)).status_code == 404


async def test_a_subscription_that_keeps_failing_is_ended_and_bad_ones_are_refused(
    rack: Rack, listener: tuple[_Listener, str]
) -> None:
    received, destination = listener
    received.refuse = True
    rack.rmc.fan_in.subscriptions._retry_interval = 0.05  # the policy, without the wait
    async with rack.client() as client:
        made = await client.post(
            "/redfish/v1/EventService/Subscriptions", json={"Destination": destination}
        )
        assert made.status_code == 201
        location = made.headers["Location"]
        for body in (
            {"Destination": "http://127.0.0.1:9/events"},
            {"Destination": destination, "Protocol": "SNMPv2c"},
            {"Destination": destination, "HttpHeaders": [{"X": "y"}]},
            {},
        ):
            assert (
                await client.post("/redfish/v1/EventService/Subscriptions", json=body)
            ).status_code == 400, body
        await client.post(
            "/redfish/v1/EventService/Actions/EventService.TestEventSubscription", json={}
        )

        async def gone() -> bool:
            return (await client.get(location)).status_code == 404

        for _ in range(200):
            if await gone():
                break
            await asyncio.sleep(0.05)
        assert await gone(), "TerminateAfterRetries ends it"
    async with rack.client(auth=READER) as reader:
        refused = await reader.post(
            "/redfish/v1/EventService/Subscriptions", json={"Destination": destination}
        )
    assert refused.status_code == 403


async def test_a_malformed_push_is_a_redfish_400(rack: Rack) -> None:
    async with rack.client() as client:
        garbage = await client.post(
            "/redfish/v1/UpdateService/update-multipart",
            content=b"--x\r\nnot a part",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        no_file = await client.post(
            "/redfish/v1/UpdateService/update-multipart",
            files={"UpdateParameters": (None, "{}", "application/json")},
        )
    assert garbage.status_code == 400 and no_file.status_code == 400
    assert garbage.json()["error"]["code"].startswith("Base.")

"""Push subscriptions on a BMC, as ``rf_event_service.py subscribe`` makes one with DMTF's
``redfish_utilities``: the BMC POSTs its events (with the subscription's Context) to an HTTPS
listener whose certificate chains to the rack CA; plain HTTP and readers are refused."""

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
from racklet.net import AppServer, client_context, server_context
from tests.bmc.conftest import eventually
from tests.bmc.twin_bench import ADMIN, OPERATOR, READER, UNIT, TwinBmc, running_twin_bmc
from tests.rmc.conftest import free_port

SUBSCRIPTIONS = "/redfish/v1/EventService/Subscriptions"


class _Listener:
    """A monitoring system's HTTPS event listener: it keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/events", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.events.append(json.loads(await request.body()))
        return Response(status_code=204)


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[TwinBmc]:
    async with running_twin_bmc(tmp_path / "rack") as bmc:
        yield bmc


@pytest.fixture
async def listener(twin: TwinBmc, tmp_path: Path) -> AsyncIterator[tuple[_Listener, str]]:
    key, crt = twin.pki.issue("listener").write(tmp_path / "listener", "server")
    found = _Listener()
    port = free_port()
    server = AppServer(found.app, port=port, ssl_context=server_context(crt, key), name="listener")
    await server.start()
    try:
        yield found, f"https://127.0.0.1:{port}/events"
    finally:
        await server.stop()


def _client(twin: TwinBmc, who: tuple[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=twin.url, verify=client_context(twin.ca), auth=who)


async def test_a_subscriber_gets_the_bmcs_events_with_its_context(
    twin: TwinBmc, listener: tuple[_Listener, str]
) -> None:
    received, destination = listener

    def subscribe() -> str:
        context = redfish.redfish_client(
            base_url=twin.url, username=OPERATOR[0], password=OPERATOR[1], cafile=str(twin.ca)
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
    assert location.startswith(f"{SUBSCRIPTIONS}/")
    async with _client(twin, ADMIN) as admin:
        service = (await admin.get("/redfish/v1/EventService")).json()
        assert service["Subscriptions"] == {"@odata.id": SUBSCRIPTIONS}
        listed = (await admin.get(SUBSCRIPTIONS)).json()
        assert listed["Members"] == [{"@odata.id": location}]
        await admin.post(
            f"/redfish/v1/Systems/{UNIT}/Actions/ComputerSystem.Reset", json={"ResetType": "On"}
        )

        def powered_on() -> bool:
            return any(
                e["Events"][0]["MessageId"].endswith("ResourcePoweredOn") for e in received.events
            )

        await eventually(powered_on, "the power event at the listener")
        event = next(
            e for e in received.events if e["Events"][0]["MessageId"].endswith("PoweredOn")
        )
        assert event["Context"] == "lab-monitor"
        assert event["Events"][0]["OriginOfCondition"] == {
            "@odata.id": f"/redfish/v1/Systems/{UNIT}"
        }
        shown = (await admin.get(location)).json()
        assert (shown["Destination"], shown["Context"]) == (destination, "lab-monitor")
        assert shown["DeliveryRetryPolicy"] == "TerminateAfterRetries"
        assert (await admin.delete(location)).status_code == 204
        assert (await admin.get(location)).status_code == 404


async def test_bad_subscriptions_and_readers_are_refused(
    twin: TwinBmc, listener: tuple[_Listener, str]
) -> None:
    _, destination = listener
    async with _client(twin, OPERATOR) as operator, _client(twin, READER) as reader:
        for body, code in (
            ({"Destination": "http://127.0.0.1:9/events"}, "PropertyValueFormatError"),
            ({"Destination": destination, "Protocol": "SNMPv2c"}, "PropertyValueNotInList"),
            ({"Destination": destination, "HttpHeaders": [{"X": "y"}]}, "PropertyNotWritable"),
            ({}, "PropertyMissing"),
        ):
            answer = await operator.post(SUBSCRIPTIONS, json=body)
            assert answer.status_code == 400, body
            assert answer.json()["error"]["code"].endswith(code), body
        refused = await reader.post(SUBSCRIPTIONS, json={"Destination": destination})
        assert refused.status_code == 403
        assert (await operator.get(SUBSCRIPTIONS)).json()["Members"] == []

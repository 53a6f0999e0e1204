"""The RMC's EventService: every BMC's events, and its own, on one SSE stream.

The RMC keeps one connection open to each BMC's ``EventService/SSE`` (with its client
certificate, as for every forwarded request) and relays each event with the BMC's URIs
prefixed as the aggregate shows them (``OriginOfCondition`` ``/redfish/v1/Systems/unit-1_unit-1``),
beside the RMC's own events (logins, cooling) from its :class:`EventBus`. A client reads them
all from ``/redfish/v1/EventService/SSE`` of the RMC; each frame's ``id:`` names its source
(``unit-1:17``, ``rmc:3``) and its payload carries it in ``Oem.Racklet.Source``. A BMC that
goes away is asked again with a growing pause (1 s doubling to 30 s), so a restarted BMC's
events flow again without anyone reconnecting.

One relay per BMC, whatever the number of clients: a client that falls behind loses its
oldest frames (a bounded queue each), never the BMC's connection. ``SubmitTestEvent`` puts an
event of the caller's on the RMC's own bus (its EventLog, the stream and every subscription).
Push subscriptions (:mod:`._subscriptions`) get every event the stream carries;
``TestEventSubscription`` sends each of them a test event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from racklet.bmc.login import EventBus
from racklet.limits import InputRejected, parse_json
from racklet.log import ContextLogger
from racklet.rmc import _uris
from racklet.rmc._manager import now_iso
from racklet.rmc._messages import ODATA_HEADERS, error, json_response
from racklet.rmc._satellite import SatelliteClient
from racklet.rmc._services import EVENT_REGISTRIES
from racklet.rmc._subscriptions import (
    RETRY_ATTEMPTS,
    RETRY_INTERVAL_SECONDS,
    SUBSCRIPTIONS,
    Subscriptions,
)
from racklet.rmc.errors import SatelliteUnreachable
from racklet.tasks import OwnedTask

SERVICE = f"{_uris.ROOT}/EventService"
SSE = f"{SERVICE}/SSE"
SUBMIT = "EventService.SubmitTestEvent"
TEST_SUBSCRIPTION = "EventService.TestEventSubscription"
SEVERITIES = ("OK", "Warning", "Critical")
OWN_SOURCE = "rmc"
BACKLOG = 256
"""Frames a slow client may have waiting before its oldest are dropped."""
RETRY_FIRST, RETRY_MAX = 1.0, 30.0


def _frame(event_id: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    return f"id: {event_id}\ndata: {data}\n\n".encode()


class EventFanIn:
    """The relays from every BMC and the clients of the RMC's stream."""

    def __init__(
        self,
        clients: dict[str, SatelliteClient],
        events: EventBus,
        log: ContextLogger,
        subscriptions: Subscriptions,
    ) -> None:
        self.subscriptions = subscriptions
        self._clients = clients
        self._own = events
        self._log = log
        self._relays = {name: OwnedTask(f"rmc:events:{name}") for name in clients}
        self._own_relay = OwnedTask("rmc:events:own")
        self._streams: set[asyncio.Queue[bytes | None]] = set()
        self.connected: set[str] = set()
        """The BMCs whose stream is open now."""

    async def start(self) -> None:
        for name, task in self._relays.items():
            task.start(lambda name=name: self._relay(name))  # type: ignore[misc]
        self._own_relay.start(self._relay_own)

    async def stop(self) -> None:
        for task in [*self._relays.values(), self._own_relay]:
            await task.stop()
        for queue in list(self._streams):
            self._put(queue, None)
        await self.subscriptions.stop()

    # -- relays ------------------------------------------------------------------------------

    def _publish(self, source: str, event_id: str, payload: dict[str, Any]) -> None:
        payload.setdefault("Oem", {})["Racklet"] = {"Source": source}
        frame = _frame(f"{source}:{event_id}", payload)
        for queue in list(self._streams):
            self._put(queue, frame)
        self.subscriptions.deliver(payload)

    @staticmethod
    def _put(queue: asyncio.Queue[bytes | None], item: bytes | None) -> None:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(item)

    async def _relay_own(self) -> None:
        queue = self._own.subscribe()
        try:
            while True:
                event = await queue.get()
                if event is None:
                    return
                payload = event.payload()
                payload["Name"] = "Racklet RMC event"
                self._publish(OWN_SOURCE, str(event.id), payload)
        finally:
            self._own.unsubscribe(queue)

    async def _relay(self, source: str) -> None:
        pause = RETRY_FIRST
        while True:
            try:
                async with self._clients[source].events(SSE) as frames:
                    self.connected.add(source)
                    self._log.info(f"relaying the events of BMC {source}")
                    pause = RETRY_FIRST
                    async for event_id, payload in frames:
                        self._publish(source, event_id, _uris.prefix_document(payload, source))
            except SatelliteUnreachable as exc:
                self._log.warning(f"event stream of {source}: {exc}; again in {pause:.0f} s")
            finally:
                self.connected.discard(source)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)

    # -- Redfish -----------------------------------------------------------------------------

    async def service(self, request: Request) -> Response:
        return json_response(
            {
                "@odata.type": "#EventService.v1_10_0.EventService",
                "@odata.id": SERVICE,
                "Id": "EventService",
                "Name": "Event Service",
                "Description": "Every unit BMC's events and the RMC's own, on one stream",
                "ServiceEnabled": True,
                "ServerSentEventUri": SSE,
                "Subscriptions": {"@odata.id": SUBSCRIPTIONS},
                "Actions": {
                    f"#{SUBMIT}": {"target": f"{SERVICE}/Actions/{SUBMIT}"},
                    f"#{TEST_SUBSCRIPTION}": {"target": f"{SERVICE}/Actions/{TEST_SUBSCRIPTION}"},
                },
                "EventFormatTypes": ["Event"],
                "RegistryPrefixes": EVENT_REGISTRIES,
                "ResourceTypes": ["ComputerSystem", "Chassis", "Manager", "AccountService"],
                "IncludeOriginOfConditionSupported": True,
                "SubordinateResourcesSupported": False,
                "ExcludeMessageId": False,
                "ExcludeRegistryPrefix": False,
                "DeliveryRetryAttempts": RETRY_ATTEMPTS,
                "DeliveryRetryIntervalSeconds": RETRY_INTERVAL_SECONDS,
                "Status": {
                    "State": "Enabled",
                    "Health": "OK" if self.connected == set(self._clients) else "Warning",
                },
            }
        )

    async def stream(self, request: Request) -> Response:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=BACKLOG)
        self._streams.add(queue)

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield b": racklet rmc event stream\n\n"
                while True:
                    frame = await queue.get()
                    if frame is None:
                        return
                    yield frame
            finally:
                self._streams.discard(queue)

        return StreamingResponse(frames(), media_type="text/event-stream", headers=ODATA_HEADERS)

    async def submit_test_event(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body() or b"null")
        except InputRejected:
            return error(400, "MalformedJSON")
        if not isinstance(body, dict):
            return error(400, "MalformedJSON")
        message_id = body.get("MessageId")
        if not isinstance(message_id, str) or not message_id:
            return error(400, "ActionParameterMissing", SUBMIT, "MessageId")
        severity = body.get("Severity", "OK")
        if severity not in SEVERITIES:
            return error(400, "ActionParameterValueNotInList", str(severity), "Severity", SUBMIT)
        args = body.get("MessageArgs", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            return error(400, "ActionParameterValueError", "MessageArgs", SUBMIT)
        message = body.get("Message", "Test event.")
        origin = body.get("OriginOfCondition", SERVICE)
        if isinstance(origin, dict):
            origin = origin.get("@odata.id", SERVICE)
        if not isinstance(message, str) or not isinstance(origin, str):
            return error(400, "ActionParameterValueError", "Message", SUBMIT)
        self._own.publish(message_id[:128], message[:1024], tuple(args[:16]), severity, origin)
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    async def test_subscriptions(self, request: Request) -> Response:
        """A test event to every subscription (not to the stream or the EventLog)."""
        self.subscriptions.deliver(
            {
                "@odata.type": "#Event.v1_13_0.Event",
                "Id": "test",
                "Name": "Racklet RMC test event",
                "Events": [
                    {
                        "EventId": "test",
                        "EventTimestamp": now_iso(),
                        "MessageId": "ResourceEvent.1.4.ResourceChanged",
                        "Message": "One or more resource properties have changed.",
                        "MessageArgs": [],
                        "MessageSeverity": "OK",
                        "OriginOfCondition": {"@odata.id": SERVICE},
                    }
                ],
                "Oem": {"Racklet": {"Source": OWN_SOURCE}},
            }
        )
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    def routes(self) -> list[Route]:
        return [
            Route(SERVICE, self.service, methods=["GET"]),
            Route(SSE, self.stream, methods=["GET"]),
            *self.subscriptions.routes(),
            Route(f"{SERVICE}/Actions/{SUBMIT}", self.submit_test_event, methods=["POST"]),
            Route(
                f"{SERVICE}/Actions/{TEST_SUBSCRIPTION}", self.test_subscriptions, methods=["POST"]
            ),
        ]

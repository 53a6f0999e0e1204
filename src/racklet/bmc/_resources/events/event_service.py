"""``EventService`` with its SSE stream and its push ``Subscriptions``.

``GET /redfish/v1/EventService/SSE`` answers ``text/event-stream``: one ``Event`` payload
per message, with ``id:`` set to the event id, so a client can tell what it missed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import link
from racklet.bmc._http.responses import ODATA_HEADERS, respond
from racklet.bmc._http.uris import EVENT_SERVICE
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.events import RedfishEvent
from racklet.bmc._state.subscriptions import (
    RETRY_ATTEMPTS,
    RETRY_INTERVAL_SECONDS,
    SUBSCRIPTIONS,
)

SSE = f"{EVENT_SERVICE}/SSE"


class EventService(Resource):
    redfish_type = "EventService"

    Id: str = "EventService"
    Name: str = "Event Service"
    ServiceEnabled: bool = True
    ServerSentEventUri: str
    RegistryPrefixes: list[str]
    EventFormatTypes: list[str]
    ResourceTypes: list[str]
    ExcludeMessageId: bool = False
    ExcludeRegistryPrefix: bool = False
    IncludeOriginOfConditionSupported: bool = False
    SubordinateResourcesSupported: bool = False
    Subscriptions: dict[str, str] | None = None
    DeliveryRetryAttempts: int | None = None
    DeliveryRetryIntervalSeconds: int | None = None
    Status: dict[str, str]


def _frame(event: RedfishEvent) -> bytes:
    return f"id: {event.id}\ndata: {json.dumps(event.payload())}\n\n".encode()


async def service(ctx: BmcContext, request: Request) -> Response:
    declared = EventService(
        Id="EventService",
        Name="Event Service",
        ServiceEnabled=True,
        ServerSentEventUri=SSE,
        RegistryPrefixes=[
            "ResourceEvent",
            "SensorEvent",
            "Platform",
            "AccountSecurity",
            "Racklet",
        ],
        EventFormatTypes=["Event"],
        ResourceTypes=["ComputerSystem", "Chassis", "Manager", "ManagerAccount", "Sensor"],
        ExcludeMessageId=False,  # the stream sends every event: no filters
        ExcludeRegistryPrefix=False,
        IncludeOriginOfConditionSupported=False,
        SubordinateResourcesSupported=False,
        Status={"State": "Enabled", "Health": "OK"},
    )
    if ctx.subscriptions is not None:
        declared.Subscriptions = link(SUBSCRIPTIONS)
        declared.DeliveryRetryAttempts = RETRY_ATTEMPTS
        declared.DeliveryRetryIntervalSeconds = RETRY_INTERVAL_SECONDS
    return respond(declared.body(EVENT_SERVICE))


async def stream(ctx: BmcContext, request: Request) -> Response:
    queue = ctx.events.subscribe()

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b": racklet bmc event stream\n\n"
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield _frame(event)
        finally:
            ctx.events.unsubscribe(queue)

    return StreamingResponse(frames(), media_type="text/event-stream", headers={**ODATA_HEADERS})

"""``EventService`` with its SSE stream, and the Manager's ``EventLog`` (the BMC event log).

``GET /redfish/v1/EventService/SSE`` answers ``text/event-stream``: one ``Event`` payload
per message, with ``id:`` set to the event id, so a client can tell what it missed. Push
subscriptions (``Subscriptions``) are not offered: the BMC opens no connection to
anyone (the network is hostile), clients pull the stream instead.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from racklet.bmc._http.odata import ROOT, collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import ODATA_HEADERS, no_content, page, read_object, respond, route
from racklet.bmc._logs import CLEAR_ACTION, entries_response, log_service
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.events import EventBus, RedfishEvent
from racklet.log import ContextLogger

SERVICE = f"{ROOT}/EventService"
SSE = f"{SERVICE}/SSE"


def _frame(event: RedfishEvent) -> bytes:
    return f"id: {event.id}\ndata: {json.dumps(event.payload())}\n\n".encode()


def routes(ctx: BmcContext) -> list[Route]:
    async def service(request: Request) -> Response:
        return respond(
            resource(
                "EventService",
                SERVICE,
                Id="EventService",
                Name="Event Service",
                ServiceEnabled=True,
                ServerSentEventUri=SSE,
                RegistryPrefixes=["ResourceEvent", "SensorEvent", "Platform", "AccountSecurity"],
                EventFormatTypes=["Event"],
                Status={"State": "Enabled", "Health": "OK"},
            )
        )

    async def stream(request: Request) -> Response:
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

        return StreamingResponse(
            frames(), media_type="text/event-stream", headers={**ODATA_HEADERS}
        )

    return [
        route(SERVICE, GET=service),
        route(SSE, GET=stream),
        *event_log_routes(ctx.manager_path, ctx.events, ctx.log, "BMC"),
    ]


def event_log_routes(
    manager_path: str, events: EventBus, log: ContextLogger, owner: str
) -> list[Route]:
    """``<manager>/LogServices/EventLog`` over ``events`` (the BMC's, and the RMC's own)."""
    services_path = f"{manager_path}/LogServices"
    log_path = f"{services_path}/EventLog"
    entries_path = f"{log_path}/Entries"

    def entry(event: RedfishEvent) -> dict[str, Any]:
        return resource(
            "LogEntry",
            f"{entries_path}/{event.id}",
            Id=str(event.id),
            Name=f"Event {event.id}",
            EntryType="Event",
            Severity=event.severity,
            Created=event.timestamp,
            Message=event.message,
            MessageId=event.message_id,
            MessageArgs=list(event.args),
            Links={"OriginOfCondition": link(event.origin)},
        )

    async def services(request: Request) -> Response:
        members = page(request, [log_path])
        return respond(collection("LogServiceCollection", services_path, "Log Services", members))

    async def event_log(request: Request) -> Response:
        return respond(
            log_service(
                log_path,
                id="EventLog",
                name=f"{owner} event log",
                capacity=events.capacity,
                entry_type="Event",
            )
        )

    async def entries(request: Request) -> Response:
        return entries_response(request, entries_path, f"{owner} events", events.events(), entry)

    async def one_entry(request: Request) -> Response:
        raw = request.path_params["entry_id"]
        event = events.get(int(raw)) if raw.isdigit() else None
        if event is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "LogEntry", raw)
        return respond(entry(event))

    async def clear(request: Request) -> Response:
        await read_object(request)
        events.clear()
        log.info(f"{owner} event log cleared")
        return no_content()

    return [
        route(services_path, GET=services),
        route(log_path, GET=event_log),
        route(entries_path, GET=entries),
        route(f"{entries_path}/{{entry_id}}", GET=one_entry),
        route(f"{log_path}/Actions/{CLEAR_ACTION}", POST=clear),
    ]

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

from racklet.bmc._context import BmcContext
from racklet.bmc._errors import RedfishError
from racklet.bmc._events import Event
from racklet.bmc._http import ODATA_HEADERS, no_content, page, read_object, respond, route
from racklet.bmc._logs import CLEAR_ACTION, entries_response, log_service
from racklet.bmc._schema import ROOT, collection, link, resource

SERVICE = f"{ROOT}/EventService"
SSE = f"{SERVICE}/SSE"


def _frame(event: Event) -> bytes:
    return f"id: {event.id}\ndata: {json.dumps(event.payload())}\n\n".encode()


def routes(ctx: BmcContext) -> list[Route]:
    log_path = f"{ctx.manager_path}/LogServices/EventLog"
    entries_path = f"{log_path}/Entries"

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

    def entry(event: Event) -> dict[str, Any]:
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

    def _mine(request: Request) -> None:
        if request.path_params["manager_id"] != ctx.manager_path.rsplit("/", 1)[1]:
            raise RedfishError(
                404, "ResourceNotFound", "Manager", request.path_params["manager_id"]
            )

    async def services(request: Request) -> Response:
        _mine(request)
        path = f"{ctx.manager_path}/LogServices"
        members = page(request, [log_path])
        return respond(collection("LogServiceCollection", path, "Log Services", members))

    async def event_log(request: Request) -> Response:
        _mine(request)
        return respond(
            log_service(
                log_path,
                id="EventLog",
                name="BMC event log",
                capacity=ctx.events.capacity,
                entry_type="Event",
            )
        )

    async def entries(request: Request) -> Response:
        _mine(request)
        return entries_response(request, entries_path, "BMC events", ctx.events.events(), entry)

    async def one_entry(request: Request) -> Response:
        _mine(request)
        raw = request.path_params["entry_id"]
        event = ctx.events.get(int(raw)) if raw.isdigit() else None
        if event is None:
            raise RedfishError(404, "ResourceNotFound", "LogEntry", raw)
        return respond(entry(event))

    async def clear(request: Request) -> Response:
        _mine(request)
        await read_object(request)
        ctx.events.clear()
        ctx.log.info("BMC event log cleared")
        return no_content()

    logs = "/redfish/v1/Managers/{manager_id}/LogServices"
    return [
        route(SERVICE, GET=service),
        route(SSE, GET=stream),
        route(logs, GET=services),
        route(f"{logs}/EventLog", GET=event_log),
        route(f"{logs}/EventLog/Entries", GET=entries),
        route(f"{logs}/EventLog/Entries/{{entry_id}}", GET=one_entry),
        route(f"{logs}/EventLog/Actions/{CLEAR_ACTION}", POST=clear),
    ]

"""LogServices: the Manager's ``EventLog`` (the BMC's events, and the RMC's own) and
``Systems/<unit>/LogServices/Console`` (the unit's serial console as LogEntries).

Both are bounded, wrapping logs. Entries are listed oldest first (newest last) and inlined
in the collection, so a client can follow a log with ``$skip`` = entries already seen, in
one request per poll.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import collection, link
from racklet.bmc._http.registry import RedfishErrorReply, message_id
from racklet.bmc._http.responses import no_content, page, read_object, respond, route
from racklet.bmc._http.uris import SYSTEMS
from racklet.bmc._state.console import ConsoleLine
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.events import EventBus, RedfishEvent
from racklet.log import ContextLogger

CONSOLE = "Console"
CLEAR_ACTION = "LogService.ClearLog"
CONSOLE_LINE = message_id("Racklet.ConsoleLine")

_T = TypeVar("_T")


class LogService(Resource):
    redfish_type = "LogService"

    Id: str
    Name: str
    ServiceEnabled: bool = True
    MaxNumberOfRecords: int
    OverWritePolicy: str = "WrapsWhenFull"
    LogEntryType: str
    DateTime: str | None = None
    DateTimeLocalOffset: str | None = None
    Status: dict[str, str]
    Entries: dict[str, str]
    Actions: dict[str, Any]


class LogEntry(Resource):
    redfish_type = "LogEntry"

    Id: str
    Name: str
    EntryType: str
    OemRecordFormat: str | None = None
    Severity: str
    Created: str
    Message: str
    MessageId: str | None = None
    MessageArgs: list[str] | None = None
    Links: dict[str, Any] | None = None


def log_service(path: str, *, id: str, name: str, capacity: int, entry_type: str) -> dict[str, Any]:
    """A LogService resource: a bounded, wrapping log with its Entries and ClearLog."""
    return LogService(
        Id=id,
        Name=name,
        ServiceEnabled=True,
        MaxNumberOfRecords=capacity,
        OverWritePolicy="WrapsWhenFull",
        LogEntryType=entry_type,
        DateTime=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        DateTimeLocalOffset="+00:00",
        Status={"State": "Enabled", "Health": "OK"},
        Entries=link(f"{path}/Entries"),
        Actions={f"#{CLEAR_ACTION}": {"target": f"{path}/Actions/{CLEAR_ACTION}"}},
    ).body(path)


def entries_response(
    request: Request,
    path: str,
    name: str,
    items: Sequence[_T],
    render: Callable[[_T], dict[str, Any]],
) -> Response:
    """A LogEntryCollection with the requested page inlined and the total count."""
    body = collection("LogEntryCollection", path, name, [])
    body["Members"] = [render(item) for item in page(request, items)]
    body["Members@odata.count"] = len(items)
    return respond(body)


class EventLog:
    """``<manager>/LogServices/EventLog`` over an event bus."""

    def __init__(self, manager_path: str, events: EventBus, log: ContextLogger, owner: str):
        self.events, self.log, self.owner = events, log, owner
        self.services_path = f"{manager_path}/LogServices"
        self.path = f"{self.services_path}/EventLog"
        self.entries_path = f"{self.path}/Entries"

    def entry(self, event: RedfishEvent) -> dict[str, Any]:
        return LogEntry(
            Id=str(event.id),
            Name=f"Event {event.id}",
            EntryType="Event",
            Severity=event.severity,
            Created=event.timestamp,
            Message=event.message,
            MessageId=event.message_id,
            MessageArgs=list(event.args),
            Links={"OriginOfCondition": link(event.origin)},
        ).body(f"{self.entries_path}/{event.id}")

    async def services(self, request: Request) -> Response:
        members = page(request, [self.path])
        return respond(
            collection("LogServiceCollection", self.services_path, "Log Services", members)
        )

    async def service(self, request: Request) -> Response:
        return respond(
            log_service(
                self.path,
                id="EventLog",
                name=f"{self.owner} event log",
                capacity=self.events.capacity,
                entry_type="Event",
            )
        )

    async def entries(self, request: Request) -> Response:
        name = f"{self.owner} events"
        return entries_response(request, self.entries_path, name, self.events.events(), self.entry)

    async def one_entry(self, request: Request) -> Response:
        raw = request.path_params["entry_id"]
        event = self.events.get(int(raw)) if raw.isdigit() else None
        if event is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "LogEntry", raw)
        return respond(self.entry(event))

    async def clear(self, request: Request) -> Response:
        await read_object(request)
        self.events.clear()
        self.log.info(f"{self.owner} event log cleared")
        return no_content()

    def routes(self) -> list[BaseRoute]:
        return [
            route(self.services_path, GET=self.services),
            route(self.path, GET=self.service),
            route(self.entries_path, GET=self.entries),
            route(f"{self.entries_path}/{{entry_id}}", GET=self.one_entry),
            route(f"{self.path}/Actions/{CLEAR_ACTION}", POST=self.clear),
        ]


def event_log_routes(
    manager_path: str, events: EventBus, log: ContextLogger, owner: str
) -> list[BaseRoute]:
    """``<manager>/LogServices/EventLog`` over ``events`` (the BMC's, and the RMC's own)."""
    return EventLog(manager_path, events, log, owner).routes()


class ConsoleLogService:
    """``Systems/<unit>/LogServices/Console``: the console lines the BMC holds."""

    def __init__(self, ctx: BmcContext) -> None:
        self.ctx = ctx
        self.services_path = f"{ctx.system_path}/LogServices"
        self.path = f"{self.services_path}/{CONSOLE}"
        self.entries_path = f"{self.path}/Entries"

    def entry(self, line: ConsoleLine) -> dict[str, Any]:
        return LogEntry(
            Id=str(line.seq),
            Name=f"Console line {line.seq}",
            EntryType="Oem",
            OemRecordFormat="Racklet",
            Severity="OK",
            Created=line.created.isoformat(timespec="milliseconds"),
            Message=line.text,
            MessageId=CONSOLE_LINE,
            MessageArgs=[line.text],
        ).body(f"{self.entries_path}/{line.seq}")

    def _check(self, request: Request, service: bool = True) -> None:
        if request.path_params["system_id"] != self.ctx.unit:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "ComputerSystem", request.path_params["system_id"]
            )
        if service and request.path_params["service_id"] != CONSOLE:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "LogService", request.path_params["service_id"]
            )

    async def services(self, request: Request) -> Response:
        self._check(request, service=False)
        members = page(request, [self.path])
        return respond(
            collection(
                "LogServiceCollection", self.services_path, "Log Service Collection", members
            )
        )

    async def service(self, request: Request) -> Response:
        self._check(request)
        return respond(
            log_service(
                self.path,
                id=CONSOLE,
                name=f"Serial console of {self.ctx.unit}",
                capacity=self.ctx.console.capacity,
                entry_type="OEM",
            )
        )

    async def entries(self, request: Request) -> Response:
        self._check(request)
        lines = self.ctx.console.lines()
        return entries_response(request, self.entries_path, "Console lines", lines, self.entry)

    async def one_entry(self, request: Request) -> Response:
        self._check(request)
        raw = request.path_params["entry_id"]
        line = self.ctx.console.get(int(raw)) if raw.isdigit() else None
        if line is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "LogEntry", raw)
        return respond(self.entry(line))

    async def clear(self, request: Request) -> Response:
        self._check(request)
        await read_object(request)
        self.ctx.console.clear()
        self.ctx.log.info("console log cleared")
        return no_content()

    def routes(self) -> list[BaseRoute]:
        base = f"{SYSTEMS}/{{system_id}}/LogServices"
        return [
            route(base, GET=self.services),
            route(f"{base}/{{service_id}}", GET=self.service),
            route(f"{base}/{{service_id}}/Entries", GET=self.entries),
            route(f"{base}/{{service_id}}/Entries/{{entry_id}}", GET=self.one_entry),
            route(f"{base}/{{service_id}}/Actions/{CLEAR_ACTION}", POST=self.clear),
        ]

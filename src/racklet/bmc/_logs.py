"""``Systems/{unit}/LogServices/Console``: the unit's serial console as LogEntries.

Entries are listed oldest first (newest last) and inlined in the collection, so a client
can follow the console with ``$skip`` = lines already seen, in one request per poll.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._console import ConsoleLine
from racklet.bmc._context import BmcContext
from racklet.bmc._http import no_content, page, read_object, respond, route
from racklet.bmc._message_registry import RedfishErrorReply
from racklet.bmc._schema import collection, link, resource

CONSOLE = "Console"
CLEAR_ACTION = "LogService.ClearLog"

_T = TypeVar("_T")


def log_service(path: str, *, id: str, name: str, capacity: int, entry_type: str) -> dict[str, Any]:
    """A LogService resource: a bounded, wrapping log with its Entries and ClearLog."""
    return resource(
        "LogService",
        path,
        Id=id,
        Name=name,
        ServiceEnabled=True,
        MaxNumberOfRecords=capacity,
        OverWritePolicy="WrapsWhenFull",
        LogEntryType=entry_type,
        DateTime=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        DateTimeLocalOffset="+00:00",
        Status={"State": "Enabled", "Health": "OK"},
        Entries=link(f"{path}/Entries"),
        Actions={f"#{CLEAR_ACTION}": {"target": f"{path}/Actions/{CLEAR_ACTION}"}},
    )


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


def routes(ctx: BmcContext) -> list[Route]:
    services_path = f"{ctx.system_path}/LogServices"
    console_path = f"{services_path}/{CONSOLE}"
    entries_path = f"{console_path}/Entries"

    def entry(line: ConsoleLine) -> dict[str, Any]:
        return resource(
            "LogEntry",
            f"{entries_path}/{line.seq}",
            Id=str(line.seq),
            Name=f"Console line {line.seq}",
            EntryType="Oem",
            OemRecordFormat="Racklet",
            Severity="OK",
            Created=line.created.isoformat(timespec="milliseconds"),
            Message=line.text,
        )

    def _check(request: Request, service: bool = True) -> None:
        if request.path_params["system_id"] != ctx.unit:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "ComputerSystem", request.path_params["system_id"]
            )
        if service and request.path_params["service_id"] != CONSOLE:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "LogService", request.path_params["service_id"]
            )

    async def services(request: Request) -> Response:
        _check(request, service=False)
        members = page(request, [console_path])
        return respond(
            collection("LogServiceCollection", services_path, "Log Service Collection", members)
        )

    async def console(request: Request) -> Response:
        _check(request)
        return respond(
            log_service(
                console_path,
                id=CONSOLE,
                name=f"Serial console of {ctx.unit}",
                capacity=ctx.console.capacity,
                entry_type="OEM",
            )
        )

    async def entries(request: Request) -> Response:
        _check(request)
        return entries_response(request, entries_path, "Console lines", ctx.console.lines(), entry)

    async def one_entry(request: Request) -> Response:
        _check(request)
        raw = request.path_params["entry_id"]
        line = ctx.console.get(int(raw)) if raw.isdigit() else None
        if line is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "LogEntry", raw)
        return respond(entry(line))

    async def clear(request: Request) -> Response:
        _check(request)
        await read_object(request)
        ctx.console.clear()
        ctx.log.info("console log cleared")
        return no_content()

    base = "/redfish/v1/Systems/{system_id}/LogServices"
    return [
        route(base, GET=services),
        route(f"{base}/{{service_id}}", GET=console),
        route(f"{base}/{{service_id}}/Entries", GET=entries),
        route(f"{base}/{{service_id}}/Entries/{{entry_id}}", GET=one_entry),
        route(f"{base}/{{service_id}}/Actions/{CLEAR_ACTION}", POST=clear),
    ]

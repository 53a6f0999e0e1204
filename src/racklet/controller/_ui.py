"""The dashboard's own endpoints under ``/ui/v1``: login, session, one snapshot and one live
stream for the whole page.

Why a separate stream: a page shows several kinds at once (units, the rack, rollouts, ...);
``/ui/v1/watch`` merges the store's watches of those kinds into one server-sent-event stream,
so a page holds one connection. Each event's ``id`` says how far the stream got: the browser's
``EventSource`` sends it back as ``Last-Event-ID`` when it reconnects by itself (after a
controller restart, say), and the stream resumes after it (the id holds each kind's own
version, see :func:`_positions`); a version older than the store's
history is a ``410`` and the page takes a fresh snapshot. Everything but ``login`` needs a
session (or a bearer token); the actions themselves go to ``/api/v1`` like the CLI's.

The page itself (``/``) is answered here too, not by the static files: to a browser with a
valid session it carries the session and the snapshot inside it (a JSON data block, which the
Content-Security-Policy allows as it is never run), so the first render needs the HTML and the
script, not two more requests and connections after them (docs/benchmarks.md, "The dashboard's
first render, round 3").
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from racklet.api import BY_PLURAL, KindInfo, to_dict
from racklet.controller._resources_http import read_body
from racklet.controller._sessions import COOKIE, Session, SessionKeeper
from racklet.controller._status import status_response
from racklet.controller._tokens import Caller
from racklet.controller._ui_history import RACK_FIELDS, UNIT_FIELDS, UnitHistory
from racklet.redfish import RedfishClientError
from racklet.store import Change, Expired, Store
from racklet.web import HEADERS, STATIC_DIR

UI_KINDS = ("racks", "computeunits", "releases", "rollouts", "gitsources", "faults")
"""What a page may watch (a kind missing from this build is skipped); never ApiTokens."""
KEEPALIVE_SECONDS = 5.0
MAX_CONSOLE_LINES = 500
MAX_HISTORY_UNITS = 64
NO_STORE = {"Cache-Control": "no-store"}
"""Session and snapshot answers, and the page that carries them: never kept by a cache."""
FIRST_DATA = "racklet-first"
"""The id of the page's data block: ``{"session": ..., "snapshot": ...}``."""


class ConsoleSource(Protocol):
    """Where the controller reads a unit's UART log (its BMC's console LogService) and its
    Redfish facts, under the controller's own identity: the browser never gets BMC
    credentials and never talks to a BMC."""

    async def console_entries(self, system_id: str, skip: int = 0) -> list[str]: ...

    async def get(self, path: str) -> dict[str, Any]: ...


_FACTS = (
    "Manufacturer", "Model", "SerialNumber", "PartNumber", "SKU", "BiosVersion", "PowerState",
    "IndicatorLED", "LocationIndicatorActive", "Status", "BootProgress", "Boot",
    "ProcessorSummary", "MemorySummary", "HostName", "UUID",
)  # fmt: skip


_CERT_FACTS = (
    "Subject", "Issuer", "ValidNotBefore", "ValidNotAfter", "SerialNumber", "Fingerprint",
)  # fmt: skip


def _kinds(request: Request) -> list[KindInfo]:
    text = request.query_params.get("kinds", "")
    wanted = [k for k in text.split(",") if k] or list(UI_KINDS)
    unknown = [k for k in wanted if k not in UI_KINDS]
    if unknown:
        raise HTTPException(400, f"kinds: {', '.join(unknown)} not watchable here")
    return [BY_PLURAL[k] for k in wanted if k in BY_PLURAL]


def _cookie(value: str, max_age: int) -> str:
    return f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"


def _session_body(session: Session, rack: str) -> dict[str, Any]:
    caller = session.caller
    return {
        "principal": caller.name,
        "role": caller.role,
        "units": sorted(caller.units),
        "csrf": session.csrf,
        "expires": session.expires,
        "rack": rack,
        "kinds": [k for k in UI_KINDS if k in BY_PLURAL],
    }


def ui_router(
    store: Store,
    sessions: SessionKeeper,
    authorised: Any,
    rack_name: str,
    consoles: Mapping[str, ConsoleSource] | None = None,
    history: UnitHistory | None = None,
) -> APIRouter:
    # The dashboard's own routes: not part of the public API's OpenAPI document.
    router = APIRouter(prefix="/ui/v1", include_in_schema=False)
    guard = [Depends(authorised)]

    @router.post("/login")
    async def login(request: Request) -> Response:
        body = await read_body(request)
        if not isinstance(body, dict) or not (body.get("token") or body.get("code")):
            raise HTTPException(400, 'body: {"token": ...} or {"code": ...} is required')
        if body.get("code"):
            issued = sessions.redeem(str(body["code"]))
            refused = "the login code is not valid (unknown, used or expired)"
        else:
            issued = await sessions.login(str(body["token"]))
            refused = "the token is not valid (unknown, revoked or expired)"
        if issued is None:
            return status_response(401, refused)
        cookie, session = issued
        request.scope.setdefault("state", {})["principal"] = session.caller
        response = JSONResponse(_session_body(session, rack_name))
        max_age = max(1, int(session.expires - time.time()))
        response.headers["set-cookie"] = _cookie(cookie, max_age)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        cookie = request.cookies.get(COOKIE, "")
        if cookie:
            sessions.logout(cookie)
        response = status_response(200, "logged out", reason="OK")
        response.headers["set-cookie"] = _cookie("", 0)
        return response

    @router.get("/session", dependencies=guard)
    async def session(request: Request) -> Response:
        cookie = request.cookies.get(COOKIE, "")
        found = await sessions.session(cookie) if cookie else None
        if found is None:  # a bearer caller: no cookie, so no CSRF token either
            caller: Caller = request.scope["state"]["principal"]
            return JSONResponse({"principal": caller.name, "role": caller.role, "csrf": ""})
        return JSONResponse(_session_body(found, rack_name), headers=NO_STORE)

    @router.post("/login-codes", dependencies=guard)
    async def login_code(request: Request) -> Response:
        caller: Caller = request.scope["state"]["principal"]
        if caller.role != "admin":
            raise HTTPException(403, "only an admin may make login codes")
        code, expires = sessions.new_code()
        return JSONResponse({"code": code, "expires": expires, "path": f"/#code={code}"}, 201)

    @router.get("/snapshot", dependencies=guard)
    async def snapshot(request: Request) -> Response:
        """Every object of the kinds asked for, and the version to watch from."""
        return JSONResponse(await _snapshot(store, _kinds(request)), headers=NO_STORE)

    @router.get("/schemas", dependencies=guard)
    async def schemas(request: Request) -> Response:
        """The JSON schema of each kind's spec (the fault form is built from it)."""
        return JSONResponse(
            {i.plural: i.model.model_json_schema(by_alias=True) for i in _kinds(request)}
        )

    @router.get("/units/{name}/console", dependencies=guard)
    async def console(name: str, skip: int = 0) -> Response:
        """The unit's console lines from ``skip`` on (the page asks again for the next ones)."""
        source = (consoles or {}).get(name)
        if source is None:
            return status_response(404, f"no console for computeunit {name!r}")
        try:
            lines = await source.console_entries(name, skip=max(0, skip))
        except RedfishClientError as exc:
            return status_response(503, f"the BMC of {name} did not give its console: {exc}")
        following = max(0, skip) + len(lines)
        return JSONResponse({"lines": lines[-MAX_CONSOLE_LINES:], "next": following})

    @router.get("/units/{name}/redfish", dependencies=guard)
    async def redfish_facts(name: str) -> Response:
        """The unit's ComputerSystem as its BMC reports it now (selected properties), and
        its identity certificate's names and validity (``IdentityCertificate``)."""
        source = (consoles or {}).get(name)
        if source is None:
            return status_response(404, f"no BMC known for computeunit {name!r}")
        try:
            system = await source.get(f"/redfish/v1/Systems/{name}")
        except RedfishClientError as exc:
            return status_response(503, f"the BMC of {name} did not answer: {exc}")
        facts = {key: system[key] for key in _FACTS if key in system}
        # The unit's identity certificate (the BMC holds it for the unit): who and until when.
        with contextlib.suppress(RedfishClientError):
            cert = await source.get(f"/redfish/v1/Systems/{name}/Certificates/1")
            facts["IdentityCertificate"] = {k: cert[k] for k in _CERT_FACTS if k in cert}
        return JSONResponse(facts)

    @router.get("/history", dependencies=guard)
    async def recent(units: str = "", rack: bool = False) -> Response:
        """The last hour's samples (:mod:`._ui_history`) of the units named (comma-separated)
        and, with ``rack=true``, of the rack: what the charts start with."""
        names = [n for n in units.split(",") if n]
        if len(names) > MAX_HISTORY_UNITS:
            raise HTTPException(400, f"units: at most {MAX_HISTORY_UNITS} at once")
        rings = {} if history is None else history.units
        return JSONResponse(
            {
                "intervalSeconds": None if history is None else history.interval,
                "unitFields": list(UNIT_FIELDS),
                "rackFields": list(RACK_FIELDS),
                "units": {n: rings[n].rows() for n in names if n in rings},
                "rack": history.rack.rows() if rack and history is not None else [],
            }
        )

    @router.get("/watch", dependencies=guard)
    async def watch(request: Request) -> Response:
        since_text = request.headers.get("last-event-id") or request.query_params.get(
            "resourceVersion", ""
        )
        infos = _kinds(request)
        return await _merged_watch(store, infos, _positions(since_text, infos))

    return router


def page_router(store: Store, sessions: SessionKeeper, rack_name: str) -> APIRouter:
    """``/`` and ``/index.html``: the dashboard's page, with its first data for a session."""
    router = APIRouter(include_in_schema=False)
    template = (STATIC_DIR / "index.html").read_text()  # 2.5 KB, read once at start
    head, marker, tail = template.partition("</head>")
    kinds = [BY_PLURAL[k] for k in UI_KINDS if k in BY_PLURAL]

    async def page(request: Request) -> Response:
        cookie = request.cookies.get(COOKIE, "")
        found = await sessions.session(cookie) if cookie else None
        text = template
        if found is not None and marker:
            first = {"session": _session_body(found, rack_name)}
            first["snapshot"] = await _snapshot(store, kinds)
            text = head + _data_block(first) + marker + tail
        return _html(text, request)

    router.add_api_route("/", page, methods=["GET"])
    router.add_api_route("/index.html", page, methods=["GET"])
    return router


def _data_block(data: Any) -> str:
    """A JSON data block that no text inside can end early (``<`` is escaped)."""
    text = json.dumps(data, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{FIRST_DATA}">{text}</script>\n'


def _html(text: str, request: Request) -> Response:
    """The page with the static files' headers (CSP and the rest), gzipped if asked: it
    carries a snapshot of the rack (about 2 KB a unit)."""
    body = text.encode()
    headers = {k.decode(): v.decode() for k, v in HEADERS} | NO_STORE | {"Vary": "Cookie"}
    if len(body) > 1024 and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, 6)
        headers |= {"Content-Encoding": "gzip", "Vary": "Cookie, Accept-Encoding"}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


async def _snapshot(store: Store, infos: list[KindInfo]) -> dict[str, Any]:
    items: dict[str, list[Any]] = {}
    revisions = []
    for info in infos:
        objects, revision = await store.list_with_revision(info.model)
        items[info.plural] = [to_dict(o) for o in objects]
        revisions.append(revision)
    since = min(revisions) if revisions else 0  # replays a little at worst: idempotent
    return {"resourceVersion": str(since), "items": items}


def _sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _positions(text: str, infos: list[KindInfo]) -> dict[str, int]:
    """Where each kind's watch starts: one version for all (a snapshot's), or an event id
    ``racks:5,computeunits:7`` (each kind's own: the kinds' changes interleave out of order
    when a backlog is replayed, so one number could skip some)."""
    problem = "resourceVersion: take it from /ui/v1/snapshot or the last event's id"
    if text.isdigit():
        return {info.plural: int(text) for info in infos}
    positions: dict[str, int] = {}
    for part in text.split(","):
        plural, _, number = part.partition(":")
        if not number.isdigit():
            raise HTTPException(400, problem)
        positions[plural] = int(number)
    if any(info.plural not in positions for info in infos):
        raise HTTPException(400, problem)
    return positions


def _event_id(positions: dict[str, int]) -> str:
    return ",".join(f"{plural}:{number}" for plural, number in positions.items())


async def _merged_watch(store: Store, infos: list[KindInfo], since: dict[str, int]) -> Response:
    """Open every watch before answering, so a too-old version is a plain 410."""
    iterators = [store.watch(info.model, since[info.plural]).__aiter__() for info in infos]
    plural_of = {info.kind: info.plural for info in infos}

    async def close_all() -> None:
        for it in iterators:
            with contextlib.suppress(Exception):
                await it.aclose()  # type: ignore[attr-defined]

    try:
        for it in iterators:
            await anext(it)  # a BOOKMARK at once, or Expired
    except Expired:
        await close_all()
        raise

    async def stream() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[Change | Exception] = asyncio.Queue(maxsize=1000)

        async def pump(it: AsyncIterator[Change]) -> None:
            try:
                async for change in it:
                    await queue.put(change)
            except Exception as exc:  # ends the stream with an error event
                await queue.put(exc)

        pumps = [asyncio.create_task(pump(it), name="ui-watch") for it in iterators]
        positions = {info.plural: since[info.plural] for info in infos}
        try:
            yield b"retry: 1000\n\n"
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        item = await queue.get()
                except TimeoutError:
                    yield _sse("bookmark", {}, _event_id(positions))
                    continue
                if isinstance(item, Exception):
                    code = 410 if isinstance(item, Expired) else 503
                    yield _sse("error", {"code": code, "message": str(item)})
                    return
                plural = plural_of.get(item.kind, "")
                positions[plural] = max(positions.get(plural, 0), item.revision)
                if item.type == "BOOKMARK" or item.object is None:
                    continue
                body = {"type": item.type, "object": to_dict(item.object)}
                yield _sse("change", body, _event_id(positions))
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await close_all()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


__all__ = ["UI_KINDS", "page_router", "ui_router"]

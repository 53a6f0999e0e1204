"""The controller's HTTP surfaces: the API listener and the mutual-TLS machine listener.

API listener: ``/api/v1/...`` behind bearer tokens with roles (:mod:`._tokens`), and the open,
read-only ``/metrics`` (OpenMetrics) and the dashboard's files at ``/``; the dashboard's
``/ui/v1`` endpoints (:mod:`._ui`) need a session (:mod:`._sessions`) or a token. Every error
is a Kubernetes-style ``Status`` object, never a traceback. Every state-changing request is
written to the audit log (:mod:`racklet.audit`), refused ones included.

Machine listener: ``/machine/v1/heartbeat``, where a unit's OS agent proves it is up; the
client certificate's CN must name the unit it reports for. The boot server is mounted beside
it by the process entry point.

Writes go to the store only; the reconcilers act on them (the API never calls a BMC).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    ComputeUnit,
    Event,
    MicroVM,
    ObjectReference,
    Rack,
    find_condition,
    to_dict,
    validate,
)
from racklet.api._meta import Model
from racklet.audit import (
    AuditFilter,
    AuditLog,
    AuditMiddleware,
    audit_files,
    parse_since,
    read_records,
)
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.controller._metrics import ControllerMetrics
from racklet.controller._openapi import install_openapi
from racklet.controller._p2p import record_dropped_peers
from racklet.controller._rack_actions import Slots, rack_actions_router
from racklet.controller._resources_http import read_body, read_capped, resource_router
from racklet.controller._sessions import SessionKeeper
from racklet.controller._status import error_response, install_error_handlers, status_response
from racklet.controller._stress import add_stress_route, job_for_heartbeat
from racklet.controller._tokens import Authenticator, TokenRequest, authorise, token_router
from racklet.controller._ui import ConsoleSource, page_router, ui_router
from racklet.controller._ui_history import UnitHistory
from racklet.controller._workloads import (
    MAX_CONSOLE_WAIT_SECONDS,
    ConsoleUnavailable,
    VmConsoles,
    exchange,
    standby_images,
)
from racklet.errors import RackletError
from racklet.limits import LIMITS, parse_json
from racklet.log import get_logger
from racklet.metrics import metrics_response
from racklet.net import peer_identity, unit_of
from racklet.store import Conflict, Store, StoreError
from racklet.web import static_app

log = get_logger("controller.http")

Enqueue = Callable[[str, str], None]
_WRITE_ATTEMPTS = 8


def _list(kind: str, items: list[Any]) -> dict[str, Any]:
    return {"apiVersion": "racklet.dev/v1alpha1", "kind": kind, "items": items}


async def _json_body(request: Request) -> Any:
    limit = LIMITS.max_small_body_bytes
    return parse_json(await read_capped(request, limit), max_bytes=limit)


class EventBody(Model):
    """What a client (GitOps, a script) may say happened: the server fills in the rest."""

    involved_object: ObjectReference
    type: Literal["Normal", "Warning"] = "Normal"
    reason: Annotated[str, Field(min_length=1, max_length=128)]
    message: Annotated[str, Field(max_length=4096)] = ""


def create_api_app(
    store: Store,
    *,
    token: str,
    metrics: ControllerMetrics,
    enqueue: Enqueue,
    rack_name: str,
    audit: AuditLog | None = None,
    consoles: Mapping[str, ConsoleSource] | None = None,
    slots: Slots | None = None,
    state_dir: Path | None = None,
    history: UnitHistory | None = None,
    vm_consoles: VmConsoles | None = None,
) -> FastAPI:
    """``token`` is the rack's admin token (racklet.yaml); ``audit`` receives a line for every
    state-changing request (none: not audited, for tests of other things); ``consoles`` are
    the units' BMC clients the dashboard reads consoles through; ``slots`` the hardware side's
    control endpoint and ``state_dir`` the rack's (for slot hot-swap and factory reset);
    ``history`` the units' last hour for the dashboard's charts; ``vm_consoles`` reads the
    MicroVMs' consoles from their agents."""
    app = FastAPI(title="Racklet", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    authenticator = Authenticator(store, token)
    install_openapi(app, {"/api/v1/events": EventBody, "/api/v1/tokens": TokenRequest})
    sessions = SessionKeeper(store, authenticator, token)

    async def authorised(request: Request) -> None:
        await authorise(request, authenticator, sessions)

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorised)])

    @api.post("/computeunits/{name}/power-cycle", status_code=202)
    async def power_cycle(name: str) -> Response:
        request_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        for _ in range(_WRITE_ATTEMPTS):
            unit = await store.get(ComputeUnit, name)
            unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = request_id
            try:
                await store.update(unit)
            except Conflict:
                continue
            enqueue("ComputeUnit", name)
            return status_response(
                202,
                f"power cycle of computeunit {name!r} requested",
                reason="Accepted",
                details={"name": name, "kind": "computeunit", "requestId": request_id},
            )
        raise Conflict("ComputeUnit", name, "", "changing")

    add_stress_route(api, store, enqueue)

    @api.get("/microvms/{name}/console")
    async def vm_console(
        name: str,
        skip: int = Query(0, ge=0),
        wait: float = Query(0.0, ge=0.0, le=MAX_CONSOLE_WAIT_SECONDS),
    ) -> Response:
        """A MicroVM's console from line ``skip`` on, read from its unit's agent; with
        ``wait``, a long poll for the next line (``racklet console microvm/NAME -f``)."""
        if vm_consoles is None:
            return status_response(404, "this controller reads no MicroVM consoles")
        try:
            return JSONResponse(await vm_consoles.read(name, skip, wait))
        except ConsoleUnavailable as exc:
            return status_response(exc.code, str(exc))

    @api.get("/events")
    async def list_events(
        name: str | None = None, kind: str | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> JSONResponse:
        events = await store.events(name, limit, kind)
        return JSONResponse(_list("EventList", [to_dict(e) for e in events]))

    @api.post("/events", status_code=201)
    async def record_event(request: Request) -> JSONResponse:
        body = validate(EventBody, await read_body(request))
        ref = body.involved_object
        event = Event.about(ref.kind, ref.name, body.reason, body.message, body.type)
        return JSONResponse(to_dict(await store.record_event(event)), status_code=201)

    @api.get("/audit")
    async def read_audit(
        since: str | None = None,
        principal: str | None = None,
        component: str | None = None,
        limit: int = Query(100, ge=1, le=10000),
    ) -> JSONResponse:
        """The newest audit records of the rack (for the dashboard; admin only)."""
        if audit is None:
            return status_response(404, "this controller keeps no audit log")
        try:
            after = parse_since(since) if since else None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        where = AuditFilter(after, principal or None, component or None)
        root = audit.path.parent.parent  # the state dir: controller/ or controller-N/ is in it
        records = await asyncio.to_thread(
            lambda: read_records(audit_files(root), where, strict=False)
        )
        return JSONResponse(_list("AuditRecordList", records[-limit:]))

    app.include_router(api)
    app.include_router(token_router(store, authenticator.key, [Depends(authorised)]))
    app.include_router(rack_actions_router(slots, state_dir, rack_name, [Depends(authorised)]))
    app.include_router(resource_router(store, enqueue, [Depends(authorised)]))

    @app.get("/metrics")
    async def openmetrics(request: Request) -> Response:
        return metrics_response(metrics.registry, request)

    @app.get("/ui/v1/units", dependencies=[Depends(authorised)], include_in_schema=False)
    async def ui_units() -> JSONResponse:
        return JSONResponse(await _summary(store, rack_name))

    @app.get("/openapi/v3", include_in_schema=False)
    async def openapi(_: None = Depends(authorised)) -> JSONResponse:
        """The OpenAPI 3.1 document (for clients and API fuzzers; docs/control-plane.md).

        Built once, in a thread: it takes about 0.1 s, too long to hold the event loop."""
        return JSONResponse(await asyncio.to_thread(app.openapi))

    app.include_router(ui_router(store, sessions, authorised, rack_name, consoles, history))
    app.include_router(page_router(store, sessions, rack_name))

    @app.api_route(
        "/api/{rest:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def unknown_api(rest: str, _: None = Depends(authorised)) -> Response:
        return status_response(404, f"no API path /api/{rest}")

    app.mount("/", static_app(), name="web")
    if audit is not None:
        app.add_middleware(AuditMiddleware, audit=audit, component="api", describe=api_verb)
    return app


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def api_verb(method: str, path: str) -> tuple[str, str]:
    """(verb, object) of an API request: ``patch computeunits/unit-1``, ``power-cycle ...``."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["ui", "v1"] and len(parts) == 3:
        return f"dashboard-{parts[2]}", "dashboard"  # login, logout, login-codes
    if parts[:2] != ["api", "v1"]:
        return method, path
    rest = parts[2:]
    if method == "POST" and len(rest) == 3 and rest[2] != "status":
        return rest[2], "/".join(rest[:2])
    verb = _VERBS.get(method, method)
    if rest[2:] == ["status"]:
        verb += "-status"
        rest = rest[:2]
    return verb, "/".join(rest)


async def _summary(store: Store, rack_name: str) -> dict[str, Any]:
    """What the live page shows: a small, read-only projection without secrets."""
    units = []
    for unit in sorted(await store.list(ComputeUnit), key=lambda u: u.spec.slot):
        ready = find_condition(unit.status.conditions, "Ready")
        units.append(
            {
                "name": unit.metadata.name,
                "slot": unit.spec.slot,
                "power": unit.spec.power,
                "phase": unit.status.phase,
                "powerWatts": unit.status.power_watts,
                "temperatureCelsius": unit.status.temperature_celsius,
                "reason": ready.message if ready is not None and ready.status != "True" else "",
            }
        )
    rack: dict[str, Any] | None = None
    for candidate in await store.list(Rack):
        if candidate.metadata.name == rack_name:
            rack = {
                "name": rack_name,
                "psuRatedWatts": candidate.spec.psu_rated_watts,
                "powerWatts": candidate.status.power_watts,
                "unitsRunning": candidate.status.units_running,
            }
    return {"rack": rack, "units": units}


def create_machine_app(
    heartbeats: HeartbeatRegistry,
    *,
    enqueue: Enqueue,
    boot_app: ASGIApp | None = None,
    store: Store | None = None,
) -> ASGIApp:
    """With ``store``: stress jobs wait there for their unit's heartbeat, and a heartbeat also
    carries the unit's MicroVM reports and is answered with its VM assignments and the images
    it should hold ready (``racklet.controller._workloads``), all in the reply's ``details``.

    A heartbeat's POST is served ahead of FastAPI's stack (:class:`_Heartbeats`): every unit
    sends one every interval, 125 a second from five units of a twin at speed 50, and the
    stack's middleware and dependency solving were a third of each one's CPU."""
    app = FastAPI(title="Racklet machines", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.post(HEARTBEAT_PATH)  # here for its other methods' 405 (and the same code)
    async def heartbeat(request: Request) -> Response:
        try:
            return await beat(request)
        except RackletError as exc:  # bad input, an unavailable store: a Status, no 5xx trace
            return error_response(exc)

    async def beat(request: Request) -> Response:
        body = validate(HeartbeatBody, await _json_body(request))
        identity = peer_identity(request.scope)
        if unit_of(identity) != body.unit:  # a unit speaks for itself only
            shown = identity or "no role identity"
            return status_response(403, f"the certificate is {shown}, not unit {body.unit!r}")
        heartbeats.record(body)
        if heartbeats.news(body.unit):  # else it waits for the unit's next look
            enqueue("ComputeUnit", body.unit)
        job = None if store is None else await job_for_heartbeat(store, body.unit, body.stress_job)
        details: dict[str, Any] = {} if job is None else {"stressJob": job.model_dump()}
        if store is not None:
            try:
                await record_dropped_peers(store, body)
            except StoreError as exc:
                log.warning("heartbeat of %s: dropped peers not recorded: %s", body.unit, exc)
            written: set[str] = set()
            try:
                vms = await store.list(MicroVM)  # once a heartbeat: a list is a thread's hop
                details["microvms"] = await exchange(
                    store, body.unit, body.microvms, body.agent_url, written=written, vms=vms
                )
                details["vmImages"] = await standby_images(store, body.unit, vms=vms)
            except StoreError as exc:  # the heartbeat itself is recorded; VMs wait for the next
                log.warning("heartbeat of %s: MicroVMs not exchanged: %s", body.unit, exc)
            for name in written:  # a new phase (an end: restart, a set's count) is seen now
                enqueue("MicroVM", name)
        return status_response(200, "heartbeat recorded", reason="OK", details=details or None)

    if boot_app is not None:
        app.mount("/boot/v1", boot_app, name="boot")
    return _Heartbeats(request_response(heartbeat), app)


HEARTBEAT_PATH = "/machine/v1/heartbeat"


class _Heartbeats:
    """The machine listener's hot path: ``POST`` :data:`HEARTBEAT_PATH` goes straight to its
    endpoint (which answers every error as a ``Status`` itself), everything else to
    ``rest``."""

    def __init__(self, endpoint: ASGIApp, rest: ASGIApp) -> None:
        self._endpoint = endpoint
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == HEARTBEAT_PATH
            and scope["method"] == "POST"
        ):
            await self._endpoint(scope, receive, send)
        else:
            await self._rest(scope, receive, send)

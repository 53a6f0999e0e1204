"""The controller's HTTP surfaces: the API listener and the mutual-TLS machine listener.

API listener: ``/api/v1/...`` behind a bearer token (constant-time compare), and the open,
read-only ``/metrics`` (OpenMetrics), ``/ui/v1/units`` and the live page at ``/``. Every error
is a Kubernetes-style ``Status`` object, never a traceback.

Machine listener: ``/machine/v1/heartbeat``, where a unit's OS agent proves it is up; the
client certificate's CN must name the unit it reports for. The boot server is mounted beside
it by the process entry point.

Writes go to the store only; the reconcilers act on them (the API never calls a BMC).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    ComputeUnit,
    InvalidObject,
    Rack,
    find_condition,
    to_dict,
    validate,
)
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.controller._metrics import CONTENT_TYPE, ControllerMetrics
from racklet.controller._status import install_error_handlers, invalid, status_response
from racklet.net import peer_common_name
from racklet.store import Conflict, Store
from racklet.web import static_app

Enqueue = Callable[[str, str], None]
_PATCHABLE = {("spec", "power")}
_WRITE_ATTEMPTS = 8
_MAX_BODY = 64 * 1024


def _list(kind: str, items: list[Any]) -> dict[str, Any]:
    return {"apiVersion": "racklet.dev/v1alpha1", "kind": kind, "items": items}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _changed_paths(before: Any, after: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if isinstance(before, dict) and isinstance(after, dict):
        paths: set[tuple[str, ...]] = set()
        for key in before.keys() | after.keys():
            paths |= _changed_paths(before.get(key), after.get(key), (*prefix, key))
        return paths
    return set() if before == after else {prefix}


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise HTTPException(413, f"the body is larger than {_MAX_BODY} bytes")
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidObject([f"body: not JSON ({exc})"]) from exc


def create_api_app(
    store: Store,
    *,
    token: str,
    metrics: ControllerMetrics,
    enqueue: Enqueue,
    rack_name: str,
) -> FastAPI:
    app = FastAPI(title="Racklet", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    expected = f"Bearer {token}".encode()

    def authorised(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorised)])

    @api.get("/racks")
    async def list_racks() -> JSONResponse:
        return JSONResponse(_list("RackList", [to_dict(r) for r in await store.list(Rack)]))

    @api.get("/racks/{name}")
    async def get_rack(name: str) -> JSONResponse:
        return JSONResponse(to_dict(await store.get(Rack, name)))

    @api.get("/computeunits")
    async def list_units() -> JSONResponse:
        units = await store.list(ComputeUnit)
        return JSONResponse(_list("ComputeUnitList", [to_dict(u) for u in units]))

    @api.get("/computeunits/{name}")
    async def get_unit(name: str) -> JSONResponse:
        return JSONResponse(to_dict(await store.get(ComputeUnit, name)))

    @api.patch("/computeunits/{name}")
    async def patch_unit(name: str, request: Request) -> Response:
        patch = await _json_body(request)
        if not isinstance(patch, dict):
            return invalid(["body: a JSON merge patch must be an object"])
        pinned = (patch.get("metadata") or {}).get("resourceVersion")
        for _ in range(_WRITE_ATTEMPTS):
            current = await store.get(ComputeUnit, name)
            before = to_dict(current)
            after = merge_patch(before, patch)
            if pinned is not None:
                after["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"]
            frozen = sorted(p for p in _changed_paths(before, after) if p not in _PATCHABLE)
            if frozen:
                fields = ", ".join(".".join(p) for p in frozen)
                return invalid(
                    [f"{'.'.join(frozen[0])}: only spec.power may be changed ({fields})"]
                )
            updated = validate(ComputeUnit, after)
            if pinned is not None:
                updated.metadata.resource_version = str(pinned)
            try:
                stored = await store.update(updated)
            except Conflict:
                if pinned is not None:
                    raise
                continue
            enqueue("ComputeUnit", name)
            return JSONResponse(to_dict(stored))
        raise Conflict("ComputeUnit", name, "", "changing")

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

    @api.get("/events")
    async def list_events(
        name: str | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> JSONResponse:
        events = await store.events(name, limit)
        return JSONResponse(_list("EventList", [to_dict(e) for e in events]))

    app.include_router(api)

    @app.get("/metrics")
    async def openmetrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/ui/v1/units")
    async def ui_units() -> JSONResponse:
        return JSONResponse(await _summary(store, rack_name))

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown_api(rest: str, _: None = Depends(authorised)) -> Response:
        return status_response(404, f"no API path /api/{rest}")

    app.mount("/", static_app(), name="web")
    return app


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
) -> FastAPI:
    app = FastAPI(title="Racklet machines", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.post("/machine/v1/heartbeat")
    async def heartbeat(request: Request) -> Response:
        body = validate(HeartbeatBody, await _json_body(request))
        caller = peer_common_name(request.scope)
        if caller != body.unit:
            return status_response(
                403, f"the client certificate names {caller!r}, not unit {body.unit!r}"
            )
        heartbeats.record(body)
        enqueue("ComputeUnit", body.unit)
        return status_response(200, "heartbeat recorded", reason="OK")

    if boot_app is not None:
        app.mount("/boot/v1", boot_app, name="boot")
    return app

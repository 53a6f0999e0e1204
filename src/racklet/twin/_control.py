"""The hardware side's control endpoint: faults and hot-swap, asked for over mutual TLS.

The management side never imports the twin; it asks this endpoint (served by the twin
process on ``control.url``) to inject and clear faults and to pull or insert boards. Only a
client whose rack-CA certificate carries the controller's role identity
(``spiffe://<rack>/controller``) is served: the listener requires a client certificate, checks
the rack's CRL as it changes, and the app pins that identity, so a BMC's, the RMC's or a unit's
identity cannot break the rack. Every refusal is a Kubernetes ``Status`` body (409 for a
conflict with the rack's state, 422 for bad parameters, 404 for a missing slot), never a 5xx.

Routes (all JSON, under ``/control/v1``)::

    GET    /capabilities          {"kinds": {kind: "" | why it cannot be done here}}
    GET    /faults                {"items": [active fault, ...]}
    PUT    /faults/{id}           {"kind", "params", "targets"} -> the active fault
    DELETE /faults/{id}           {"cleared": bool}
    GET    /slots                 {"items": [{"slot", "unit", "present"}, ...]}
    POST   /slots/{n}/pull        -> the slot
    POST   /slots/{n}/insert      {"profile"?, "newBoard"?} -> the slot
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from racklet.limits import InputRejected, parse_json
from racklet.log import get_logger
from racklet.net import peer_identity
from racklet.twin._faults import BmcControl, FaultEngine, FaultRefused
from racklet.twin._unit import TwinUnit

CONTROLLER_IDENTITY = "spiffe://rack-1/controller"
"""The role identity of the only client this endpoint serves (the controller's; the process
passes its own rack's)."""
MAX_BODY_BYTES = 64 * 1024
PREFIX = "/control/v1"
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            413: "RequestEntityTooLarge", 422: "Invalid"}  # fmt: skip


def status(code: int, message: str) -> JSONResponse:
    """A Kubernetes ``Status`` body, as the controller's API answers errors."""
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success" if code < 400 else "Failure",
        "code": code,
        "reason": _REASONS.get(code, "Unknown"),
        "message": message,
    }
    return JSONResponse(body, status_code=code)


def _refusal(exc: FaultRefused) -> JSONResponse:
    return status(exc.code, str(exc))


class _Pinned:
    """Serves only the pinned client identity; everyone else gets 403 before any route."""

    def __init__(self, app: ASGIApp, identity: str) -> None:
        self._app, self._identity = app, identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and peer_identity(scope) != self._identity:
            response = status(403, f"the control endpoint serves only {self._identity}")
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ValueError(f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw:
        return {}
    try:
        value = parse_json(raw, max_bytes=MAX_BODY_BYTES)  # the one bounded parser
    except InputRejected as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


NewBoard = Callable[[TwinUnit], Awaitable[None]]


class ControlApp:
    """The routes over one :class:`FaultEngine`; ``new_board`` makes a slot's board new."""

    def __init__(
        self,
        engine: FaultEngine,
        *,
        new_board: NewBoard | None = None,
        identity: str = CONTROLLER_IDENTITY,
    ) -> None:
        self.engine = engine
        self._new_board = new_board
        self._log = get_logger("twin")
        routes = [
            Route(f"{PREFIX}/capabilities", self.capabilities, methods=["GET"]),
            Route(f"{PREFIX}/faults", self.faults, methods=["GET"]),
            Route(f"{PREFIX}/faults/{{id}}", self.put_fault, methods=["PUT"]),
            Route(f"{PREFIX}/faults/{{id}}", self.clear_fault, methods=["DELETE"]),
            Route(f"{PREFIX}/slots", self.slots, methods=["GET"]),
            Route(f"{PREFIX}/slots/{{slot:int}}/pull", self.pull, methods=["POST"]),
            Route(f"{PREFIX}/slots/{{slot:int}}/insert", self.insert, methods=["POST"]),
        ]
        self.app: ASGIApp = _Pinned(Starlette(routes=routes), identity)

    async def capabilities(self, request: Request) -> JSONResponse:
        return JSONResponse({"kinds": self.engine.capabilities()})

    async def faults(self, request: Request) -> JSONResponse:
        return JSONResponse({"items": [a.to_json() for a in self.engine.active.values()]})

    async def put_fault(self, request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return status(400, f"bad fault request: {exc}")
        kind, params, targets = body.get("kind"), body.get("params", {}), body.get("targets", [])
        if not isinstance(kind, str) or not isinstance(params, dict):
            return status(422, "a fault needs a string 'kind' and an object 'params'")
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            return status(422, "'targets' must be a list of unit names")
        try:
            applied = await self.engine.inject(request.path_params["id"], kind, params, targets)
        except FaultRefused as exc:
            return _refusal(exc)
        return JSONResponse(applied.to_json())

    async def clear_fault(self, request: Request) -> JSONResponse:
        cleared = await self.engine.clear(request.path_params["id"])
        return JSONResponse({"cleared": cleared is not None})

    async def slots(self, request: Request) -> JSONResponse:
        units = self.engine.rack.units.values()
        return JSONResponse({"items": [_slot(unit) for unit in units]})

    async def pull(self, request: Request) -> JSONResponse:
        try:
            unit = self.engine.pull(request.path_params["slot"])
        except FaultRefused as exc:
            return _refusal(exc)
        self._log.info(f"slot {unit.slot}: {unit.name} pulled")
        return JSONResponse(_slot(unit))

    async def insert(self, request: Request) -> JSONResponse:
        try:
            body = await _body(request)
        except ValueError as exc:
            return status(400, f"bad insert request: {exc}")
        slot: int = request.path_params["slot"]
        profile, new = body.get("profile"), body.get("newBoard", False)
        if not isinstance(new, bool) or not (profile is None or isinstance(profile, str)):
            return status(422, "'newBoard' must be a boolean and 'profile' a profile name")
        try:
            unit = self.engine.unit_in(slot)
            if profile is not None and profile != unit.profile.name:
                return status(
                    422,
                    f"slot {slot} takes a {unit.profile.name} in this twin (one profile per "
                    f"rack); start the rack with --profile {profile} for another",
                )
            if new and unit.present:
                raise FaultRefused(f"slot {slot} is occupied by {unit.name}", 409)
            if new and self._new_board is not None:
                await self._new_board(unit)
            self.engine.insert(slot)
        except FaultRefused as exc:
            return _refusal(exc)
        self._log.info(f"slot {slot}: {'a new board' if new else unit.name} inserted")
        return JSONResponse(_slot(unit) | {"newBoard": new})


def _slot(unit: TwinUnit) -> dict[str, Any]:
    return {
        "slot": unit.slot,
        "unit": unit.name,
        "present": unit.present,
        "profile": unit.profile.name,
    }


def new_board_wiper(bmc_dirs: Mapping[str, Path], hosts: Mapping[str, BmcControl]) -> NewBoard:
    """A new board in a known slot: a new BMC (new UUID, no certificates, no A/B state, no
    unit identity) and an empty SD card. The BMC is restarted so it makes new keys; the
    controller then certifies them through CertificateService like any first boot."""

    async def replace(unit: TwinUnit) -> None:
        state = bmc_dirs.get(unit.name)
        host = hosts.get(unit.name)
        if host is not None:
            await host.stop()
        if state is not None:
            await asyncio.to_thread(_wipe_board, state, unit.storage)
        if host is not None:
            await host.start()

    return replace


def _wipe_board(bmc_dir: Path, storage: Path) -> None:
    for name in ("uuid", "ab.json"):
        (bmc_dir / name).unlink(missing_ok=True)
    shutil.rmtree(bmc_dir / "certificates", ignore_errors=True)
    shutil.rmtree(storage, ignore_errors=True)
    storage.mkdir(parents=True, exist_ok=True)

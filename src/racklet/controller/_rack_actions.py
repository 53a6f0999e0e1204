"""Rack actions that are not a resource's spec: hot-swap a slot, factory-reset the rack.

Both go where the CLI's go, never around them: a slot pull or insert is asked of the
hardware side's control endpoint (:class:`racklet.controller._hardware.HardwareControl`,
as ``racklet slot`` asks it), and a factory reset is the signal ``racklet reset --factory``
sends to the ``racklet up`` that holds the state dir. They sit under ``/api/v1`` so the
role check (:func:`racklet.controller._tokens.refusal`: admin only, since neither names a
unit an operator holds), the dashboard's CSRF check and the audit log apply to them as to
every other write. A factory reset must name the rack in its body (``{"confirm": NAME}``),
as the CLI makes its user type it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from racklet.config import FACTORY_RESET_SIGNAL, supervisor_pid
from racklet.controller._hardware import HardwareRefused, HardwareUnreachable
from racklet.controller._resources_http import read_body
from racklet.controller._status import status_response
from racklet.errors import ConfigError
from racklet.log import get_logger

log = get_logger("controller.actions")


class Slots(Protocol):
    """The part of :class:`racklet.controller._hardware.HardwareControl` used here."""

    async def slots(self) -> list[dict[str, Any]]: ...

    async def pull(self, slot: int) -> dict[str, Any]: ...

    async def insert(
        self, slot: int, *, profile: str | None = None, new_board: bool = False
    ) -> dict[str, Any]: ...


def rack_actions_router(
    slots: Slots | None, state_dir: Path | None, rack_name: str, dependencies: list[Any]
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=dependencies)
    no_endpoint = "this rack has no hardware control endpoint (a twin started by racklet up has)"

    async def hardware(call: Any) -> Response:
        if slots is None:
            return status_response(404, no_endpoint)
        try:
            answer = await call(slots)
        except HardwareRefused as exc:
            # its refusal (no such slot, already empty) is the caller's; its failure is not
            return status_response(exc.code if 400 <= exc.code < 500 else 503, str(exc))
        except HardwareUnreachable as exc:
            return status_response(503, str(exc))
        return JSONResponse(answer)

    @router.get("/slots")
    async def list_slots() -> Response:
        async def read(s: Slots) -> Any:
            return {"kind": "SlotList", "items": await s.slots()}

        return await hardware(read)

    @router.post("/slots/{slot}/pull")
    async def pull(slot: int) -> Response:
        return await hardware(lambda s: s.pull(slot))

    @router.post("/slots/{slot}/insert")
    async def insert(slot: int) -> Response:
        return await hardware(lambda s: s.insert(slot))

    @router.post("/racks/{name}/factory-reset", status_code=202)
    async def factory_reset(name: str, request: Request) -> Response:
        body = await read_body(request)
        if name != rack_name:
            return status_response(404, f"this controller manages rack {rack_name!r}, not {name!r}")
        confirm = body.get("confirm") if isinstance(body, dict) else None
        if confirm != rack_name:
            return status_response(
                400, f'a factory reset needs the rack\'s name: {{"confirm": "{rack_name}"}}'
            )
        try:
            pid = None if state_dir is None else supervisor_pid(state_dir)
        except ConfigError as exc:
            return status_response(409, str(exc))
        if pid is None:
            return status_response(409, f"no racklet up supervises {rack_name}: run racklet reset")
        log.warning("factory reset of %s requested: signalling racklet up (pid %d)", name, pid)
        os.kill(pid, FACTORY_RESET_SIGNAL)
        return status_response(
            202,
            f"factory reset of {rack_name} started: new trust, wiped units; log in again",
            reason="Accepted",
        )

    return router


__all__ = ["Slots", "rack_actions_router"]

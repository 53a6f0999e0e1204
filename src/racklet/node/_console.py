"""The agent's MicroVM consoles over HTTPS, for the controller only.

``GET /vms/<name>/console?skip=N&wait=S`` answers the console lines of the VM's newest attempt
from line ``N`` on (at most :data:`MAX_LINES_PER_READ`), its attempt and phase, and ``next``
(where the next read starts). With ``wait`` the request is a long poll: it returns as soon
as a line after ``N`` was printed or the VM ended, or after ``S`` seconds (at most
:data:`MAX_WAIT_SECONDS`), so a follower sees lines as the guest prints them.

A console can carry what the guest's command printed, secrets included, so only the rack's
controller reads it: its client certificate must carry ``spiffe://<rack>/controller`` (the
listener asks every client for a certificate; a Prometheus scraping ``/metrics`` needs none).
The CLI and the dashboard read consoles through the controller's API, behind its tokens.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from racklet.net import peer_identity
from racklet.node._hypervisor import VmState

MAX_WAIT_SECONDS = 20.0
MAX_LINES_PER_READ = 1000
"""A reply's lines at most (each at most ``MAX_LINE_CHARS``): the reader asks again for more."""
CONSOLE_PATH = "/vms/{name}/console"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def console_route(lookup: Callable[[str], VmState | None], controller: str) -> Route:
    """The console route; ``lookup`` finds a VM's state by name, ``controller`` is the one
    SPIFFE ID allowed to read."""

    async def console(request: Request) -> JSONResponse:
        identity = peer_identity(request.scope)
        if identity != controller:
            return _error(
                403, f"only {controller} reads VM consoles, not {identity or 'anonymous'}"
            )
        name = request.path_params["name"]
        try:
            skip = int(request.query_params.get("skip", "0"))
            wait = float(request.query_params.get("wait", "0"))
        except ValueError:
            return _error(400, "skip must be an integer and wait a number of seconds")
        if skip < 0 or not 0 <= wait <= MAX_WAIT_SECONDS:
            return _error(400, f"skip must be >= 0 and wait within 0..{MAX_WAIT_SECONDS:g} s")
        state = lookup(name)
        if state is None:
            return _error(404, f"no VM {name!r} on this unit")
        if skip > state.lines_total:
            skip = 0  # the reader follows an older attempt: this one starts over
        await state.wait_past(skip, wait)
        start, lines = state.lines_from(skip, MAX_LINES_PER_READ)
        return JSONResponse(
            {
                "name": state.name,
                "attempt": state.attempt,
                "phase": state.phase,
                "exitCode": state.exit_code,
                "lines": lines,
                "next": start + len(lines),
            }
        )

    return Route(CONSOLE_PATH, console, methods=["GET"])

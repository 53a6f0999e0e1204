"""Small HTTP helpers shared by the Redfish families: JSON in and out, ``$top``/``$skip``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._errors import RedfishError

JSON_TYPE = "application/json;charset=utf-8"
ODATA_HEADERS = {"OData-Version": "4.0"}
_T = TypeVar("_T")


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(
        payload,
        status_code=status,
        media_type=JSON_TYPE,
        headers={**ODATA_HEADERS, **(headers or {})},
    )


def no_content() -> Response:
    return Response(status_code=204, headers=ODATA_HEADERS)


async def read_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a MalformedJSON error."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise RedfishError(400, "MalformedJSON") from exc
    if not isinstance(body, dict):
        raise RedfishError(400, "MalformedJSON")
    return body


def _query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise RedfishError(400, "QueryParameterValueTypeError", raw, name) from exc
    if value < 0:
        raise RedfishError(400, "QueryParameterOutOfRange", raw, name, "0 or greater")
    return value


def page(request: Request, items: Sequence[_T]) -> list[_T]:
    """``items`` after ``$skip`` and limited to ``$top``."""
    skip = _query_int(request, "$skip") or 0
    top = _query_int(request, "$top")
    window = list(items[skip:])
    return window if top is None else window[:top]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an account, and the session it came through (None for Basic)."""

    username: str
    role: str
    session_id: str | None = None


def principal(request: Request) -> Principal:
    found = request.scope.get("state", {}).get("principal")
    if not isinstance(found, Principal):
        raise RedfishError(401, "NoValidSession")
    return found


Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: str, **handlers: Endpoint) -> Route:
    """One route serving several methods (``GET=..., PATCH=...``), so a 405 lists them all."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    methods = list(handlers)
    return Route(path, dispatch, methods=methods)

"""Small HTTP helpers shared by the Redfish families: JSON in and out, ``$top``/``$skip``,
the caller (:class:`Principal`) and one route serving several methods."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.limits import LIMITS, InputRejected, parse_json

JSON_TYPE = "application/json;charset=utf-8"
# Redfish: every response names its OData version; nothing a BMC says may be cached blindly.
ODATA_HEADERS = {"OData-Version": "4.0", "Cache-Control": "no-cache"}
JSON_SCHEMAS = "http://redfish.dmtf.org/schemas/v1"
_T = TypeVar("_T")


def described_by(body: Any) -> dict[str, str]:
    """The ``Link: <schema>; rel=describedby`` header for a resource body (if it is typed).

    It names the versioned DMTF JSON schema of the resource's ``@odata.type``.
    """
    odata_type = body.get("@odata.type") if isinstance(body, dict) else None
    if not isinstance(odata_type, str):
        return {}
    parts = odata_type.lstrip("#").split(".")
    name = ".".join(parts[:2]) if len(parts) == 3 else parts[0]
    return {"Link": f"<{JSON_SCHEMAS}/{name}.json>; rel=describedby"}


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return respond_bytes(orjson.dumps(body), body, status, headers)


def respond_bytes(
    payload: bytes, body: Any, status: int, headers: dict[str, str] | None
) -> Response:
    return Response(
        payload,
        status_code=status,
        media_type=JSON_TYPE,
        headers={**ODATA_HEADERS, **described_by(body), **(headers or {})},
    )


def no_content(headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=204, headers={**ODATA_HEADERS, **(headers or {})})


def parse_object(raw: bytes | str) -> dict[str, Any]:
    """A JSON object parsed within ``racklet.limits`` (an empty body is ``{}``).

    Too large is ``PayloadTooLarge`` (413); anything else refused (not JSON, nested too
    deep, a non-finite number, not an object) is ``MalformedJSON`` (400), Redfish's answer to
    a body that is not strict JSON.
    """
    try:
        body = parse_json(raw, max_bytes=LIMITS.max_small_body_bytes)
    except InputRejected as exc:
        if exc.status == 413:
            raise RedfishErrorReply(413, "PayloadTooLarge") from exc
        raise RedfishErrorReply(400, "MalformedJSON") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise RedfishErrorReply(400, "MalformedJSON")
    return body


async def read_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a MalformedJSON error."""
    return parse_object(await request.body())


def _query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise RedfishErrorReply(400, "QueryParameterValueTypeError", raw, name) from exc
    if value < 0:
        raise RedfishErrorReply(400, "QueryParameterOutOfRange", raw, name, "0 or greater")
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
        raise RedfishErrorReply(401, "NoValidSession")
    return found


Endpoint = Callable[[Request], Awaitable[Response]]


def route(path: str, **handlers: Endpoint) -> Route:
    """One route serving several methods (``GET=..., PATCH=...``).

    Every answer carries ``Allow`` (Redfish requires it on GET and HEAD), and so does a 405.
    """
    methods = list(handlers)
    allow = ", ".join([*methods, "HEAD"] if "GET" in methods else methods)

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        response = await handlers[method](request)
        response.headers.setdefault("Allow", allow)
        return response

    return Route(path, dispatch, methods=methods)


async def read_patch(request: Request) -> dict[str, Any]:
    """A PATCH body without its ``@odata`` annotations (which Redfish says to ignore).

    A PATCH that changes nothing is a ``NoOperation`` error, as Redfish asks.
    """
    body = {k: v for k, v in (await read_object(request)).items() if not k.startswith("@odata.")}
    if not body:
        raise RedfishErrorReply(400, "NoOperation")
    return body

"""Small HTTP helpers shared by the Redfish families: JSON in and out, ``$top``/``$skip``."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._message_registry import RedfishErrorReply
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
    return _respond_bytes(orjson.dumps(body), body, status, headers)


def _respond_bytes(
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


def etag(body: dict[str, Any]) -> str:
    """A weak ETag of a resource body: it changes whenever the representation does."""
    return _etag_of(orjson.dumps(body))


def _etag_of(serialized: bytes) -> str:
    # Bodies are built by code in a fixed key order, so equal state gives equal bytes.
    return f'W/"{hashlib.sha256(serialized).hexdigest()[:16]}"'


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def check_if_match(request: Request, current: dict[str, Any]) -> None:
    """A PATCH or DELETE with ``If-Match`` applies only to the representation it names."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return
    if etag(current).removeprefix("W/") not in _tags(header):
        raise RedfishErrorReply(412, "PreconditionFailed")


def tagged(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    """A resource with its ETag (header and ``@odata.etag``); 304 if the client's
    ``If-None-Match`` already has it."""
    serialized = orjson.dumps(body)  # once: the tag is its hash, the payload its extension
    tag = _etag_of(serialized)
    header = request.headers.get("if-none-match")
    if header and request.method in ("GET", "HEAD") and tag.removeprefix("W/") in _tags(header):
        return Response(status_code=304, headers={**ODATA_HEADERS, "ETag": tag})
    annotation = b'"@odata.etag":' + orjson.dumps(tag)
    payload = serialized[:-1] + (b"," if len(serialized) > 2 else b"") + annotation + b"}"
    return _respond_bytes(payload, body, status, {"ETag": tag})


async def read_patch(request: Request) -> dict[str, Any]:
    """A PATCH body without its ``@odata`` annotations (which Redfish says to ignore).

    A PATCH that changes nothing is a ``NoOperation`` error, as Redfish asks.
    """
    body = {k: v for k, v in (await read_object(request)).items() if not k.startswith("@odata.")}
    if not body:
        raise RedfishErrorReply(400, "NoOperation")
    return body

"""ETags of resource bodies: ``ETag``/``@odata.etag`` on GET, ``If-None-Match`` (304) and
``If-Match`` (412) on PATCH and DELETE.

A tag is a hash of the serialized body, so it changes whenever the representation does and
nothing has to remember it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import ODATA_HEADERS, respond_bytes


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
    return respond_bytes(payload, body, status, {"ETag": tag})

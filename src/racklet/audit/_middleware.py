"""The ASGI middleware that writes one audit line per state-changing request."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from racklet.audit._log import AuditLog, now

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ERROR_BODY_LIMIT = 8192


def new_request_id() -> str:
    return os.urandom(16).hex()


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if well formed, otherwise a new one."""
    for key, value in scope.get("headers", []):
        if key.lower() == REQUEST_ID_HEADER.encode():
            given = str(value.decode("latin-1"))
            if _REQUEST_ID.match(given):
                return given
    return new_request_id()


Describe = Callable[[str, str], tuple[str, str]]
"""(method, path) -> (verb, object) as the service names them."""


def _principal(scope: Scope) -> tuple[str | None, str | None]:
    who = scope.get("state", {}).get("principal")
    if who is None:
        return None, None
    name = getattr(who, "username", None) or getattr(who, "name", None)
    role = getattr(who, "role", None)
    return (str(name) if name else None), (str(role) if role else None)


def error_message(body: bytes) -> str:
    """The message of a Kubernetes Status or a Redfish error body ('' if neither)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("message"), str):
        return str(data["message"])
    error = data.get("error")
    if isinstance(error, dict):
        info = error.get("@Message.ExtendedInfo")
        if isinstance(info, list) and info and isinstance(info[0], dict):
            return str(info[0].get("Message") or info[0].get("MessageId") or "")
        return str(error.get("message", ""))
    return ""


def outcome_of(status: int) -> str:
    if status < 400:
        return "succeeded"
    return "refused" if status in (401, 403) else "failed"


class AuditMiddleware:
    """Outermost ASGI layer: one audit line per state-changing request, whatever happens."""

    def __init__(self, app: ASGIApp, audit: AuditLog, component: str, describe: Describe) -> None:
        self._app = app
        self._audit = audit
        self._component = component
        self._describe = describe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["method"] in SAFE_METHODS:
            await self._app(scope, receive, self._tagging(send, request_id, None))
            return
        seen = _Seen()
        try:
            await self._app(scope, receive, self._tagging(send, request_id, seen))
        finally:
            self._write(scope, request_id, seen)

    @staticmethod
    def _tagging(send: Send, request_id: str, seen: _Seen | None) -> Send:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
                if seen is not None:
                    seen.status = int(message["status"])
            elif (
                message["type"] == "http.response.body"
                and seen is not None
                and seen.status >= 400
                and len(seen.body) < _ERROR_BODY_LIMIT
            ):
                seen.body += message.get("body", b"")[:_ERROR_BODY_LIMIT]
            await send(message)

        return tagged

    def _write(self, scope: Scope, request_id: str, seen: _Seen) -> None:
        status = seen.status or 500  # nothing sent: the app crashed before answering
        principal, role = _principal(scope)
        client = scope.get("client")
        verb, obj = self._describe(scope["method"], scope["path"])
        entry: dict[str, Any] = {
            "time": now(),
            "component": self._component,
            "requestId": request_id,
            "principal": principal,
            "role": role,
            "source": f"{client[0]}:{client[1]}" if client else None,
            "verb": verb,
            "object": obj,
            "outcome": outcome_of(status),
            "status": status,
        }
        if status >= 400:
            entry["message"] = error_message(seen.body)[:500]
        self._audit.record(entry)


@dataclass
class _Seen:
    status: int = 0
    body: bytes = b""


def redfish_verb(method: str, path: str) -> tuple[str, str]:
    """A Redfish action is named by its action (``ComputerSystem.Reset``) on its resource;
    anything else by its method on its URI."""
    trimmed = path.rstrip("/") or "/"
    head, marker, action = trimmed.partition("/Actions/")
    if marker and action and method == "POST":
        return action, head
    return method, trimmed

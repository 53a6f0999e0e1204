"""The ASGI app: routes of every Redfish family, authentication, Redfish error bodies,
request-scoped logging and, outermost, the audit line of every state-changing request.

Every error a client can cause is a Redfish error body from the Base registry; anything
unexpected becomes ``Base.InternalError`` (500) and is logged with its traceback, never a
bare stack trace on the wire.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from racklet.audit import AuditLog, AuditMiddleware, redfish_verb
from racklet.bmc import (
    _metrics,
)
from racklet.bmc._http.auth import AuthMiddleware, send_error
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import respond
from racklet.bmc._resources import certificates as certificate_family
from racklet.bmc._resources import chassis, events, managers, root, systems
from racklet.bmc._resources import update as update_family
from racklet.bmc._resources.accounts.account_service import routes as account_routes
from racklet.bmc._resources.accounts.sessions import routes as sessions_routes
from racklet.bmc._resources.tasks import routes as task_routes
from racklet.bmc._state.accounts import Accounts
from racklet.bmc._state.certificates import CertificateStore
from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.sessions import SessionStore
from racklet.bmc._state.tasks import TaskRegistry
from racklet.log import ContextLogger

_request: contextvars.ContextVar[str | None] = contextvars.ContextVar("bmc_request", default=None)


class RequestLogger(ContextLogger):
    """Stamps the HTTP request being served (method and path) on every line it logs."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        msg, kwargs = super().process(msg, kwargs)
        current = _request.get()
        if current and not kwargs["extra"].get("request"):
            kwargs["extra"]["request"] = current
        return msg, kwargs


class _RequestScope:
    """Outermost layer: binds the request to log lines; turns crashes into InternalError."""

    def __init__(self, app: ASGIApp, log: ContextLogger) -> None:
        self._app = app
        self._log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        token = _request.set(f"{scope['method']} {scope['path']}")
        refusal = _refusal(scope)
        started = False
        status = 0

        async def tracking_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, int(message["status"])
            await send(message)

        try:
            if refusal is not None:
                await send_error(tracking_send, refusal)
            else:
                await self._app(scope, _limited(scope, receive), tracking_send)
        except _BodyTooLarge:
            if not started:
                await send_error(send, RedfishErrorReply(413, "PayloadTooLarge"))
                status = 413
        except Exception:
            self._log.exception("request failed")
            if not started:
                await send_error(send, RedfishErrorReply(500, "InternalError"))
                status = 500
        finally:
            level = 20 if scope["method"] not in ("GET", "HEAD") or status >= 400 else 10
            self._log.log(level, f"status {status}")
            _request.reset(token)


_SUPPORTED_QUERY = {"$top", "$skip"}
MAX_BODY = 64 * 1024
"""Largest request body (bytes) outside the firmware push; Redfish bodies are small."""
_UPLOADS = (update_family.MULTIPART,)


class _BodyTooLarge(Exception):
    pass


def _limit(scope: Scope) -> int:
    return update_family.MAX_IMAGE if scope["path"].rstrip("/") in _UPLOADS else MAX_BODY


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _refusal(scope: Scope) -> RedfishErrorReply | None:
    """What the request is refused for before any handler sees it, if anything."""
    if _unsupported_query(scope):
        return RedfishErrorReply(501, "QueryNotSupported")
    version = _header(scope, b"odata-version")
    if version is not None and version.strip() != "4.0":
        # Redfish: a request for an OData version the service does not support is a 412.
        return RedfishErrorReply(412, "HeaderInvalid", f"OData-Version: {version}")
    if scope["method"] in ("POST", "PATCH", "PUT") and scope["path"].rstrip("/") not in _UPLOADS:
        kind = _header(scope, b"content-type")
        if kind is not None and kind.partition(";")[0].strip().lower() != "application/json":
            # Redfish: a body in any other media type is a 415, and nothing changes.
            return RedfishErrorReply(
                415, "UnrecognizedRequestBody", resolution="Send Content-Type: application/json."
            )
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > _limit(scope):
        return RedfishErrorReply(413, "PayloadTooLarge")
    return None


def _limited(scope: Scope, receive: Receive) -> Receive:
    """``receive`` that stops a body (chunked, or lying about its length) at the limit."""
    limit, seen = _limit(scope), 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return wrapped


def _unsupported_query(scope: Scope) -> bool:
    """Redfish: a ``$`` query parameter the service does not implement is a 501."""
    if not scope["path"].startswith("/redfish"):
        return False
    query = scope.get("query_string", b"").decode("latin-1")
    keys = {unquote(part.partition("=")[0]) for part in query.split("&") if part}
    return any(key.startswith("$") and key not in _SUPPORTED_QUERY for key in keys)


async def _redfish_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RedfishErrorReply)
    return respond(exc.body(), exc.status, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = RedfishErrorReply(404, "ResourceNotFound", "Resource", request.url.path)
    elif exc.status_code == 405:
        error = RedfishErrorReply(405, "OperationNotAllowed", headers=dict(exc.headers or {}))
    else:
        error = RedfishErrorReply(exc.status_code, "InternalError")
    return respond(error.body(), error.status, error.headers)


def build_app(
    ctx: BmcContext,
    accounts: Accounts,
    sessions: SessionStore,
    tasks: TaskRegistry,
    update: update_family.UpdateSetup,
    cert_roles: Mapping[str, str] | None = None,
    certificates: CertificateStore | None = None,
    audit: AuditLog | None = None,
) -> Starlette:
    # Starlette tries routes in order: the ones polled most (systems, chassis) go first.
    routes: list[BaseRoute] = [
        *systems.routes(ctx),
        *chassis.routes(ctx),
        *root.routes(ctx),
        *sessions_routes(sessions, accounts, ctx.log),
        *account_routes(accounts, sessions, ctx.log),
        *managers.routes(ctx),
        *events.routes(ctx),
        *update_family.routes(ctx, update, tasks),
        *task_routes(tasks),
        *_metrics.routes(ctx),
        *(certificate_family.routes(ctx.log, certificates) if certificates else []),
    ]
    audited = (
        []
        if audit is None
        else [
            Middleware(
                AuditMiddleware, audit=audit, component=f"bmc/{ctx.unit}", describe=redfish_verb
            )
        ]
    )
    return Starlette(
        routes=routes,
        middleware=[
            *audited,
            Middleware(_RequestScope, log=ctx.log),
            Middleware(AuthMiddleware, accounts=accounts, sessions=sessions, cert_roles=cert_roles),
        ],
        exception_handlers={RedfishErrorReply: _redfish_error, HTTPException: _http_error},
    )

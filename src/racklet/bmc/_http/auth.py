"""Authentication and privileges for every request, as one ASGI middleware.

Open without credentials: ``/redfish``, the ServiceRoot, the OData service document,
``$metadata`` and the schema files it references, ``/metrics`` and the login itself (POST to
Sessions). Everything else needs one of, in this order: an ``X-Auth-Token`` of a live
session, HTTP Basic credentials, or a TLS client certificate from the rack CA whose role
identity (SPIFFE ID, never the common name: the CA decides the ID, see docs/security.md) the
BMC maps to a role (``cert_roles``; the controller's ``spiffe://<rack>/controller``).
Otherwise 401 with a Redfish body and a Basic challenge. Unknown paths are checked too, so
nobody can probe which resources exist without logging in. What a caller may then do is
:mod:`racklet.bmc._http.privileges`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from racklet.bmc._http.odata import ROOT, SCHEMAS
from racklet.bmc._http.privileges import CONFIGURE_COMPONENTS, allowed, privileges
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import JSON_TYPE, Principal
from racklet.bmc._http.uris import SESSIONS
from racklet.bmc._state.accounts import Accounts
from racklet.bmc._state.sessions import SessionStore
from racklet.bmc._state.throttle import client_source, throttled
from racklet.bmc.errors import LoginThrottled
from racklet.net import peer_identity

REALM = 'Basic realm="Racklet BMC"'
_OPEN = {"/redfish", ROOT, f"{ROOT}/odata", f"{ROOT}/$metadata", "/metrics"}
_LOGIN = {SESSIONS, f"{SESSIONS}/Members"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _basic(value: str) -> tuple[str, str] | None:
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        accounts: Accounts,
        sessions: SessionStore,
        cert_roles: Mapping[str, str] | None = None,
        realm: str = REALM,
    ) -> None:
        self._app = app
        self._realm = realm
        self._accounts = accounts
        self._sessions = sessions
        self._cert_roles = dict(cert_roles or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # A console watcher: the same credentials as HTTP; refused before the upgrade.
            try:
                who = await self._authenticate(scope)
            except LoginThrottled:
                who = None
            if who is None or CONFIGURE_COMPONENTS not in privileges(who.role):
                await send({"type": "websocket.close", "code": 1008})
                return
            scope.setdefault("state", {})["principal"] = who
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        method = scope["method"]
        public = path in _OPEN or (path.startswith(SCHEMAS + "/") and method in ("GET", "HEAD"))
        if public or (path in _LOGIN and method == "POST"):
            await self._app(scope, receive, send)
            return
        try:
            who = await self._authenticate(scope)
        except LoginThrottled as exc:
            await send_error(send, throttled(exc))
            return
        if who is None:
            error = RedfishErrorReply(
                401, "NoValidSession", headers={"WWW-Authenticate": self._realm}
            )
        elif not allowed(who.role, method, path, who.username, who.session_id):
            scope.setdefault("state", {})["principal"] = who  # the audit log names who was refused
            error = RedfishErrorReply(403, "InsufficientPrivilege")
        else:
            scope.setdefault("state", {})["principal"] = who
            await self._app(scope, receive, send)
            return
        await send_error(send, error)

    async def _authenticate(self, scope: Scope) -> Principal | None:
        token = _header(scope, b"x-auth-token")
        if token:
            session = self._sessions.touch(token)
            if session is None:
                return None
            return Principal(session.username, session.role, session.id)
        authorization = _header(scope, b"authorization")
        credentials = _basic(authorization) if authorization else None
        if credentials is not None:
            account = await self._accounts.verify(*credentials, client_source(scope))
            return None if account is None else Principal(account.username, account.role)
        if authorization:
            return None
        identity = peer_identity(scope)
        role = self._cert_roles.get(identity) if identity else None
        return None if role is None or identity is None else Principal(identity, role)


async def send_error(send: Send, error: RedfishErrorReply) -> None:
    body = json.dumps(error.body()).encode()
    headers: list[Any] = [
        (b"content-type", JSON_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"odata-version", b"4.0"),
        *[(k.lower().encode(), v.encode()) for k, v in error.headers.items()],
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

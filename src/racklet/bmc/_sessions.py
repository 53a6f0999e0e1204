"""SessionService and Sessions: token login (``X-Auth-Token``), logout, idle expiry.

Sessions live in memory only: a restarted BMC forgets them, as real BMCs do. Idle expiry is
on the host's monotonic clock, not the twin's simulated one, because it protects real
credentials against real time.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.odata import ROOT, collection, link, resource
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import (
    Principal,
    no_content,
    page,
    principal,
    read_object,
    read_patch,
    respond,
    route,
)
from racklet.bmc._state.accounts import Accounts
from racklet.bmc._state.throttle import client_source, throttled
from racklet.bmc.errors import LoginThrottled
from racklet.log import ContextLogger

SERVICE = f"{ROOT}/SessionService"
SESSIONS = f"{SERVICE}/Sessions"
MIN_TIMEOUT, MAX_TIMEOUT = 30, 86400


@dataclass
class Session:
    id: str
    token: str
    username: str
    role: str
    created: str
    last_used: float = field(default=0.0)

    def redfish(self) -> dict[str, Any]:
        return resource(
            "Session",
            f"{SESSIONS}/{self.id}",
            Id=self.id,
            Name="User Session",
            UserName=self.username,
            Password=None,
            SessionType="Redfish",
            CreatedTime=self.created,
        )


class SessionStore:
    """Open sessions by token; a session idle longer than ``timeout`` seconds is gone."""

    def __init__(self, timeout: int = 1800, now: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._now = now
        self._by_token: dict[str, Session] = {}

    def create(self, username: str, role: str) -> Session:
        session = Session(
            id=secrets.token_hex(8),
            token=secrets.token_urlsafe(32),
            username=username,
            role=role,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            last_used=self._now(),
        )
        self._by_token[session.token] = session
        return session

    def _expire(self) -> None:
        limit = self._now() - self.timeout
        for token in [t for t, s in self._by_token.items() if s.last_used < limit]:
            del self._by_token[token]

    def touch(self, token: str) -> Session | None:
        """The live session for ``token`` (its idle timer restarted), or None."""
        self._expire()
        session = self._by_token.get(token)
        if session is not None:
            session.last_used = self._now()
        return session

    def sessions(self) -> list[Session]:
        self._expire()
        return sorted(self._by_token.values(), key=lambda s: s.created)

    def find(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions() if s.id == session_id), None)

    def delete(self, session: Session) -> None:
        self._by_token.pop(session.token, None)

    def drop_user(self, username: str, keep: str | None = None) -> int:
        """End every session of ``username`` (except the one with id ``keep``); how many."""
        doomed = [t for t, s in self._by_token.items() if s.username == username and s.id != keep]
        for token in doomed:
            del self._by_token[token]
        return len(doomed)


def routes(store: SessionStore, accounts: Accounts, log: ContextLogger) -> list[Route]:
    async def service(request: Request) -> Response:
        return respond(
            resource(
                "SessionService",
                SERVICE,
                Id="SessionService",
                Name="Session Service",
                ServiceEnabled=True,
                SessionTimeout=store.timeout,
                Status={"State": "Enabled", "Health": "OK"},
                Sessions=link(SESSIONS),
            )
        )

    async def patch_service(request: Request) -> Response:
        body = await read_patch(request)
        for name, value in body.items():
            if name in ("Id", "Name", "ServiceEnabled", "Sessions", "Status", "@odata.id"):
                raise RedfishErrorReply(400, "PropertyNotWritable", name)
            if name != "SessionTimeout":
                raise RedfishErrorReply(400, "PropertyUnknown", name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise RedfishErrorReply(400, "PropertyValueTypeError", value, name)
            if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
                raise RedfishErrorReply(400, "PropertyValueOutOfRange", value, name)
            store.timeout = value
        return await service(request)

    async def list_sessions(request: Request) -> Response:
        caller = principal(request)
        visible = [
            s
            for s in store.sessions()
            if caller.role == "Administrator" or s.id == caller.session_id
        ]
        members = [f"{SESSIONS}/{s.id}" for s in page(request, visible)]
        return respond(collection("SessionCollection", SESSIONS, "Session Collection", members))

    async def login(request: Request) -> Response:
        body = await read_object(request)
        for name in body:
            if name not in ("UserName", "Password"):
                raise RedfishErrorReply(400, "PropertyUnknown", name)
        for name in ("UserName", "Password"):
            if name not in body:
                raise RedfishErrorReply(400, "PropertyMissing", name)
            if not isinstance(body[name], str):
                raise RedfishErrorReply(400, "PropertyValueTypeError", body[name], name)
        try:
            account = await accounts.verify(
                body["UserName"], body["Password"], client_source(request.scope)
            )
        except LoginThrottled as exc:
            raise throttled(exc) from None
        if account is None:
            raise RedfishErrorReply(401, "NoValidSession")  # logged and recorded by accounts.report
        session = store.create(account.username, account.role)
        request.state.principal = Principal(account.username, account.role, session.id)  # audit
        location = f"{SESSIONS}/{session.id}"
        log.info(f"session {session.id} opened for {account.username!r}")
        return respond(
            session.redfish(), 201, {"X-Auth-Token": session.token, "Location": location}
        )

    def _visible(request: Request) -> Session:
        caller = principal(request)
        session = store.find(request.path_params["session_id"])
        if session is None or (caller.role != "Administrator" and session.id != caller.session_id):
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Session", request.path_params["session_id"]
            )
        return session

    async def get_session(request: Request) -> Response:
        return respond(_visible(request).redfish())

    async def logout(request: Request) -> Response:
        session = _visible(request)
        store.delete(session)
        log.info(f"session {session.id} of {session.username!r} closed")
        return no_content()

    return [
        route(SERVICE, GET=service, PATCH=patch_service),
        route(SESSIONS, GET=list_sessions, POST=login),
        route(f"{SESSIONS}/Members", POST=login),
        route(f"{SESSIONS}/{{session_id}}", GET=get_session, DELETE=logout),
    ]

"""``SessionService`` and ``Sessions``: token login (``X-Auth-Token``), logout, the idle
timeout. The RMC serves the same routes over its own accounts (:mod:`racklet.bmc.login`).

A caller sees its own session; an Administrator sees all of them.
"""

from __future__ import annotations

from typing import Annotated, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from racklet.bmc._http.declared import (
    Declared,
    Resource,
    Writable,
    validate_create,
    validate_patch,
)
from racklet.bmc._http.odata import collection, link
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
from racklet.bmc._http.uris import SESSION_SERVICE, SESSIONS
from racklet.bmc._state.accounts import Accounts
from racklet.bmc._state.sessions import MAX_TIMEOUT, MIN_TIMEOUT, Session, SessionStore
from racklet.bmc._state.throttle import client_source, throttled
from racklet.bmc.errors import LoginThrottled
from racklet.log import ContextLogger


class SessionService(Resource):
    redfish_type = "SessionService"

    Id: str = "SessionService"
    Name: str = "Session Service"
    ServiceEnabled: bool = True
    SessionTimeout: Annotated[int, Writable(minimum=MIN_TIMEOUT, maximum=MAX_TIMEOUT)]
    Status: dict[str, str]
    Sessions: dict[str, str]


class SessionBody(Resource):
    redfish_type = "Session"

    Id: str
    Name: str = "User Session"
    UserName: str
    Password: None = None
    SessionType: str = "Redfish"
    CreatedTime: str


class Credentials(Declared):
    """The body of a login (POST to ``Sessions``)."""

    UserName: str
    Password: str


def session_body(session: Session) -> dict[str, Any]:
    return SessionBody(
        Id=session.id,
        Name="User Session",
        UserName=session.username,
        Password=None,
        SessionType="Redfish",
        CreatedTime=session.created,
    ).body(f"{SESSIONS}/{session.id}")


class SessionResources:
    """The SessionService and its Sessions over one store and one set of accounts."""

    def __init__(self, store: SessionStore, accounts: Accounts, log: ContextLogger) -> None:
        self.store, self.accounts, self.log = store, accounts, log

    async def service(self, request: Request) -> Response:
        declared = SessionService(
            Id="SessionService",
            Name="Session Service",
            ServiceEnabled=True,
            SessionTimeout=self.store.timeout,
            Status={"State": "Enabled", "Health": "OK"},
            Sessions=link(SESSIONS),
        )
        return respond(declared.body(SESSION_SERVICE))

    async def patch_service(self, request: Request) -> Response:
        changes = validate_patch(SessionService, await read_patch(request))
        if "SessionTimeout" in changes:
            self.store.timeout = changes["SessionTimeout"]
        return await self.service(request)

    async def list_sessions(self, request: Request) -> Response:
        caller = principal(request)
        visible = [
            s
            for s in self.store.sessions()
            if caller.role == "Administrator" or s.id == caller.session_id
        ]
        members = [f"{SESSIONS}/{s.id}" for s in page(request, visible)]
        return respond(collection("SessionCollection", SESSIONS, "Session Collection", members))

    async def login(self, request: Request) -> Response:
        body = await read_object(request)
        credentials = validate_create(Credentials, body, missing="PropertyMissing")
        try:
            account = await self.accounts.verify(
                credentials.UserName, credentials.Password, client_source(request.scope)
            )
        except LoginThrottled as exc:
            raise throttled(exc) from None
        if account is None:
            raise RedfishErrorReply(401, "NoValidSession")  # logged and recorded by accounts.report
        session = self.store.create(account.username, account.role)
        request.state.principal = Principal(account.username, account.role, session.id)  # audit
        location = f"{SESSIONS}/{session.id}"
        self.log.info(f"session {session.id} opened for {account.username!r}")
        return respond(
            session_body(session), 201, {"X-Auth-Token": session.token, "Location": location}
        )

    def _visible(self, request: Request) -> Session:
        caller = principal(request)
        session = self.store.find(request.path_params["session_id"])
        if session is None or (caller.role != "Administrator" and session.id != caller.session_id):
            raise RedfishErrorReply(
                404, "ResourceNotFound", "Session", request.path_params["session_id"]
            )
        return session

    async def get_session(self, request: Request) -> Response:
        return respond(session_body(self._visible(request)))

    async def logout(self, request: Request) -> Response:
        session = self._visible(request)
        self.store.delete(session)
        self.log.info(f"session {session.id} of {session.username!r} closed")
        return no_content()


def routes(store: SessionStore, accounts: Accounts, log: ContextLogger) -> list[BaseRoute]:
    res = SessionResources(store, accounts, log)
    return [
        route(SESSION_SERVICE, GET=res.service, PATCH=res.patch_service),
        route(SESSIONS, GET=res.list_sessions, POST=res.login),
        route(f"{SESSIONS}/Members", POST=res.login),
        route(f"{SESSIONS}/{{session_id}}", GET=res.get_session, DELETE=res.logout),
    ]

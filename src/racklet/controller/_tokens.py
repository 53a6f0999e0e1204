"""Who may call the API, and what they may do: bearer tokens with roles.

Two kinds of token are accepted, both compared in constant time:

- the rack's own admin token, from ``racklet.yaml`` (``racklet up`` writes it there and to
  ``controller/api.token``): principal ``rack-admin``, role admin, never expires; held in
  memory only as its SHA-256;
- ApiTokens made with ``racklet token create``: ``rkt_<name>.<secret>``. The name finds the
  ApiToken in the store (one read per request, so a token revoked on one controller stops
  working on every controller at once); the HMAC of the secret (:class:`TokenKey`, keyed by
  the admin token, so a factory reset voids every ApiToken) must match, and it must not have
  expired.

Roles (:func:`refusal`): a **viewer** reads everything but tokens and the audit log; an
**operator** reads the same and acts on its units (``spec.units``; none listed: every unit) —
it may PUT or PATCH those ComputeUnits (spec, labels, annotations; not their status) and
power-cycle or stress them; an **admin** may do anything, and only an admin reads the audit log and
manages tokens, Racks, Releases, Rollouts, GitSources, events, status and the creation or
deletion of units. A caller without a valid token gets 401, a token without the right a 403,
each with a ``Status`` body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from racklet.api import (
    TOKEN_ROLES,
    ApiToken,
    ApiTokenSpec,
    ComputeUnit,
    InvalidObject,
    ObjectMeta,
    TokenRole,
    to_dict,
    utcnow,
    validate,
)
from racklet.api._meta import DnsLabel, Model
from racklet.controller._resources_http import read_body
from racklet.controller._status import status_response
from racklet.store import NotFound, Store

if TYPE_CHECKING:
    from racklet.controller._sessions import SessionKeeper

ADMIN_PRINCIPAL = "rack-admin"
"""The principal of the token in racklet.yaml."""
TOKEN_PREFIX = "rkt_"
MAX_TTL_SECONDS = 366 * 24 * 3600
DEFAULT_TTL_SECONDS = 24 * 3600
_TOKEN = re.compile(r"^rkt_([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\.([A-Za-z0-9_-]{43})$")
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_UNIT_WRITES = frozenset({"PUT", "PATCH"})


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the audit log's principal and role."""

    name: str
    role: TokenRole
    units: frozenset[str] = frozenset()
    """An operator's units; empty: every unit."""

    def may_act_on(self, unit: str) -> bool:
        return not self.units or unit in self.units


class TokenKey:
    """Hashes token secrets with a key derived from the rack's admin token."""

    def __init__(self, admin_token: str) -> None:
        self._key = hashlib.sha256(b"racklet api tokens\0" + admin_token.encode()).digest()
        self.id = hashlib.sha256(self._key).hexdigest()[:16]

    def digest(self, secret: str) -> str:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    def new_token(self, name: str) -> tuple[str, str]:
        """A fresh token for ApiToken ``name`` and the HMAC of its secret (what is stored)."""
        secret = secrets.token_urlsafe(32)
        return f"{TOKEN_PREFIX}{name}.{secret}", self.digest(secret)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Caller`, or None."""

    def __init__(self, store: Store, admin_token: str) -> None:
        self._store = store
        self._admin = hashlib.sha256(f"Bearer {admin_token}".encode()).digest()
        self.key = TokenKey(admin_token)

    async def caller(self, header: str) -> Caller | None:
        given = hashlib.sha256(header.encode()).digest()
        if hmac.compare_digest(given, self._admin):
            return Caller(ADMIN_PRINCIPAL, "admin")
        scheme, _, token = header.partition(" ")
        match = _TOKEN.match(token.strip()) if scheme.lower() == "bearer" else None
        if match is None:
            return None
        name, secret = match.group(1), match.group(3)
        try:
            stored = await self._store.get(ApiToken, name)
        except NotFound:
            return None
        if not hmac.compare_digest(self.key.digest(secret), stored.spec.secret_hmac):
            return None
        expires = stored.spec.expires_at
        if expires is not None and expires <= dt.datetime.now(dt.UTC):
            return None
        units = frozenset(stored.spec.units) if stored.spec.role == "operator" else frozenset()
        return Caller(name, stored.spec.role, units)


def refusal(caller: Caller, method: str, path: str) -> str | None:
    """Why ``caller`` may not make this request, or None if it may."""
    if caller.role == "admin":
        return None
    parts = [p for p in path.split("/") if p][2:]  # after /api/v1
    if parts[:1] in (["tokens"], ["audit"]):
        article = "an" if caller.role == "operator" else "a"
        what = "manage tokens" if parts[0] == "tokens" else "read the audit log"
        return f"only an admin token may {what} ({caller.name!r} is {article} {caller.role})"
    if method in _SAFE:
        return None
    if caller.role == "viewer":
        return f"token {caller.name!r} is a viewer: it may read, not act"
    unit = _unit_acted_on(method, parts)
    if unit is None:
        return (
            f"token {caller.name!r} is an operator: it may change and power-cycle computeunits,"
            f" not {method} {path}"
        )
    if not caller.may_act_on(unit):
        return (
            f"token {caller.name!r} may act on {', '.join(sorted(caller.units))} only,"
            f" not on computeunit {unit!r}"
        )
    return None


def _unit_acted_on(method: str, parts: list[str]) -> str | None:
    """The unit an operator's request acts on, if it is one an operator may make."""
    if len(parts) == 2 and parts[0] == "computeunits" and method in _UNIT_WRITES:
        return parts[1]
    actions = (["power-cycle"], ["stress"])
    if parts[:1] == ["computeunits"] and parts[2:] in actions and method == "POST":
        return parts[1]
    return None


async def authorise(
    request: Request, authenticator: Authenticator, sessions: SessionKeeper | None = None
) -> Caller:
    """The FastAPI dependency's body: 401 without a valid token, 403 without the right.

    Without an ``Authorization`` header, a dashboard session cookie (``sessions``) may stand
    for the token; an unsafe request made with it must carry its CSRF token (else 403)."""
    given = request.headers.get("authorization", "")
    caller = await authenticator.caller(given)
    if caller is None and not given and sessions is not None:
        caller = await _session_caller(request, sessions)
    if caller is None:
        message = (
            "the bearer token is not valid (unknown, revoked or expired)"
            if given
            else "a bearer token is required"
        )
        raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
    request.scope.setdefault("state", {})["principal"] = caller  # for the audit line
    reason = refusal(caller, request.method, request.url.path)
    if reason is not None:
        raise HTTPException(403, reason)
    return caller


async def _session_caller(request: Request, sessions: SessionKeeper) -> Caller | None:
    from racklet.controller._sessions import COOKIE, CSRF_HEADER

    cookie = request.cookies.get(COOKIE, "")
    session = await sessions.session(cookie) if cookie else None
    if session is None:
        return None
    if request.method not in _SAFE and not sessions.csrf_ok(
        session, request.headers.get(CSRF_HEADER, "")
    ):
        request.scope.setdefault("state", {})["principal"] = session.caller
        raise HTTPException(403, "the CSRF token is missing or wrong (reload the dashboard)")
    return session.caller


# -- /api/v1/tokens ----------------------------------------------------------------------------


class TokenRequest(Model):
    """What ``racklet token create`` sends; the server makes the secret."""

    name: DnsLabel | None = None
    role: TokenRole
    units: list[DnsLabel] = Field(default_factory=list)
    ttl_seconds: Annotated[float, Field(gt=0, le=MAX_TTL_SECONDS)] = DEFAULT_TTL_SECONDS
    description: Annotated[str, Field(max_length=200)] = ""


def _public(token: ApiToken, key: TokenKey) -> dict[str, Any]:
    """An ApiToken as the API shows it: without the hash of its secret, with its state."""
    data = to_dict(token)
    data["spec"].pop("secretHmac", None)
    expires = token.spec.expires_at
    if token.spec.key_id != key.id:
        state = "void"  # made before a factory reset
    elif expires is not None and expires <= dt.datetime.now(dt.UTC):
        state = "expired"
    else:
        state = "active"
    data["status"] = {"state": state}
    return data


def token_router(store: Store, key: TokenKey, dependencies: list[Any]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/tokens", dependencies=dependencies)

    @router.get("")
    async def list_tokens() -> JSONResponse:
        tokens = sorted(await store.list(ApiToken), key=lambda t: t.metadata.name)
        return JSONResponse(
            {
                "apiVersion": "racklet.dev/v1alpha1",
                "kind": "ApiTokenList",
                "items": [_public(t, key) for t in tokens],
            }
        )

    @router.post("", status_code=201)
    async def create_token(request: Request) -> JSONResponse:
        body = validate(TokenRequest, await read_body(request))
        if body.units and body.role != "operator":
            raise InvalidObject(
                [f"units: only an operator token is scoped to units, not a {body.role}"]
            )
        for unit in body.units:
            try:
                await store.get(ComputeUnit, unit)
            except NotFound:
                raise InvalidObject([f"units: no computeunit {unit!r}"]) from None
        name = body.name or f"token-{secrets.token_hex(4)}"
        if name == ADMIN_PRINCIPAL:
            raise InvalidObject([f"name: {ADMIN_PRINCIPAL!r} is the rack's own admin token"])
        token, mac = key.new_token(name)
        expires = utcnow() + dt.timedelta(seconds=body.ttl_seconds)
        stored = await store.create(
            ApiToken(
                metadata=ObjectMeta(name=name),
                spec=ApiTokenSpec(
                    role=body.role,
                    units=sorted(set(body.units)),
                    expires_at=expires,
                    secret_hmac=mac,
                    key_id=key.id,
                    description=body.description,
                ),
            )
        )
        return JSONResponse({**_public(stored, key), "token": token}, status_code=201)

    @router.delete("/{name}")
    async def revoke_token(name: str) -> JSONResponse:
        await store.delete(ApiToken, name)
        return status_response(
            200, f"token {name!r} revoked", reason="Deleted", details={"name": name}
        )

    return router


__all__ = [
    "TOKEN_ROLES",
    "Authenticator",
    "Caller",
    "TokenKey",
    "authorise",
    "refusal",
    "token_router",
]

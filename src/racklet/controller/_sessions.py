"""Browser sessions for the dashboard: a pasted token (or a one-time login code) becomes a
signed session cookie, and every state-changing request made with it carries a CSRF token.

Why stateless: the cookie is ``<payload>.<HMAC>`` under a key derived from the rack's admin
token (as :class:`racklet.controller._tokens.TokenKey` is), so any controller of the rack
accepts it and an open dashboard survives a controller restart; a factory reset voids every
session. The payload names the principal and, for an ApiToken, its uid: each request reads
that ApiToken again, so revoking (or re-creating) the token ends its sessions at once, and a
session never outlives its token. The role is never taken from the cookie: it comes from the
token each time, and :func:`racklet.controller._tokens.refusal` enforces it on every request.

CSRF: the cookie is ``HttpOnly; Secure; SameSite=Strict`` and every unsafe request authenticated
by it must also send ``X-Racklet-CSRF`` with the HMAC of the cookie (a value a page on another
origin cannot read or compute); without it the answer is 403.

Login codes (``racklet up`` prints one in its login URL, as Jupyter does): 128 random bits,
single use, valid for :data:`CODE_TTL_SECONDS`, kept in this process's memory only as their
SHA-256 — not the admin token in a URL. Logout forgets the session's nonce (in memory; the
cookie also expires by itself after :data:`SESSION_TTL_SECONDS`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from racklet.api import ApiToken
from racklet.controller._tokens import ADMIN_PRINCIPAL, Authenticator, Caller
from racklet.store import NotFound, Store

COOKIE = "__Host-racklet-session"
CSRF_HEADER = "x-racklet-csrf"
SESSION_TTL_SECONDS = 12 * 3600
CODE_TTL_SECONDS = 300
_MAX_CODES = 64
_MAX_LOGGED_OUT = 4096


@dataclass(frozen=True)
class Session:
    """A verified session cookie: who, until when, and the CSRF token that goes with it."""

    caller: Caller
    expires: float
    csrf: str


class SessionKeeper:
    """Issues and verifies session cookies and login codes for one controller process."""

    def __init__(self, store: Store, authenticator: Authenticator, admin_token: str) -> None:
        self._store = store
        self._authenticator = authenticator
        self._key = hashlib.sha256(b"racklet dashboard sessions\0" + admin_token.encode()).digest()
        self._codes: OrderedDict[str, float] = OrderedDict()
        self._logged_out: OrderedDict[str, float] = OrderedDict()

    def _mac(self, purpose: str, data: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\0{data}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    # -- login ---------------------------------------------------------------------------------

    async def login(self, token: str) -> tuple[str, Session] | None:
        """A cookie value and its session for a valid API token, or None."""
        caller = await self._authenticator.caller(f"Bearer {token.strip()}")
        if caller is None:
            return None
        uid, expires = "", time.time() + SESSION_TTL_SECONDS
        if caller.name != ADMIN_PRINCIPAL:
            stored = await self._store.get(ApiToken, caller.name)
            uid = stored.metadata.uid
            if stored.spec.expires_at is not None:
                expires = min(expires, stored.spec.expires_at.timestamp())
        return self._issue(caller, uid, expires)

    def new_code(self) -> tuple[str, float]:
        """A fresh single-use login code and when it expires (epoch seconds)."""
        self._drop_expired(self._codes)
        while len(self._codes) >= _MAX_CODES:
            self._codes.popitem(last=False)
        code = secrets.token_urlsafe(16)
        expires = time.time() + CODE_TTL_SECONDS
        self._codes[hashlib.sha256(code.encode()).hexdigest()] = expires
        return code, expires

    def redeem(self, code: str) -> tuple[str, Session] | None:
        """An admin session for a valid unused code (and the code is spent), or None."""
        expires = self._codes.pop(hashlib.sha256(code.encode()).hexdigest(), None)
        if expires is None or expires <= time.time():
            return None
        caller = Caller(ADMIN_PRINCIPAL, "admin")
        return self._issue(caller, "", time.time() + SESSION_TTL_SECONDS)

    def _issue(self, caller: Caller, uid: str, expires: float) -> tuple[str, Session]:
        payload = {"p": caller.name, "u": uid, "e": int(expires), "n": secrets.token_hex(8)}
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        text = body.rstrip(b"=").decode()
        cookie = f"{text}.{self._mac('session', text)}"
        return cookie, Session(caller, float(int(expires)), self._mac("csrf", cookie))

    def logout(self, cookie: str) -> None:
        self._drop_expired(self._logged_out)
        while len(self._logged_out) >= _MAX_LOGGED_OUT:
            self._logged_out.popitem(last=False)
        self._logged_out[cookie] = time.time() + SESSION_TTL_SECONDS

    # -- each request --------------------------------------------------------------------------

    async def session(self, cookie: str) -> Session | None:
        """The session a cookie proves, or None (forged, expired, logged out, token revoked)."""
        body, _, mac = cookie.partition(".")
        if not body or not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        if cookie in self._logged_out:
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            name, uid, expires = str(payload["p"]), str(payload["u"]), float(payload["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= time.time():
            return None
        csrf = self._mac("csrf", cookie)
        if name == ADMIN_PRINCIPAL and not uid:
            return Session(Caller(ADMIN_PRINCIPAL, "admin"), expires, csrf)
        try:
            stored = await self._store.get(ApiToken, name)
        except NotFound:
            return None
        if stored.metadata.uid != uid or stored.spec.key_id != self._authenticator.key.id:
            return None
        if stored.spec.expires_at is not None and stored.spec.expires_at <= dt.datetime.now(dt.UTC):
            return None
        units = frozenset(stored.spec.units) if stored.spec.role == "operator" else frozenset()
        return Session(Caller(name, stored.spec.role, units), expires, csrf)

    def csrf_ok(self, session: Session, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given, session.csrf)

    @staticmethod
    def _drop_expired(table: OrderedDict[str, float]) -> None:
        now = time.time()
        for key in [k for k, until in table.items() if until <= now]:
            del table[key]


__all__ = ["COOKIE", "CSRF_HEADER", "Session", "SessionKeeper"]

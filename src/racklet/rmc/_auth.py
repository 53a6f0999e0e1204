"""Who may use the RMC: its accounts, its Redfish sessions, and the privilege check.

The RMC logs into every unit BMC with the rack's own credentials, so it must enforce the
caller's privileges itself before anything is forwarded: any authenticated role may read,
Operator or Administrator may act (Reset, PATCH, POST through the proxy), only Administrator
may change the RMC's SessionService; anyone may close their own session.

Accounts are read from an ``accounts.json`` in the BMC's format (salted scrypt hashes, written
by ``racklet.bmc.write_accounts``). A successful HTTP Basic check is remembered under a keyed
digest (key in memory only) so Basic clients do not pay scrypt on every request. Not here:
lockout after failed logins (the BMCs have it; see docs/rmc.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from racklet.rmc.errors import RmcConfigError

ROLES = ("Administrator", "Operator", "ReadOnly")


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    session_id: str | None = None


@dataclass(frozen=True)
class _Account:
    username: str
    role: str
    scrypt: dict[str, Any] = field(repr=False)


def _b64(text: str) -> bytes:
    return base64.b64decode(text.encode())


class Accounts:
    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, str] = {}

    def load(self, path: Path) -> None:
        try:
            entries = json.loads(path.read_text())["accounts"]
            accounts = {
                str(e["UserName"]): _Account(str(e["UserName"]), str(e["RoleId"]), e["scrypt"])
                for e in entries
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RmcConfigError(f"cannot read the RMC accounts from {path}: {exc}") from exc
        for account in accounts.values():
            if account.role not in ROLES:
                raise RmcConfigError(f"{path}: {account.username} has unknown role {account.role}")
        self._accounts = accounts
        self._verified.clear()

    def _check(self, account: _Account, password: str) -> bool:
        p = account.scrypt
        derived = hashlib.scrypt(
            password.encode(),
            salt=_b64(p["salt"]),
            n=int(p["n"]),
            r=int(p["r"]),
            p=int(p["p"]),
            dklen=len(_b64(p["hash"])),
            maxmem=64 * 1024 * 1024,
        )
        return hmac.compare_digest(derived, _b64(p["hash"]))

    async def verify(self, username: str, password: str) -> Principal | None:
        account = self._accounts.get(username)
        if account is None:
            return None
        digest = hmac.digest(self._key, f"{username}\0{password}".encode(), "sha256")
        if self._verified.get(digest) == account.role:
            return Principal(username, account.role)
        if not await asyncio.to_thread(self._check, account, password):
            return None
        self._verified[digest] = account.role
        return Principal(username, account.role)


@dataclass
class Session:
    id: str
    token: str = field(repr=False)
    username: str
    role: str
    last_used: float


class Sessions:
    """Live Redfish sessions of the RMC, expiring after ``timeout`` idle seconds."""

    def __init__(self, timeout: int) -> None:
        self.timeout = timeout
        self._by_token: dict[str, Session] = {}

    def _expire(self) -> None:
        limit = time.monotonic() - self.timeout
        for token in [t for t, s in self._by_token.items() if s.last_used < limit]:
            del self._by_token[token]

    def create(self, who: Principal) -> Session:
        self._expire()
        session = Session(
            secrets.token_hex(8),
            secrets.token_urlsafe(32),
            who.username,
            who.role,
            time.monotonic(),
        )
        self._by_token[session.token] = session
        return session

    def touch(self, token: str) -> Session | None:
        session = self._by_token.get(token)
        if session is None or session.last_used < time.monotonic() - self.timeout:
            self._by_token.pop(token, None)
            return None
        session.last_used = time.monotonic()
        return session

    def get(self, session_id: str) -> Session | None:
        self._expire()
        return next((s for s in self._by_token.values() if s.id == session_id), None)

    def delete(self, session_id: str) -> bool:
        session = self.get(session_id)
        if session is None:
            return False
        del self._by_token[session.token]
        return True

    def ids(self) -> list[str]:
        self._expire()
        return sorted(s.id for s in self._by_token.values())


def basic_credentials(value: str) -> tuple[str, str] | None:
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def allowed(method: str, path: str, who: Principal) -> bool:
    """The privilege map of the RMC (see the module docstring)."""
    if method in ("GET", "HEAD") or who.role == "Administrator":
        return True
    sessions = "/redfish/v1/SessionService/Sessions/"
    if method == "DELETE" and who.session_id and path == sessions + who.session_id:
        return True
    if path.startswith(("/redfish/v1/SessionService", "/redfish/v1/AggregationService/Aggr")):
        return False
    return who.role == "Operator"

"""BMC accounts: ``accounts.json`` (mode 0600) with salted scrypt hashes, never passwords.

Verification is CPU-heavy on purpose (scrypt), so :meth:`Accounts.verify` runs it in a
thread; a successful check is remembered under a keyed digest of the credentials (the key
lives only in memory) so HTTP Basic clients do not pay scrypt on every request.

Repeated failed logins lock an account (:class:`LockoutPolicy`): after ``threshold``
failures it refuses even the right password for ``duration`` seconds, and each further
lockout doubles that (back-off), up to ``max_duration``. Lockouts are on the host's
monotonic clock and kept in memory: they defend real credentials in real time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from racklet.bmc.errors import AccountsError
from racklet.config import write_private

ROLES = ("Administrator", "Operator", "ReadOnly")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_KEY_LEN = 32


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_KEY_LEN, maxmem=64 * 1024 * 1024
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class PasswordPolicy:
    """What a password set over Redfish must satisfy (files written by ``racklet up`` too)."""

    min_length: int = 12
    max_length: int = 128

    def problem(self, password: str) -> str | None:
        """Why ``password`` is refused, or None."""
        if not self.min_length <= len(password) <= self.max_length:
            return f"between {self.min_length} and {self.max_length} characters"
        if password.strip() != password or not password.isprintable():
            return "printable, without leading or trailing spaces"
        return None


def write_accounts(path: Path, username: str, password: str, role: str = "Administrator") -> None:
    """Add or replace ``username`` in ``path`` (created 0600) with a salted scrypt hash."""
    if role not in ROLES:
        raise AccountsError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")
    if not username or not password:
        raise AccountsError("an account needs a user name and a password")
    accounts = _read(path)["accounts"] if path.exists() else []
    entry = hash_account(username, password, role).entry()
    kept = [a for a in accounts if a.get("UserName") != username]
    write_private(path, json.dumps({"accounts": [*kept, entry]}, indent=2))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AccountsError(f"cannot read the BMC accounts {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
        raise AccountsError(f"{path} is malformed: no 'accounts' list")
    return data


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    _salt: bytes
    _hash: bytes
    _params: tuple[int, int, int]
    enabled: bool = True

    def check(self, password: str) -> bool:
        n, r, p = self._params
        return hmac.compare_digest(_derive(password, self._salt, n, r, p), self._hash)

    def entry(self) -> dict[str, Any]:
        n, r, p = self._params
        return {
            "UserName": self.username,
            "RoleId": self.role,
            "Enabled": self.enabled,
            "scrypt": {"n": n, "r": r, "p": p, "salt": _b64(self._salt), "hash": _b64(self._hash)},
        }


def hash_account(username: str, password: str, role: str, enabled: bool = True) -> Account:
    """A new account with a fresh salt (blocking: scrypt)."""
    salt = os.urandom(16)
    params = (_SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"])
    return Account(username, role, salt, _derive(password, salt, *params), params, enabled)


def read_accounts(path: Path) -> list[Account]:
    """The accounts in ``path`` (blocking: call it in a thread from async code)."""
    accounts = []
    for raw in _read(path)["accounts"]:
        try:
            params = raw["scrypt"]
            accounts.append(
                Account(
                    username=str(raw["UserName"]),
                    role=str(raw["RoleId"]),
                    _salt=base64.b64decode(params["salt"]),
                    _hash=base64.b64decode(params["hash"]),
                    _params=(int(params["n"]), int(params["r"]), int(params["p"])),
                    enabled=bool(raw.get("Enabled", True)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AccountsError(f"{path} holds a malformed account: {exc}") from exc
    return accounts


@dataclass
class LockoutPolicy:
    threshold: int = 5
    """Failed logins in a row that lock the account (0: never lock)."""
    duration: int = 30
    """Seconds the first lockout lasts; each further one doubles it."""
    max_duration: int = 900
    reset_after: int = 60
    """Seconds without a failure after which the failure count starts again."""


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0
    lockouts: int = 0


class Accounts:
    """The accounts of one BMC; empty (nobody can log in) until :meth:`replace` fills it.

    ``path`` is where changes made over Redfish are saved (None: kept in memory only).
    """

    def __init__(
        self,
        accounts: list[Account] | None = None,
        *,
        lockout: LockoutPolicy | None = None,
        passwords: PasswordPolicy | None = None,
        now: Callable[[], float] = time.monotonic,
        path: Path | None = None,
    ) -> None:
        self.lockout = lockout or LockoutPolicy()
        self.passwords = passwords or PasswordPolicy()
        self.now = now
        self.path = path
        self._memo_key = secrets.token_bytes(32)
        self._failures: dict[str, _Failures] = {}
        self._lock = asyncio.Lock()
        self.replace(accounts or [])

    def replace(self, accounts: list[Account]) -> None:
        self._by_name = {a.username: a for a in accounts}
        self._verified: dict[bytes, Account] = {}

    def get(self, username: str) -> Account | None:
        return self._by_name.get(username)

    def all(self) -> list[Account]:
        return sorted(self._by_name.values(), key=lambda a: a.username)

    def locked(self, username: str) -> bool:
        state = self._failures.get(username)
        return state is not None and state.locked_until > self.now()

    def unlock(self, username: str) -> None:
        self._failures.pop(username, None)

    def _failed(self, username: str) -> None:
        now = self.now()
        state = self._failures.setdefault(username, _Failures())
        if now - state.last > self.lockout.reset_after:
            state.count = 0
        state.count += 1
        state.last = now
        if self.lockout.threshold and state.count >= self.lockout.threshold:
            seconds = min(self.lockout.duration * 2**state.lockouts, self.lockout.max_duration)
            state.locked_until = now + seconds
            state.lockouts += 1
            state.count = 0

    async def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is right and it may log in, else None (off the loop)."""
        account = self._by_name.get(username)
        if account is None or self.locked(username) or not account.enabled:
            # Spend the same effort as for a real check, so timing does not tell which
            # user names exist or which are locked.
            await asyncio.to_thread(_derive, password, b"\0" * 16, **_SCRYPT)
            if account is not None:
                self._failed(username)
            return None
        memo = hmac.digest(self._memo_key, f"{username}\0{password}".encode(), "sha256")
        if self._verified.get(memo) is account:
            self._failures.pop(username, None)
            return account
        if not await asyncio.to_thread(account.check, password):
            self._failed(username)
            return None
        state = self._failures.get(username)
        if state is not None:
            state.count = 0
        if len(self._verified) > 64:
            self._verified.clear()
        self._verified[memo] = account
        return account

    async def put(self, account: Account) -> None:
        """Add or replace ``account`` and save every account."""
        async with self._lock:
            self._by_name[account.username] = account
            self._verified = {}
            await self._save()

    async def update(self, username: str, **changes: Any) -> Account:
        current = self._by_name[username]
        changed = replace(current, **changes)
        await self.put(changed)
        return changed

    async def delete(self, username: str) -> None:
        async with self._lock:
            self._by_name.pop(username, None)
            self._failures.pop(username, None)
            self._verified = {}
            await self._save()

    async def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"accounts": [a.entry() for a in self.all()]}, indent=2)
        await asyncio.to_thread(write_private, self.path, body)

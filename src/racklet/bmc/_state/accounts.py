"""BMC accounts: ``accounts.json`` (mode 0600) with salted scrypt hashes, never passwords.

Verification is CPU-heavy on purpose (scrypt), so :meth:`Accounts.verify` runs it in a
thread; a successful check is remembered under a keyed digest of the credentials (the key
lives only in memory) so HTTP Basic clients do not pay scrypt on every request.

Failed logins slow the source that makes them and lock an account only for that source
(:mod:`racklet.bmc._state.throttle`), so nobody can lock the operators out by failing on purpose.
The RMC uses this class too: one implementation of accounts for both services.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from racklet.bmc._state.throttle import BackoffPolicy, LockoutPolicy, LoginThrottle
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


def new_password() -> str:
    """A random password (144 bits) that a command line takes as a value: it never starts
    with ``-``, which argparse-based tools such as DMTF's ``rf_*`` scripts read as an option
    (``-p -x…``: "expected one argument"), as 1 in 64 of ``token_urlsafe``'s would."""
    while (password := secrets.token_urlsafe(18)).startswith("-"):
        pass
    return password


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


class LoginReporter(Protocol):
    """Where a service records login failures and lockouts (its log and EventLog)."""

    def login_failed(
        self, username: str, source: str, *, known: bool, first: bool, locked_for: float
    ) -> None:
        """``first``: the source's first failure for this name in a while; ``locked_for``:
        seconds of the lockout this failure started (0: none)."""

    def account_unlocked(self, username: str) -> None: ...


class Accounts:
    """The accounts of one BMC (or the RMC); empty (nobody can log in) until :meth:`replace`
    fills it. Failed logins are throttled per source (:mod:`racklet.bmc._state.throttle`).

    ``path`` is where changes made over Redfish are saved (None: kept in memory only);
    ``report`` records failures and lockouts (None: they are not recorded).
    """

    def __init__(
        self,
        accounts: list[Account] | None = None,
        *,
        lockout: LockoutPolicy | None = None,
        backoff: BackoffPolicy | None = None,
        passwords: PasswordPolicy | None = None,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        path: Path | None = None,
        report: LoginReporter | None = None,
    ) -> None:
        self.throttle = LoginThrottle(lockout, backoff, now=now, sleep=sleep)
        self.passwords = passwords or PasswordPolicy()
        self.path = path
        self.report = report
        self._memo_key = secrets.token_bytes(32)
        self._lock = asyncio.Lock()
        self.replace(accounts or [])

    @property
    def lockout(self) -> LockoutPolicy:
        return self.throttle.lockout

    def replace(self, accounts: list[Account]) -> None:
        self._by_name = {a.username: a for a in accounts}
        self._verified: dict[bytes, Account] = {}

    def get(self, username: str) -> Account | None:
        return self._by_name.get(username)

    def all(self) -> list[Account]:
        return sorted(self._by_name.values(), key=lambda a: a.username)

    def locked(self, username: str) -> bool:
        """Whether some source is locked out of ``username`` (the account's ``Locked``)."""
        return self.throttle.locked(username)

    def unlock(self, username: str) -> None:
        if self.throttle.unlock(username) and self.report is not None:
            self.report.account_unlocked(username)

    def _failed(self, source: str, username: str) -> None:
        first, locked_for = self.throttle.failed(source, username)
        if self.report is not None:
            known = username in self._by_name
            self.report.login_failed(
                username, source, known=known, first=first, locked_for=locked_for
            )

    async def verify(self, username: str, password: str, source: str = "-") -> Account | None:
        """The account if the password is right and it may log in from ``source`` (a
        :func:`source_key`), else None. Off the loop (scrypt in a thread); waits for the
        source's turn when it is slowed, or raises :class:`LoginThrottled`."""
        account = self._by_name.get(username)
        usable = (
            account is not None
            and account.enabled
            and not self.throttle.locked_for(source, username)
        )
        memo = hmac.digest(self._memo_key, f"{username}\0{password}".encode(), "sha256")
        if usable and self._verified.get(memo) is account:
            return account  # proven right before: no scrypt, no turn to wait for
        await self.throttle.admit(source)
        if account is None or not usable:
            # The same effort as a real check, so timing does not tell which user names
            # exist, which are disabled or which are locked for this source.
            await asyncio.to_thread(_derive, password, b"\0" * 16, **_SCRYPT)
            self._failed(source, username)
            return None
        if not await asyncio.to_thread(account.check, password):
            self._failed(source, username)
            return None
        self.throttle.succeeded(source, username)
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
            self.throttle.unlock(username)
            self._verified = {}
            await self._save()

    async def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps({"accounts": [a.entry() for a in self.all()]}, indent=2)
        await asyncio.to_thread(write_private, self.path, body)

"""BMC accounts: ``accounts.json`` (mode 0600) with salted scrypt hashes, never passwords.

Verification is CPU-heavy on purpose (scrypt), so :meth:`Accounts.verify` runs it in a
thread; a successful check is remembered under a keyed digest of the credentials (the key
lives only in memory) so HTTP Basic clients do not pay scrypt on every request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
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


def write_accounts(path: Path, username: str, password: str, role: str = "Administrator") -> None:
    """Add or replace ``username`` in ``path`` (created 0600) with a salted scrypt hash."""
    if role not in ROLES:
        raise AccountsError(f"unknown role {role!r} (one of: {', '.join(ROLES)})")
    if not username or not password:
        raise AccountsError("an account needs a user name and a password")
    accounts = _read(path)["accounts"] if path.exists() else []
    salt = os.urandom(16)
    entry = {
        "UserName": username,
        "RoleId": role,
        "scrypt": {**_SCRYPT, "salt": _b64(salt), "hash": _b64(_derive(password, salt, **_SCRYPT))},
    }
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

    def check(self, password: str) -> bool:
        n, r, p = self._params
        return hmac.compare_digest(_derive(password, self._salt, n, r, p), self._hash)


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
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AccountsError(f"{path} holds a malformed account: {exc}") from exc
    return accounts


class Accounts:
    """The accounts of one BMC; empty (nobody can log in) until :meth:`replace` fills it."""

    def __init__(self, accounts: list[Account] | None = None) -> None:
        self._memo_key = secrets.token_bytes(32)
        self.replace(accounts or [])

    def replace(self, accounts: list[Account]) -> None:
        self._by_name = {a.username: a for a in accounts}
        self._verified: dict[bytes, Account] = {}

    def get(self, username: str) -> Account | None:
        return self._by_name.get(username)

    async def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is right, else None (off the event loop)."""
        account = self._by_name.get(username)
        if account is None:
            # Spend the same effort as for a real account, so timing does not tell which
            # user names exist.
            await asyncio.to_thread(_derive, password, b"\0" * 16, **_SCRYPT)
            return None
        memo = hmac.digest(self._memo_key, f"{username}\0{password}".encode(), "sha256")
        if memo in self._verified:
            return self._verified[memo]
        if not await asyncio.to_thread(account.check, password):
            return None
        if len(self._verified) > 64:
            self._verified.clear()
        self._verified[memo] = account
        return account

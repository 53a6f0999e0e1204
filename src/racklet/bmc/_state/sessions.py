"""Open Redfish sessions: token login (``X-Auth-Token``), idle expiry.

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

MIN_TIMEOUT, MAX_TIMEOUT = 30, 86400
"""The idle timeouts (seconds) a SessionService PATCH may set."""


@dataclass
class Session:
    id: str
    token: str
    username: str
    role: str
    created: str
    last_used: float = field(default=0.0)


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

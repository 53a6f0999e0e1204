"""Failed-login throttling for the BMC and the RMC: slow the source, lock the account only
for that source, so no unauthenticated caller can lock the operators out.

A classic lockout (N failures lock the account for everyone) lets anyone who reaches the
listener lock the administrator out, and with it whatever logs in with that account. Here,
as OWASP and the bmcweb and Ironic notes advise, failures cost the *source* that makes them:

* **Per source** (the client address; IPv6 by its /64): after ``source_threshold`` failures
  within ``reset_after`` seconds, the source gets one login attempt per ``delay`` seconds,
  doubling with each further failure up to ``max_delay``. Concurrent attempts from it queue
  for their turn (an ``asyncio.sleep``, never a blocked loop); when the queue is longer than
  ``max_wait`` the attempt is refused at once with :class:`LoginThrottled` (HTTP 503 with
  ``Retry-After``). Other sources are not slowed.
* **Per source and account**: after ``AccountLockoutThreshold`` failures the account is
  locked *for that source* for ``AccountLockoutDuration`` seconds, doubling with each lockout
  up to ``max_duration``. While locked, that source is refused even the right password (no
  oracle for a guesser); the account shows ``Locked`` and an ``AccountLocked`` entry goes to
  the EventLog. Other sources, open sessions and client certificates are not affected; an
  Administrator clears every lock of an account by PATCHing ``Locked: false``.

Unknown user names are throttled and locked exactly like known ones, so the answers (and
their timing, see :meth:`racklet.bmc._state.accounts.Accounts.verify`) do not tell which exist.
Both tables are bounded (``max_entries`` each, least recently used dropped first): memory
does not grow with the addresses or names an attacker makes up. Everything is on the host's
monotonic clock and in memory: it defends real credentials in real time, and a restarted
service starts with clean tables (as it starts with no sessions).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.types import Scope

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc.errors import LoginThrottled

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass
class LockoutPolicy:
    """When one source is locked out of one account (the AccountService properties)."""

    threshold: int = 5
    """Failed logins in a row, from one source for one account, that lock it (0: never)."""
    duration: int = 30
    """Seconds the first lockout lasts; each further one doubles it."""
    max_duration: int = 900
    reset_after: int = 60
    """Seconds without a failure after which the failure counts start again."""


@dataclass(frozen=True)
class BackoffPolicy:
    """How a source that keeps failing is slowed."""

    source_threshold: int = 3
    """Failures from one source (any user name) before its attempts are spaced out."""
    delay: float = 0.5
    """Seconds between attempts at the threshold; doubled with each further failure."""
    max_delay: float = 8.0
    max_wait: float = 30.0
    """Longest a queued attempt may wait for its turn; a longer queue is refused (503)."""
    max_entries: int = 4096
    """Sources (and source/account pairs) remembered; the least recently seen go first."""


@dataclass
class _Source:
    failures: int = 0
    last_failure: float = 0.0
    next_turn: float = 0.0


@dataclass
class _Pair:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0
    lockouts: int = 0


def source_key(host: str | None) -> str:
    """The throttling key of a client address: the address, or its /64 for IPv6."""
    if not host:
        return "-"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_source(scope: Scope) -> str:
    """The throttling key of an ASGI caller's address (:func:`source_key`)."""
    client = scope.get("client")
    return source_key(client[0] if client else None)


def throttled(exc: LoginThrottled) -> RedfishErrorReply:
    """The answer to a source that must wait: 503 with ``Retry-After`` (Base registry)."""
    seconds = str(exc.retry_after)
    return RedfishErrorReply(
        503, "ServiceTemporarilyUnavailable", seconds, headers={"Retry-After": seconds}
    )


def _touch(table: OrderedDict[_K, _V], key: _K, make: Callable[[], _V], cap: int) -> _V:
    """``table[key]`` (made if missing), now the most recently used; the table stays ``cap``."""
    value = table.get(key)
    if value is None:
        value = table[key] = make()
        while len(table) > cap:
            table.popitem(last=False)
    else:
        table.move_to_end(key)
    return value


class LoginThrottle:
    """The failure tables of one service (a BMC or the RMC) and the waits they impose."""

    def __init__(
        self,
        lockout: LockoutPolicy | None = None,
        backoff: BackoffPolicy | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.lockout = lockout or LockoutPolicy()
        self.backoff = backoff or BackoffPolicy()
        self.now = now
        self._sleep = sleep
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()

    def _fresh(self, last_failure: float, now: float) -> bool:
        return now - last_failure <= self.lockout.reset_after

    def delay(self, source: str) -> float:
        """Seconds between this source's login attempts now (0: not slowed)."""
        state = self._sources.get(source)
        backoff = self.backoff
        if state is None or not self._fresh(state.last_failure, self.now()):
            return 0.0
        over = state.failures - backoff.source_threshold
        if over < 0:
            return 0.0
        return float(min(backoff.delay * 2 ** min(over, 32), backoff.max_delay))

    async def admit(self, source: str) -> None:
        """Wait for this source's turn to try a password, or raise :class:`LoginThrottled`."""
        delay = self.delay(source)
        if delay <= 0:
            return
        now = self.now()
        state = self._sources[source]
        start = max(now, state.next_turn)
        if start - now > self.backoff.max_wait:
            raise LoginThrottled(math.ceil(start - now))
        state.next_turn = start + delay
        if start > now:
            await self._sleep(start - now)

    def locked_for(self, source: str, username: str) -> bool:
        pair = self._pairs.get((source, username))
        return pair is not None and pair.locked_until > self.now()

    def locked(self, username: str) -> bool:
        """Whether any source is locked out of ``username`` now (the account's ``Locked``)."""
        now = self.now()
        return any(u == username and p.locked_until > now for (_, u), p in self._pairs.items())

    def failed(self, source: str, username: str) -> tuple[bool, float]:
        """Count a failed login; (first failure of this source for this account in a while,
        seconds of the lockout it started or 0)."""
        now, cap = self.now(), self.backoff.max_entries
        state = _touch(self._sources, source, _Source, cap)
        if not self._fresh(state.last_failure, now):
            state.failures = 0
        state.failures += 1
        state.last_failure = now
        pair = _touch(self._pairs, (source, username), _Pair, cap)
        if pair.locked_until > now:
            return False, 0.0  # refused while locked: the lock already says it all
        if not self._fresh(pair.last_failure, now):
            pair.failures = 0
        pair.failures += 1
        pair.last_failure = now
        first = pair.failures == 1
        policy = self.lockout
        if policy.threshold and pair.failures >= policy.threshold:
            seconds = float(min(policy.duration * 2 ** min(pair.lockouts, 32), policy.max_duration))
            pair.locked_until = now + seconds
            pair.lockouts += 1
            pair.failures = 0
            return first, seconds
        return first, 0.0

    def succeeded(self, source: str, username: str) -> None:
        """A right password: this source's count for this account starts again (the source's
        own count does not: a valid account must not launder guesses at another)."""
        self._pairs.pop((source, username), None)

    def unlock(self, username: str) -> bool:
        """Clear every lock and count of ``username``; whether one was locked."""
        was = self.locked(username)
        for key in [k for k in self._pairs if k[1] == username]:
            del self._pairs[key]
        return was

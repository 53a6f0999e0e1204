"""One periodic chore: run ``body()`` every ``interval`` seconds, on an owned task.

The controller's housekeeping (TUF timestamp refresh), PKI maintenance (renewal, CRL) and
unit certificates are all "do one round, sleep, repeat". This is the one loop they share:
each sleep is jittered (±``jitter``) so two chores, or two controllers, do not fall into step;
a round that fails (raises, or returns False: "not done yet") is retried after ``retry``
seconds, doubling on each further failure up to ``interval``; every round is counted by
chore and result (``racklet_controller_loop_runs_total``) and timed. A round's exception is
logged with its traceback and never ends the loop. Not here: who may run it — a chore that
only the leader may do is a leader-only service (:mod:`racklet.controller._services`),
started on election and stopped on deposition, so the loop itself never asks.

Woken rounds. Whoever sees that a chore has work now (a new board for the certificate
chore) calls :meth:`Periodic.wake`, which cuts the sleep short, so the chore need not wait out
its interval. Wakes are evidence from outside, some of it a remote device's doing (a board
that keeps failing TLS), so they are rate-limited here, once for every chore: a woken round
starts no sooner than ``wake_gap`` seconds after the previous round began, and the wakes that
arrive meanwhile share that one round. A chore may give a cheaper ``woken`` body (only what
it was woken for); its result then does not stand for the whole chore: a failure brings the
next full round forward (the retry back-off), a success leaves the schedule as it was. Without
a ``woken`` body a woken round is simply the next round, early. Counted as
``<name>:woken``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from racklet.log import get_logger
from racklet.tasks import OwnedTask

log = get_logger("controller")

Round = Callable[[], Awaitable[bool | None]]
"""One round: False when it should be retried soon (a failure), True or None when done."""


class LoopObserver(Protocol):
    """Where a chore's rounds are counted (the controller's metrics)."""

    def loop_finished(self, loop: str, seconds: float, ok: bool) -> None: ...


class Periodic:
    def __init__(
        self,
        name: str,
        body: Round,
        *,
        interval: float,
        retry: float | None = None,
        jitter: float = 0.1,
        observer: LoopObserver | None = None,
        woken: Round | None = None,
        wake_gap: float | None = None,
    ) -> None:
        """``woken``: the round a :meth:`wake` brings (default: ``body``); ``wake_gap``: the
        least seconds from the start of one round to a woken round's (default: ``retry``)."""
        if interval <= 0 or not 0 <= jitter < 1:
            raise ValueError("interval must be positive and jitter in [0, 1)")
        self.name = name
        self._body = body
        self._woken = woken
        self.interval = interval
        self.retry = min(retry if retry is not None else interval, interval)
        self.wake_gap = self.retry if wake_gap is None else wake_gap
        if self.wake_gap < 0:
            raise ValueError("wake_gap must not be negative")
        self._jitter = jitter
        self._observer = observer
        self._task = OwnedTask(f"controller:{name}")
        self._wanted = asyncio.Event()
        self._last_start = float("-inf")
        self.failures = 0
        """Rounds failed in a row (0 after a good round)."""

    @property
    def running(self) -> bool:
        return self._task.task is not None and not self._task.task.done()

    async def start(self) -> None:
        """Start the loop; its first round runs at once."""
        self._task.start(self._loop)

    async def stop(self) -> None:
        await self._task.stop()

    def wake(self) -> None:
        """Ask for a round now rather than at the end of the interval: at once, or once
        ``wake_gap`` has passed since the last round began; wakes until then share it."""
        self._wanted.set()

    def delay(self) -> float:
        """Seconds until the next round: the interval, or the back-off after failures."""
        base = self.interval
        if self.failures:
            base = min(self.interval, self.retry * 2.0 ** (self.failures - 1))
        return base * random.uniform(1 - self._jitter, 1 + self._jitter)

    async def run_round(self) -> bool:
        """One round now, counted and logged like the loop's own; whether it succeeded."""
        return await self._run(self._body, self.name)

    async def _run(self, body: Round, label: str, *, partial: bool = False) -> bool:
        """One round of ``body``; a ``partial`` one's success says nothing of the rest of
        the chore, so it leaves the failure count as it was."""
        started = time.perf_counter()
        try:
            ok = await body() is not False
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad round must not end the chore: logged, retried
            log.exception("%s: round failed", label)
            ok = False
        if not ok:
            self.failures += 1
        elif not partial:
            self.failures = 0
        if self._observer is not None:
            self._observer.loop_finished(label, time.perf_counter() - started, ok)
        return ok

    async def _loop(self) -> None:
        clock = asyncio.get_running_loop().time
        # An event of this loop's own (a service may be started again on another event
        # loop); wakes from before are covered by the first round, a full one, at once.
        self._wanted = asyncio.Event()
        due = clock()
        while True:
            woken = clock() < due
            self._wanted.clear()  # this round covers every wake before it began
            self._last_start = clock()
            if not woken:
                await self.run_round()
                due = clock() + self.delay()
            elif self._woken is None:  # the next round, early
                await self._run(self._body, f"{self.name}:woken")
                due = clock() + self.delay()
            elif not await self._run(self._woken, f"{self.name}:woken", partial=True):
                due = min(due, clock() + self.delay())
            await self._sleep_until(due)

    async def _sleep_until(self, due: float) -> None:
        """Until ``due``, or until a wake may start a round (see the module docstring)."""
        clock = asyncio.get_running_loop().time
        while (now := clock()) < due:
            if not self._wanted.is_set():
                try:
                    async with asyncio.timeout(due - now):
                        await self._wanted.wait()
                except TimeoutError:
                    return
                continue
            allowed = self._last_start + self.wake_gap
            if now >= allowed:
                return
            await asyncio.sleep(min(due, allowed) - now)

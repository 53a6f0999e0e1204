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
    ) -> None:
        if interval <= 0 or not 0 <= jitter < 1:
            raise ValueError("interval must be positive and jitter in [0, 1)")
        self.name = name
        self._body = body
        self.interval = interval
        self.retry = min(retry if retry is not None else interval, interval)
        self._jitter = jitter
        self._observer = observer
        self._task = OwnedTask(f"controller:{name}")
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

    def delay(self) -> float:
        """Seconds until the next round: the interval, or the back-off after failures."""
        base = self.interval
        if self.failures:
            base = min(self.interval, self.retry * 2.0 ** (self.failures - 1))
        return base * random.uniform(1 - self._jitter, 1 + self._jitter)

    async def run_round(self) -> bool:
        """One round now, counted and logged like the loop's own; whether it succeeded."""
        started = time.perf_counter()
        try:
            ok = await self._body() is not False
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad round must not end the chore: logged, retried
            log.exception("%s: round failed", self.name)
            ok = False
        self.failures = 0 if ok else self.failures + 1
        if self._observer is not None:
            self._observer.loop_finished(self.name, time.perf_counter() - started, ok)
        return ok

    async def _loop(self) -> None:
        while True:
            await self.run_round()
            await asyncio.sleep(self.delay())

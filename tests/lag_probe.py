"""A loop-lag probe: a task that sleeps a short interval and records how late it wakes.

A request that blocks the event loop (a parse, a walk over an expanded YAML alias) delays
every other task on it; the probe sees that delay as a late wake-up, whichever request
caused it. Each sample also records how much CPU the loop's thread used while the probe
slept: a late wake-up on a busy shared host can be the scheduler's doing, and only the part
the loop itself was computing (``blocked``) is charged to the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class LagProbe:
    interval: float = 0.005
    late: list[float] = field(default_factory=list)
    """Seconds each wake-up came after its due time (wall clock)."""
    blocked: list[float] = field(default_factory=list)
    """Per sample: the lateness, capped by the CPU the loop thread used meanwhile."""
    woke: list[float] = field(default_factory=list)
    """Per sample: when it woke (``time.perf_counter()``), to find what ran before it."""
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop (call from that loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def reset(self) -> None:
        self.late.clear()
        self.blocked.clear()
        self.woke.clear()

    def worst(self) -> tuple[float, float, float]:
        """The most blocked sample: (blocked seconds, when it slept, when it woke)."""
        index = max(range(len(self.blocked)), key=self.blocked.__getitem__)
        woke = self.woke[index]
        return self.blocked[index], woke - self.interval - self.late[index], woke

    async def _run(self) -> None:
        while True:  # perf_counter, not loop.time(): uvloop's clock has millisecond steps
            due = time.perf_counter() + self.interval
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            late = max(0.0, now - due)
            self.woke.append(now)
            self.late.append(late)
            self.blocked.append(min(late, time.thread_time() - cpu))

    def summary(self) -> dict[str, float]:
        """p50, p99 and max lateness in milliseconds (wall clock), and the max blocked."""
        if not self.late:
            return {"samples": 0}
        ordered = sorted(self.late)
        return {
            "samples": len(ordered),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2),
            "max_blocked_ms": round(max(self.blocked) * 1000, 2),
        }

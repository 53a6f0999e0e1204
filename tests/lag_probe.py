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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - due)
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

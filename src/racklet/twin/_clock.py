"""The twin's one clock: every simulated delay reads it, so ``--speed`` scales them all.

Simulated time starts at 0 and runs ``speed`` times faster than the host's monotonic clock.
Tests wait on simulated events (a phase change, a boot) rather than on wall-clock sleeps.
"""

from __future__ import annotations

import asyncio
import time


class SimClock:
    """Simulated seconds since the twin started, at ``speed`` × real time."""

    def __init__(self, speed: float = 1.0) -> None:
        if not 0 < speed <= 1000:
            raise ValueError(f"speed must be in (0, 1000], got {speed}")
        self.speed = speed
        self._origin = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

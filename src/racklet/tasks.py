"""One background task a service owns: started once, cancelled and awaited on stop.

The controller's periodic chores and its election, the GitOps watcher and the BMC's firmware
self-test each run one loop; this is the single place that starts, cancels and awaits it, so
no loop outlives its owner and a crash of one is logged rather than lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from racklet.log import get_logger

log = get_logger("tasks")


class OwnedTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The running task, if any (tests freeze a loop through it)."""
        return self._task

    def start(self, loop: Callable[[], Coroutine[Any, Any, None]], name: str = "") -> None:
        """Run ``loop()`` as the task (named ``name`` if given), unless it already runs."""
        if self._task is None:
            self.name = name or self.name
            self._task = asyncio.create_task(loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s had failed before it was stopped", self.name)

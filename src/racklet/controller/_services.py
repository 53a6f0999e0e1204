"""A process as an ordered list of services, some of them only for the leader.

Each service has ``start()`` and ``stop()``. :class:`Services` starts them in the order they
were added, through an :class:`contextlib.AsyncExitStack`, so a failure half-way stops what had
started (in reverse) and re-raises, and a clean stop is the same unwinding. Services added
with ``leader_only=True`` form one group that starts and stops as a whole: where the process
has a leader election, its hooks call :meth:`Services.elected` and :meth:`Services.deposed`;
without one the group starts at the place :meth:`Services.add_leadership` marks. No service
asks "am I the leader?" in a loop: it runs only while the process leads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from racklet.log import get_logger

log = get_logger("controller")


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Hooks:
    """A service made of two callables (for things that are not objects with start/stop)."""

    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        if self.on_start is not None:
            await self.on_start()

    async def stop(self) -> None:
        if self.on_stop is not None:
            await self.on_stop()


class _Group:
    """Services started in order and stopped in reverse, as one."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Service]] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._stack is not None

    async def start(self) -> None:
        async with self._lock:
            if self._stack is not None:
                return
            async with contextlib.AsyncExitStack() as stack:
                for name, service in self.entries:
                    log.debug("starting %s", name)
                    await service.start()
                    stack.push_async_callback(service.stop)
                self._stack = stack.pop_all()

    async def stop(self) -> None:
        async with self._lock:
            stack, self._stack = self._stack, None
            if stack is not None:
                await stack.aclose()


class Services:
    def __init__(self) -> None:
        self._main = _Group()
        self._leader = _Group()

    def add(self, name: str, service: Service, *, leader_only: bool = False) -> None:
        """Append ``service``; a leader-only one joins the group that runs while leading."""
        (self._leader if leader_only else self._main).entries.append((name, service))

    def add_leadership(self) -> None:
        """Start the leader-only group here, for a process that always leads (no election)."""
        self._main.entries.append(("leader-only services", self._leader))

    def names(self, *, leader_only: bool) -> list[str]:
        return [name for name, _ in (self._leader if leader_only else self._main).entries]

    @property
    def leading(self) -> bool:
        """Whether the leader-only services run now."""
        return self._leader.running

    async def elected(self) -> None:
        await self._leader.start()

    async def deposed(self) -> None:
        await self._leader.stop()

    async def start(self) -> None:
        await self._main.start()

    async def stop(self) -> None:
        await self._leader.stop()
        await self._main.stop()

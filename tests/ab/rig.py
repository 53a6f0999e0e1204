"""An in-process A/B rig: a TUF repository read straight from disk, a unit host and its BMC.

No sockets for the boot path: the bootstrap client gets a ``FetcherInterface`` that reads the
repository's files (the same bytes the boot server would send), so hundreds of updates run in
seconds. The BMC side is the BMC's real ``AbState`` behind the real link protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors

from racklet.boot._tuf_api import FetcherInterface
from tests.boot.fakes import FakeBmc, FakeHost

PREFIX = "/boot/v1/"
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class DiskFetcher(FetcherInterface):
    """Serves ``https://.../boot/v1/<path>`` from ``repo/<path>``; ``on_chunk`` sees each chunk."""

    def __init__(self, repo: Path, cut: PowerCut | None = None) -> None:
        self._repo = repo
        self._cut = cut

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self._repo / url.split(PREFIX, 1)[1]
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise tuf_errors.DownloadHTTPError(f"404 for {url}", 404) from exc
        return self._chunks(data)

    def _chunks(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, max(len(data), 1), 8192):
            if self._cut is not None:
                if self._cut.fired:  # the CPU stopped: the worker gets no further
                    raise tuf_errors.DownloadError("power cut")
                self._cut.tick_from_thread()
            yield data[start : start + 8192]


class PowerCut:
    """Counts observable events of a power-on (console lines, BMC requests, download chunks)
    and cancels the unit's firmware task at the ``at``-th one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.events = 0
        self.at: int | None = None
        self.task: asyncio.Task[object] | None = None
        self.fired = False

    def tick(self) -> None:
        self.events += 1
        if self.at is not None and self.events == self.at and self.task is not None:
            self.fired = True
            self.task.cancel()

    def tick_from_thread(self) -> None:
        self._loop.call_soon_threadsafe(self.tick)


class CutHost(FakeHost):
    def __init__(self, storage: Path, bmc: FakeBmc, cut: PowerCut) -> None:
        super().__init__(storage, bmc, speed=1000.0)
        self.cut = cut

    def console(self, line: str) -> None:
        super().console(line)
        self.cut.tick()


class CutBmc(FakeBmc):
    """A BMC whose every answered request is an instant at which the unit may lose power
    (after the BMC applied it, before the unit read the answer)."""

    cut: PowerCut | None = None

    def handlers(self) -> dict[str, Handler]:
        inner = super().handlers()

        def wrap(handler: Handler) -> Handler:
            async def run(request: dict[str, Any]) -> dict[str, Any]:
                answer = await handler(request)
                if self.cut is not None:
                    self.cut.tick()
                return answer

            return run

        return {op: wrap(handler) for op, handler in inner.items()}

"""The unit's serial console as the BMC keeps it: a bounded log of whole lines.

Each line gets a sequence number that never repeats, so a LogEntry's ``Id`` stays stable
while older lines fall off the front. Bytes are decoded as UTF-8 with replacement: a
console is untrusted input and must never stop the capture.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import deque
from dataclasses import dataclass

from racklet.hw import Uart

MAX_LINE = 4096
WATCH_BACKLOG = 1000


@dataclass(frozen=True)
class ConsoleLine:
    seq: int
    created: dt.datetime
    text: str


class ConsoleLog:
    """Captured console lines, oldest first, at most ``capacity`` of them."""

    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._lines: deque[ConsoleLine] = deque(maxlen=capacity)
        self._partial = b""
        self._next = 1
        self._watchers: set[asyncio.Queue[ConsoleLine]] = set()

    def watch(self) -> asyncio.Queue[ConsoleLine]:
        """A queue that receives every line captured from now on (see :meth:`unwatch`)."""
        queue: asyncio.Queue[ConsoleLine] = asyncio.Queue(maxsize=WATCH_BACKLOG)
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[ConsoleLine]) -> None:
        self._watchers.discard(queue)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def feed(self, chunk: bytes) -> None:
        """Append console bytes; complete lines become entries, the rest waits."""
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            self._append(raw)
        while len(self._partial) > MAX_LINE:  # a runaway line without newline
            self._append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]

    def _append(self, raw: bytes) -> None:
        text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        line = ConsoleLine(self._next, dt.datetime.now(dt.UTC), text)
        self._lines.append(line)
        self._next += 1
        for queue in self._watchers:
            if queue.full():  # a slow watcher loses its oldest lines, never the capture
                queue.get_nowait()
            queue.put_nowait(line)

    def lines(self) -> list[ConsoleLine]:
        return list(self._lines)

    def get(self, seq: int) -> ConsoleLine | None:
        for line in self._lines:
            if line.seq == seq:
                return line
        return None

    def clear(self) -> None:
        self._lines.clear()


async def capture(uart: Uart, log: ConsoleLog) -> None:
    """Copy the UART into ``log`` until cancelled."""
    while True:
        log.feed(await uart.read())

"""The twin's backplane link and console: real byte streams between a unit and its BMC.

Each ``connect()`` from the unit makes a ``socket.socketpair()``, opens asyncio streams on both
ends and hands the BMC end to the handler the BMC registered with ``serve()``, so both sides
speak over a genuine byte stream, as over a USB CDC serial line. When the unit loses power
its ends are closed, and the BMC sees end-of-stream.
"""

from __future__ import annotations

import asyncio
import socket

from racklet.hw import LinkHandler
from racklet.log import get_logger
from racklet.twin.errors import TwinError


class ConsoleBuffer:
    """A bounded UART FIFO: the oldest bytes are dropped when the BMC does not keep up."""

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit = limit
        self._data = bytearray()
        self._ready = asyncio.Event()

    def write(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > self.limit:
            del self._data[: len(self._data) - self.limit]
        self._ready.set()

    async def read(self) -> bytes:
        """Everything buffered so far; waits until there is something."""
        while not self._data:
            self._ready.clear()
            await self._ready.wait()
        chunk = bytes(self._data)
        self._data.clear()
        return chunk


class BackplanePipe:
    """Both ends of one unit's backplane link: ``serve`` for the BMC, ``connect`` for the unit."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._handler: LinkHandler | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._unit_writers: set[asyncio.StreamWriter] = set()
        self._log = get_logger("twin", unit=unit)

    async def serve(self, handler: LinkHandler) -> None:
        if self._handler is not None:
            raise TwinError(f"the backplane link of {self.unit} is already being served")
        self._handler = handler
        try:
            await asyncio.Event().wait()
        finally:
            self._handler = None
            await self.close()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        handler = self._handler
        if handler is None:
            raise ConnectionRefusedError(f"no BMC is serving the backplane link of {self.unit}")
        unit_sock, bmc_sock = socket.socketpair()
        try:
            bmc_reader, bmc_writer = await asyncio.open_connection(sock=bmc_sock)
            reader, writer = await asyncio.open_connection(sock=unit_sock)
        except BaseException:
            unit_sock.close()
            bmc_sock.close()
            raise
        session = asyncio.create_task(self._session(handler, bmc_reader, bmc_writer))
        self._sessions.add(session)
        session.add_done_callback(self._sessions.discard)
        self._unit_writers.add(writer)
        return reader, writer

    async def _session(
        self, handler: LinkHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, OSError) as exc:
            self._log.info(f"backplane link session ended: {exc}")
        except Exception:
            self._log.exception("backplane link handler failed")
        finally:
            writer.close()

    def sever(self) -> None:
        """The unit lost power: close its ends of every open link."""
        for writer in list(self._unit_writers):
            writer.close()
        self._unit_writers.clear()

    async def close(self) -> None:
        """Sever the unit's ends and cancel and await every BMC-side session."""
        self.sever()
        sessions = list(self._sessions)
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

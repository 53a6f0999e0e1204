"""Frames, the unit-side client and the BMC-side dispatcher of the backplane link."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from racklet.errors import RackletError

MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class LinkError(RackletError):
    """The link broke, a frame was malformed, or the far end refused a request."""


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise LinkError("link closed in the middle of a frame header") from exc
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise LinkError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise LinkError("link closed in the middle of a frame") from exc
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise LinkError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise LinkError("frame is not a JSON object")
    return message


async def write_frame(writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise LinkError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    writer.write(_HEADER.pack(len(body)) + body)
    await writer.drain()


class LinkClient:
    """The unit's end: one request at a time, each answered before the next."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        async with self._lock:
            try:
                await write_frame(self._writer, {"op": op, **fields})
                answer = await read_frame(self._reader)
            except (ConnectionError, OSError) as exc:
                raise LinkError(f"backplane link failed during {op!r}: {exc}") from exc
        if answer is None:
            raise LinkError(f"the BMC closed the link during {op!r}")
        if not answer.get("ok"):
            raise LinkError(f"the BMC refused {op!r}: {answer.get('error', 'no reason given')}")
        return answer

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def serve_link(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handlers: Mapping[str, Handler],
) -> None:
    """The BMC's end: answer every request on one connection until the unit closes it."""
    try:
        while True:
            try:
                request = await read_frame(reader)
            except LinkError as exc:
                await write_frame(writer, {"ok": False, "error": str(exc)})
                return
            if request is None:
                return
            handler = handlers.get(str(request.get("op")))
            if handler is None:
                answer: dict[str, Any] = {"ok": False, "error": f"unknown op {request.get('op')!r}"}
            else:
                try:
                    answer = {"ok": True, **await handler(request)}
                except RackletError as exc:
                    answer = {"ok": False, "error": str(exc)}
            await write_frame(writer, answer)
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()

"""Reading a Redfish event stream (SSE) from a peer that may be hostile: bounded everywhere.

The controller follows each BMC's stream and the RMC relays every BMC's: both read with this,
so a compromised BMC cannot make either buffer without bound. httpx's ``aiter_lines`` keeps a
line until its break arrives, however long; here a line longer than :data:`MAX_EVENT_BYTES`
drops the stream (the reader opens it again), and a frame whose ``data:`` lines add up to more
is dropped alone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from racklet.redfish.errors import RedfishUnreachable

MAX_EVENT_BYTES = 64 * 1024
"""An SSE frame longer than this is dropped (a BMC's events are a few hundred bytes)."""


async def bounded_lines(chunks: AsyncIterator[bytes], where: str) -> AsyncIterator[str]:
    """The stream's lines (``\n`` or ``\r\n``), none longer than :data:`MAX_EVENT_BYTES`;
    a longer one raises :class:`RedfishUnreachable` naming ``where``."""
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end]).rstrip(b"\r")
            del pending[: end + 1]
            yield line.decode("utf-8", "replace")
        if len(pending) > MAX_EVENT_BYTES:
            raise RedfishUnreachable(
                f"{where}: a line longer than {MAX_EVENT_BYTES} bytes: the stream is dropped"
            )
    if pending:
        yield bytes(pending).rstrip(b"\r").decode("utf-8", "replace")


async def sse_frames(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Each frame's ``id:`` (empty without one) and the JSON object of its ``data:`` lines;
    comments skipped, a frame that is not a JSON object, or too long, dropped."""
    event_id, size = "", 0
    data: list[str] = []
    async for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            size += len(line)
            if size <= MAX_EVENT_BYTES:
                data.append(line[5:].strip())
            else:  # dropped: what is left of it is not kept either
                data.clear()
        elif not line:
            frame, frame_id = "\n".join(data), event_id
            event_id, data, size = "", [], 0
            try:
                payload = json.loads(frame) if frame else None
            except ValueError:
                payload = None
            if isinstance(payload, dict):
                yield frame_id, payload

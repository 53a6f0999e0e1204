"""Actions carried out once per ``Idempotency-Key`` (the IETF httpapi draft's header).

A controller that records "power-cycle unit-3" and then dies cannot know whether its reset
reached the BMC; the controller that takes over sends it again with the same key, and the BMC
answers the repeat with the first request's outcome instead of cycling the unit twice. Keys
are remembered in memory (the newest ``capacity``), which covers a failover's few seconds;
a BMC restart forgets them. A request without the header acts as before. The same key with a
different request is refused (422), as the draft asks, so a client bug cannot hide.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from racklet.bmc._http.registry import RedfishErrorReply

HEADER = "Idempotency-Key"
_MAX_KEY = 255


class OnceByKey:
    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, tuple[str, asyncio.Future[None]]] = OrderedDict()

    async def run(
        self, key: str | None, fingerprint: str, action: Callable[[], Awaitable[None]]
    ) -> None:
        """Carry out ``action`` unless ``key`` was seen; a repeat gets the first outcome."""
        if key is None:
            await action()
            return
        if not 0 < len(key) <= _MAX_KEY or not key.isprintable():
            raise RedfishErrorReply(
                400,
                "HeaderInvalid",
                HEADER,
                resolution=f"Send 1 to {_MAX_KEY} printable characters.",
            )
        known = self._seen.get(key)
        if known is not None:
            if known[0] != fingerprint:
                raise RedfishErrorReply(
                    422,
                    "HeaderInvalid",
                    HEADER,
                    resolution="This key was used for a different request; send a new key.",
                )
            await asyncio.shield(known[1])  # the first request's outcome, error included
            return
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcome.add_done_callback(_retrieved)
        self._seen[key] = (fingerprint, outcome)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        try:
            await action()
        except BaseException as exc:
            if self._seen.get(key, (None, None))[1] is outcome:
                del self._seen[key]  # it did not happen: a later retry may act
            if isinstance(exc, asyncio.CancelledError):
                outcome.cancel()
            else:
                outcome.set_exception(exc)
            raise
        outcome.set_result(None)


def _retrieved(outcome: asyncio.Future[None]) -> None:
    """Mark an error as seen: nobody may repeat the request to hear of it."""
    if not outcome.cancelled():
        outcome.exception()

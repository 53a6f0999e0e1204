"""The BMCs' event streams: a unit's power change wakes its reconciler at once.

The unit reconciler learns a unit's state by looking through its BMC, when woken (a
heartbeat, a fault cleared, a neighbour) and at resync. A power loss nobody here caused
(a cut supply, a pulled board, someone at the BMC) would otherwise be seen only at the next
look: up to a resync period later, which at ``--speed 10`` is five heartbeat intervals, all
of it added to the time a VM on that unit takes to run elsewhere. So the controller follows
each BMC's Redfish ``EventService/SSE`` stream through its own client (mutual TLS, pinned to
``spiffe://<rack>/bmc/<unit>``, following the CRL) and wakes the unit's reconciler on each
power, boot or BMC-start event (``ResourceEvent``, ``Platform``, ``Racklet``; not sensor
readings nor logins).

An event only says *when* to look: the phase still comes from the look (so a lost or
forged event changes nothing but the timing), and resync stays the fallback. A stream that
drops (the BMC restarted, the network) is opened again after a pause, 1 s doubling to 30 s;
each opening also wakes the unit, as events may have been missed meanwhile. An opening after
a drop is also told to ``reopened`` (the controller's certificate chore): a BMC that came
back may be a new or reset board holding no identity of this rack.

Cost: one open TLS connection and one task blocked in a read per unit, nothing while the
unit is quiet, one wake per event. At 10,000 units per controller that is 10,000 sockets
(above the usual soft limit of 1,024 open files: raise ``RLIMIT_NOFILE``) and some tens of
KiB of memory each (the TLS and HTTP/1.1 connection state, read buffers, the task), a few
hundred MiB in all, and each BMC serves one stream more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from racklet.log import get_logger
from racklet.redfish import RedfishClientError
from racklet.tasks import OwnedTask

WAKING_REGISTRIES = frozenset({"ResourceEvent", "Platform", "Racklet"})
"""Events that may change a unit's phase: power, boot progress, a failed boot, the BMC's
own start."""
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 30.0

log = get_logger("controller")


class EventSource(Protocol):
    """The part of :class:`racklet.redfish.RedfishClient` followed here."""

    def events(self) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]: ...


def wakes(payload: dict[str, Any]) -> bool:
    """Whether an ``Event`` payload holds a record that may change the unit's phase."""
    records = payload.get("Events")
    if not isinstance(records, list):
        return False
    for record in records:
        message_id = record.get("MessageId") if isinstance(record, dict) else None
        if isinstance(message_id, str) and message_id.split(".", 1)[0] in WAKING_REGISTRIES:
            return True
    return False


class BmcEvents:
    """One followed event stream per BMC (``sources``: unit name → its BMC's client);
    ``wake(unit)`` queues the unit's reconciler. A service: :meth:`start`, :meth:`stop`."""

    def __init__(
        self,
        sources: Mapping[str, EventSource],
        wake: Callable[[str], None],
        *,
        retry_first: float = RETRY_FIRST_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
        reopened: Callable[[str], None] | None = None,
    ) -> None:
        self._sources = dict(sources)
        self._wake = wake
        self._reopened = reopened
        self._retry = (retry_first, retry_max)
        self._tasks = {unit: OwnedTask(f"controller:bmc-events:{unit}") for unit in sources}
        self.connected: set[str] = set()
        """The units whose BMC's stream is open now."""

    async def start(self) -> None:
        for unit, task in self._tasks.items():
            task.start(lambda unit=unit: self._follow(unit))  # type: ignore[misc]

    async def stop(self) -> None:
        for task in self._tasks.values():
            await task.stop()
        self.connected.clear()

    async def _follow(self, unit: str) -> None:
        first, most = self._retry
        pause = first
        opened = False
        while True:
            try:
                async with self._sources[unit].events() as events:
                    self.connected.add(unit)
                    log.info("%s: following its BMC's events", unit, extra={"unit": unit})
                    pause = first
                    self._wake(unit)  # what happened while no stream was open
                    if opened and self._reopened is not None:
                        self._reopened(unit)
                    opened = True
                    async for payload in events:
                        if wakes(payload):
                            self._wake(unit)
                log.info("%s: its BMC's event stream ended", unit, extra={"unit": unit})
            except RedfishClientError as exc:
                log.warning(
                    "%s: no event stream from its BMC (%s); again in %.0f s",
                    unit,
                    exc,
                    pause,
                    extra={"unit": unit},
                )
            finally:
                self.connected.discard(unit)
            await asyncio.sleep(pause)
            pause = min(pause * 2, most)

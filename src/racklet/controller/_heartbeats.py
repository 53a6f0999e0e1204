"""The latest heartbeat of each unit's OS agent, kept in memory.

Heartbeats prove the OS is up and reachable; they are observations like Redfish readings, so
they are not stored: after a restart the controller waits for the next one. Freshness is
judged on the monotonic clock (``clock``), the wall time is only for display.

How long a heartbeat stays fresh follows the agent: it announces its interval
(``heartbeatIntervalSeconds``, in its own clock's seconds; a twin's clock runs ``time_scale``
times faster than this one), and a unit that missed :data:`MISSED_INTERVALS` of them is
silent — so a partition shows within two intervals — but never less than
:data:`MIN_TIMEOUT_SECONDS` of this clock, below which a loaded host's lagging event loops
would look like lost heartbeats. An agent that announces nothing gets the fallback
(:data:`FALLBACK_TIMEOUT_SECONDS`). With :meth:`watch`, the registry wakes the unit's
reconciler the moment its latest heartbeat goes stale, rather than at its next resync.

A heartbeat wakes the unit's reconciler only when it is news (:meth:`HeartbeatRegistry.news`):
each look tells the registry which heartbeat it read and whether it counted it as the OS
running (:meth:`HeartbeatRegistry.looked`), and a heartbeat that says nothing more — the
same OS, agent and interval, a load within :data:`LOAD_STEP` — waits for the next look. An
idle agent heartbeats many times per look (every 40 ms at a twin's speed 50), and each look
is two Redfish reads over TLS and a status write, so looking at every one was most of an
idle controller's CPU. What such a heartbeat alone would change — ``lastHeartbeatTime``, a
load drifting by less than the step — is written at the unit's next look (its resync).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from racklet.api import utcnow
from racklet.api._meta import DnsLabel, Model

MISSED_INTERVALS = 2.0
MIN_TIMEOUT_SECONDS = 2.0
FALLBACK_TIMEOUT_SECONDS = 10.0
_STALE_MARGIN_SECONDS = 0.05  # wake just after the freshness test can fail, not just before
LOAD_STEP = 0.01
"""A load that moved by this much (a hundredth of the unit's cores) since the last look is
news: a stress job or a VM starting shows at once, a VM's CPU drifting does not wake a look."""
SETTLE_BEATS = 3
"""After a look that saw the load move, this many more heartbeats are news too: the unit's
draw follows its load through the BMC's next power-monitor sample, which the look that saw
the load may have come just before (rmc.md showed a unit at 100 % load with its idle draw)."""


class VmReport(Model):
    """What an agent says about one of its VMs."""

    name: DnsLabel
    attempt: Annotated[int, Field(ge=0)]
    phase: Annotated[str, Field(max_length=20)]
    exit_code: int | None = None
    reason: Annotated[str, Field(max_length=500)] = ""
    cpu_seconds: Annotated[float, Field(ge=0)] | None = None


class DroppedPeer(Model):
    """A unit of the rack that the reporting unit's boot dropped as a payload peer."""

    unit: DnsLabel
    reason: Annotated[str, Field(max_length=300)] = ""


class HeartbeatBody(Model):
    """What an OS agent POSTs to ``/machine/v1/heartbeat``."""

    unit: DnsLabel
    agent_url: Annotated[str, Field(max_length=300)]
    os_version: Annotated[str, Field(max_length=200)]
    payload_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """The payload the unit runs, which it serves to the rack (peer-to-peer)..."""
    peer_url: Annotated[str, Field(max_length=300, pattern=r"^https://")] | None = None
    """...at this URL (absent: it serves nothing)."""
    dropped_peers: Annotated[list[DroppedPeer], Field(max_length=16)] = Field(default_factory=list)
    """Peers its boot's download dropped (bad bytes, failures): each becomes an event."""
    uptime_seconds: Annotated[float, Field(ge=0)] = 0.0
    temperature_celsius: float | None = None
    cpu_load: Annotated[float, Field(ge=0, le=1)] | None = None
    stress_job: Annotated[str, Field(max_length=64)] | None = None
    """The stress job the agent last took (so the controller stops offering it)."""
    cores: Annotated[int, Field(ge=1, le=1024)] | None = None
    """The unit's size for the MicroVM scheduler (absent from agents that run no VMs)."""
    memory_mi_b: Annotated[int | None, Field(ge=1, alias="memoryMiB")] = None
    microvms: Annotated[list[VmReport], Field(max_length=256)] = Field(default_factory=list)
    heartbeat_interval_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    """The agent's interval between heartbeats, in its own clock's seconds."""


@dataclass(frozen=True)
class HeartbeatRecord:
    body: HeartbeatBody
    received: float  # monotonic seconds
    received_at: dt.datetime  # wall time, for status.lastHeartbeatTime


@dataclass(frozen=True, slots=True)
class _Looked:
    """What the unit's last look read of its heartbeats."""

    beat: HeartbeatRecord | None
    counted: bool
    """Whether that look took it as a fresh heartbeat of the unit's current boot."""
    settling: int = 0
    """Heartbeats after this one that are still news: the draw settling after a load step."""


class HeartbeatRegistry:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        time_scale: float = 1.0,
        fallback_timeout: float = FALLBACK_TIMEOUT_SECONDS,
    ) -> None:
        """``time_scale``: how many of the agents' seconds pass per second of ``clock`` (a
        twin's ``--speed``; 1 on hardware)."""
        self.clock = clock
        self.time_scale = time_scale
        self.fallback_timeout = fallback_timeout
        self._latest: dict[str, HeartbeatRecord] = {}
        self._wake: Callable[[str], None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._looked: dict[str, _Looked] = {}
        self._followed: set[str] = set()

    def timeout_for(self, beat: HeartbeatRecord) -> float:
        """Seconds of ``clock`` after which ``beat`` is stale (see the module docstring)."""
        interval = beat.body.heartbeat_interval_seconds
        if interval is None:
            return self.fallback_timeout
        return max(MISSED_INTERVALS * interval / self.time_scale, MIN_TIMEOUT_SECONDS)

    def watch(self, wake: Callable[[str], None]) -> None:
        """Call ``wake(unit)`` when a unit's latest heartbeat goes stale."""
        self._wake = wake

    async def aclose(self) -> None:
        """Cancel every pending stale wake-up (the controller is stopping)."""
        self._wake = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def record(self, body: HeartbeatBody) -> HeartbeatRecord:
        beat = HeartbeatRecord(body=body, received=self.clock(), received_at=utcnow())
        self._latest[body.unit] = beat
        if self._wake is not None:
            self._arm(body.unit, self.timeout_for(beat) + _STALE_MARGIN_SECONDS)
        return beat

    def _arm(self, unit: str, delay: float) -> None:
        timer = self._timers.pop(unit, None)
        if timer is not None:
            timer.cancel()
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        self._timers[unit] = loop.call_later(delay, self._stale, unit, wake)

    def _stale(self, unit: str, wake: Callable[[str], None]) -> None:
        self._timers.pop(unit, None)
        wake(unit)

    def latest(self, unit: str) -> HeartbeatRecord | None:
        return self._latest.get(unit)

    def looked(self, unit: str, beat: HeartbeatRecord | None, *, counted: bool) -> None:
        """The unit's reconciler just read ``beat`` (its latest heartbeat) in a look, and
        took it as the running OS's (``counted``) or not (none, stale, an earlier boot's)."""
        before = self._looked.get(unit)
        settling = 0
        if before is not None and beat is not None and before.beat is not None:
            if _load_moved(beat.body, before.beat.body):
                settling = SETTLE_BEATS
            elif beat is not before.beat:
                settling = max(before.settling - 1, 0)
            else:
                settling = before.settling
        self._looked[unit] = _Looked(beat, counted, settling)

    def follow(self, unit: str, every: bool) -> None:
        """Whether each of ``unit``'s heartbeats is news whatever it says: while a power plan
        of its rack works from fresh readings (caps, a brown-out), looks keep their old pace."""
        if every:
            self._followed.add(unit)
        else:
            self._followed.discard(unit)

    def news(self, unit: str) -> bool:
        """Whether ``unit``'s latest heartbeat tells its reconciler something its last look
        did not know: the first heartbeat, or the first since the last look found none it
        could count (before a boot's first, after silence, before its BMC said the OS runs),
        or another OS version, agent URL or interval, or a load moved by :data:`LOAD_STEP`
        (and the :data:`SETTLE_BEATS` heartbeats after a look that saw it move)."""
        beat = self._latest.get(unit)
        looked = self._looked.get(unit)
        if beat is None:
            return False
        if looked is None or not looked.counted or looked.beat is None or unit in self._followed:
            return True
        if looked.settling and beat is not looked.beat:
            return True
        new, old = beat.body, looked.beat.body
        return (
            new.os_version != old.os_version
            or new.agent_url != old.agent_url
            or new.heartbeat_interval_seconds != old.heartbeat_interval_seconds
            or _load_moved(new, old)
        )

    def fresh(self) -> list[HeartbeatRecord]:
        """Every unit's latest heartbeat that is not stale yet."""
        now = self.clock()
        return [b for b in self._latest.values() if now - b.received <= self.timeout_for(b)]


def _load_moved(new: HeartbeatBody, old: HeartbeatBody) -> bool:
    return (new.cpu_load is None) != (old.cpu_load is None) or abs(
        (new.cpu_load or 0.0) - (old.cpu_load or 0.0)
    ) >= LOAD_STEP

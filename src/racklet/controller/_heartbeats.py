"""The latest heartbeat of each unit's OS agent, kept in memory.

Heartbeats prove the OS is up and reachable; they are observations like Redfish readings, so
they are not stored: after a restart the controller waits for the next one. Freshness is
judged on the monotonic clock (``clock``), the wall time is only for display.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from racklet.api import utcnow
from racklet.api._meta import DnsLabel, Model


class VmReport(Model):
    """What an agent says about one of its VMs."""

    name: DnsLabel
    attempt: Annotated[int, Field(ge=0)]
    phase: Annotated[str, Field(max_length=20)]
    exit_code: int | None = None
    reason: Annotated[str, Field(max_length=500)] = ""
    cpu_seconds: Annotated[float, Field(ge=0)] | None = None


class HeartbeatBody(Model):
    """What an OS agent POSTs to ``/machine/v1/heartbeat``."""

    unit: DnsLabel
    agent_url: Annotated[str, Field(max_length=300)]
    os_version: Annotated[str, Field(max_length=200)]
    uptime_seconds: Annotated[float, Field(ge=0)] = 0.0
    temperature_celsius: float | None = None
    cpu_load: Annotated[float, Field(ge=0, le=1)] | None = None
    stress_job: Annotated[str, Field(max_length=64)] | None = None
    """The stress job the agent last took (so the controller stops offering it)."""
    cores: Annotated[int, Field(ge=1, le=1024)] | None = None
    """The unit's size for the MicroVM scheduler (absent from agents that run no VMs)."""
    memory_mi_b: Annotated[int | None, Field(ge=1, alias="memoryMiB")] = None
    microvms: Annotated[list[VmReport], Field(max_length=256)] = Field(default_factory=list)


@dataclass(frozen=True)
class HeartbeatRecord:
    body: HeartbeatBody
    received: float  # monotonic seconds
    received_at: dt.datetime  # wall time, for status.lastHeartbeatTime


class HeartbeatRegistry:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._latest: dict[str, HeartbeatRecord] = {}

    def record(self, body: HeartbeatBody) -> HeartbeatRecord:
        beat = HeartbeatRecord(body=body, received=self.clock(), received_at=utcnow())
        self._latest[body.unit] = beat
        return beat

    def latest(self, unit: str) -> HeartbeatRecord | None:
        return self._latest.get(unit)

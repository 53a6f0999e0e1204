"""The last hour of every unit's power, temperature, load and energy, and the rack's, for the
dashboard's charts: a page opened now starts with what happened before it opened.

Why here and not in the browser or Prometheus: the charts must not depend on a page having
been open, nor on a Prometheus the rack may not run. The store already holds each unit's
latest reading (its status); this samples it every :data:`INTERVAL_SECONDS` into a
fixed-size ring per unit (``array('d')``: 8 bytes a value, none missing-value objects), so
memory is bounded by the rack's size whatever the uptime — about 29 KB per unit for an hour
at 5 s (``bench/dashboard.py`` measures it). A deleted unit's ring is dropped at the next
sample. Every controller samples (it only reads the store), so a page on any of them, or
on a controller that just took over, gets a history; a restarted controller starts afresh.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Sequence

from racklet.api import ComputeUnit, Rack
from racklet.controller._periodic import Periodic
from racklet.store import Store

INTERVAL_SECONDS = 5.0
SPAN_SECONDS = 3600.0
UNIT_FIELDS = ("time", "powerWatts", "temperatureCelsius", "cpuLoad", "energyJoules")
RACK_FIELDS = ("time", "powerWatts", "energyJoules")

Row = list[float | None]


class Ring:
    """The newest ``rows`` rows of ``width`` floats (None kept as NaN), oldest overwritten."""

    def __init__(self, rows: int, width: int) -> None:
        self._rows, self._width = rows, width
        self._data = array("d", bytes(8 * rows * width))
        self._next = 0
        self.count = 0

    def append(self, values: Sequence[float | None]) -> None:
        start = self._next * self._width
        for i, value in enumerate(values):
            self._data[start + i] = math.nan if value is None else float(value)
        self._next = (self._next + 1) % self._rows
        self.count = min(self.count + 1, self._rows)

    def rows(self, since: float = -math.inf) -> list[Row]:
        """Oldest first, rows whose first value (the time) is after ``since``."""
        out: list[Row] = []
        first = (self._next - self.count) % self._rows
        for n in range(self.count):
            start = ((first + n) % self._rows) * self._width
            row = self._data[start : start + self._width]
            if row[0] > since:
                out.append([None if math.isnan(v) else round(v, 3) for v in row])
        return out

    @property
    def nbytes(self) -> int:
        return self._data.itemsize * len(self._data)


class UnitHistory:
    """Samples the store's units and rack every ``interval`` seconds, keeping ``span``."""

    def __init__(
        self,
        store: Store,
        rack_name: str,
        *,
        interval: float = INTERVAL_SECONDS,
        span: float = SPAN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._rack_name = rack_name
        self._rows = max(2, math.ceil(span / interval))
        self._clock = clock
        self.interval = interval
        self.units: dict[str, Ring] = {}
        self.rack = Ring(self._rows, len(RACK_FIELDS))
        self._loop = Periodic("dashboard history", self.sample, interval=interval, jitter=0.0)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sample(self) -> None:
        """One row per unit and one for the rack, from the store's latest status."""
        now = self._clock()
        seen = set()
        for unit in await self._store.list(ComputeUnit):
            name = unit.metadata.name
            seen.add(name)
            ring = self.units.get(name)
            if ring is None:
                ring = self.units[name] = Ring(self._rows, len(UNIT_FIELDS))
            s = unit.status
            ring.append([now, s.power_watts, s.temperature_celsius, s.cpu_load, s.energy_joules])
        for gone in set(self.units) - seen:
            del self.units[gone]
        for rack in await self._store.list(Rack):
            if rack.metadata.name == self._rack_name:
                self.rack.append([now, rack.status.power_watts, rack.status.energy_joules])

    @property
    def nbytes(self) -> int:
        """The samples' memory (the rings' arrays), for the benchmark."""
        return self.rack.nbytes + sum(r.nbytes for r in self.units.values())


__all__ = ["RACK_FIELDS", "UNIT_FIELDS", "Ring", "UnitHistory"]

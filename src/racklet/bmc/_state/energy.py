"""The unit's energy counter as the BMC keeps it on its own storage, so it never goes back.

A Prometheus counter may only reset when the thing that counts starts afresh, and then its
``_created`` time must say so. The BMC's energy counter outlives BMC restarts (a firmware
update, a crash, a restart in place): the meter starts from the last value written here and
writes the running total every :data:`PERSIST_EVERY` host seconds and when the BMC stops.
What a crash loses is the energy since the last write, never more: the counter stays below
the truth instead of jumping back. The file (``energy.json``, 0600, written atomically)
holds the total in joules and the Unix time the count began (``_created``); a file that
cannot be read starts a new count with a new creation time, so a scraper sees a reset, not
a counter that shrank.

It does not integrate anything: :class:`racklet.bmc._state.power.Meter` does, from the samples.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from racklet.config import write_private
from racklet.log import ContextLogger

PERSIST_EVERY = 10.0
"""Host seconds between writes of the running total (disk wear against what a crash loses)."""


@dataclass(frozen=True)
class EnergyCount:
    joules: float
    created: float
    """Unix seconds when this count began (OpenMetrics ``_created``)."""


class EnergyFile:
    """``energy.json`` in the BMC's state dir."""

    def __init__(self, path: Path, log: ContextLogger) -> None:
        self.path = path
        self._log = log

    def load(self) -> EnergyCount:
        """The count to continue; a fresh one (from now) when there is none to trust."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            count = EnergyCount(float(data["energyJoules"]), float(data["createdUnix"]))
        except FileNotFoundError:
            return EnergyCount(0.0, time.time())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._log.warning(f"energy counter {self.path} unreadable ({exc}); starting anew")
            return EnergyCount(0.0, time.time())
        if not (math.isfinite(count.joules) and count.joules >= 0 and count.created > 0):
            self._log.warning(f"energy counter {self.path} holds {count}; starting anew")
            return EnergyCount(0.0, time.time())
        return count

    def save(self, count: EnergyCount) -> None:
        body = {"energyJoules": count.joules, "createdUnix": count.created}
        write_private(self.path, json.dumps(body) + "\n")

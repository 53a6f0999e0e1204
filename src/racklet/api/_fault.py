"""Fault (``racklet.dev/v1alpha1``): break the rack on purpose, declared like the rack itself.

Schema and target selection only; the Fault reconciler (``racklet.controller``) asks the
hardware side's control endpoint to apply and clear it. ``spec.type`` names what breaks,
``spec.params`` how; ``spec.selector`` picks units (by name, label, slot range, then a
seeded random N of those); ``spec.start`` says when (now, ``at`` a time, ``after`` a
duration); ``spec.duration`` how long (absent: until ``spec.cleared`` is set or the Fault is
deleted). Rack-wide types (busbar outage, brown-out, controller crash) take no selector.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from racklet.api._gitsource import Duration, parse_duration
from racklet.api._meta import API_VERSION, Condition, DnsLabel, Model, Object
from racklet.api._resources import ComputeUnit
from racklet.wire import RACK_WIDE_FAULTS, FaultKind

FaultType = FaultKind  # one list for both sides (racklet.wire)
RACK_WIDE: tuple[FaultType, ...] = RACK_WIDE_FAULTS
FaultPhase = Literal["Pending", "Active", "Cleared", "Failed"]
_SLOTS = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")


def parse_slots(text: str) -> list[int]:
    """Slots in ``1-3,5`` (ranges inclusive), ascending, each once."""
    slots: set[int] = set()
    for part in text.split(","):
        match = _SLOTS.match(part.strip())
        if match is None:
            raise ValueError(f"not a slot range like 3, 1-4 or 1-2,5: {text!r}")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 1 <= low <= high <= 16:
            raise ValueError(f"slot range {part.strip()!r} must be within 1..16, low to high")
        slots.update(range(low, high + 1))
    return sorted(slots)


class FaultSelector(Model):
    """Which units: all the given conditions hold (names, labels, slots); then ``random``
    picks that many of them with ``seed`` (the same seed, the same units)."""

    names: list[DnsLabel] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    slots: str | None = None
    random: Annotated[int, Field(ge=1)] | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> FaultSelector:
        if self.slots is not None:
            parse_slots(self.slots)
        return self

    @property
    def empty(self) -> bool:
        return not (self.names or self.labels or self.slots is not None or self.random)


class FaultStart(Model):
    """When to start: at most one of ``at`` and ``after``; neither means at once."""

    at: dt.datetime | None = None
    after: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> FaultStart:
        if self.at is not None and self.after is not None:
            raise ValueError("at most one of at and after")
        if self.after is not None:
            parse_duration(self.after)
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("at must carry a time zone (e.g. 2026-01-01T10:00:00Z)")
        return self


class FaultSpec(Model):
    type: FaultType
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    selector: FaultSelector = Field(default_factory=FaultSelector)
    start: FaultStart = Field(default_factory=FaultStart)
    duration: Duration | None = None
    cleared: bool = False
    """Set to clear the fault now (``racklet fault clear``); the Fault stays, as a record."""

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        for key, value in self.params.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"params.{key} must be a finite number")
        if self.duration is not None and parse_duration(self.duration) < 1:
            raise ValueError("duration must be at least 1s")
        if self.type in RACK_WIDE and not self.selector.empty:
            raise ValueError(f"a {self.type} hits the whole rack: it takes no selector")
        if self.type not in RACK_WIDE and self.selector.empty:
            raise ValueError(f"a {self.type} needs a selector (names, labels, slots or random)")
        return self


class FaultStatus(Model):
    phase: FaultPhase = "Pending"
    targets: list[str] = Field(default_factory=list)
    """The units the fault hit (empty for a rack-wide fault)."""
    start_time: dt.datetime | None = None
    clear_time: dt.datetime | None = None
    crashed_controller: str | None = None
    """A ControllerCrash: the controller process it crashes (host/pid/API port), recorded
    before the crash, so the restarted one knows the crash happened and does not repeat it."""
    message: str = ""
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class Fault(Object):
    """A fault injected into the rack and cleared again; conditions ``Injected`` and
    ``Cleared`` say what happened and why (a refusal names its reason)."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["Fault"] = "Fault"
    spec: FaultSpec
    status: FaultStatus = Field(default_factory=FaultStatus)


def select_targets(selector: FaultSelector, units: Sequence[ComputeUnit]) -> list[str]:
    """The unit names ``selector`` picks from ``units``, sorted by slot.

    A name that no unit has is kept (the hardware side refuses it with a reason), so a typo
    is reported rather than silently selecting nothing.
    """
    slots = set(parse_slots(selector.slots)) if selector.slots is not None else None
    by_name = {unit.metadata.name: unit for unit in units}
    picked: list[Any] = []
    for unit in sorted(units, key=lambda u: u.spec.slot):
        if selector.names and unit.metadata.name not in selector.names:
            continue
        labels = unit.metadata.labels or {}
        if any(labels.get(key) != value for key, value in selector.labels.items()):
            continue
        if slots is not None and unit.spec.slot not in slots:
            continue
        picked.append(unit.metadata.name)
    picked += [name for name in selector.names if name not in by_name]
    if selector.random is not None and selector.random < len(picked):
        chosen = set(random.Random(selector.seed).sample(picked, selector.random))
        picked = [name for name in picked if name in chosen]
    return picked

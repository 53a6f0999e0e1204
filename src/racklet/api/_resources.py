"""The resource kinds: Rack, ComputeUnit and Event (``racklet.dev/v1alpha1``).

A resource is its desired ``spec`` plus its observed ``status``; the status of a ComputeUnit
is written only by the controller, from observation (Redfish, heartbeats).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import Field

from racklet.api._meta import (
    API_VERSION,
    Condition,
    Model,
    Object,
    ObjectMeta,
    ObjectReference,
    utcnow,
)

Phase = Literal[
    "Unknown", "Absent", "Off", "PoweringOn", "Booting", "Running", "BootFailed", "Unreachable"
]
PHASES: tuple[Phase, ...] = (
    "Unknown",
    "Absent",
    "Off",
    "PoweringOn",
    "Booting",
    "Running",
    "BootFailed",
    "Unreachable",
)
PowerSpec = Literal["On", "Off"]
PowerPolicy = Literal["Enforce", "Observe"]
POWER_CYCLE_ANNOTATION = "racklet.dev/power-cycle-request"
RACK_LABEL = "racklet.dev/rack"
"""The label naming a ComputeUnit's Rack (``racklet up`` and the GitOps starter set it)."""


NewUnitPower = Literal["On", "Off", "AsBefore"]
ENROLL_APPROVED_ANNOTATION = "racklet.dev/enroll-approved"
"""Set by ``racklet slot approve N`` on the slot's ComputeUnit: enrol the board in it once
(when ``Rack.spec.autoEnroll`` is false); the controller removes it when it has."""
HELD_OFF_ANNOTATION = "racklet.dev/held-off"
"""Set by the controller on a board inserted under ``newUnitPower`` Off (or AsBefore, when it
was off): it is not powered on until ``racklet power on`` removes it."""


class RackSpec(Model):
    psu_rated_watts: Annotated[float, Field(gt=0)]
    slots: Annotated[int, Field(ge=1, le=16)] = 16
    auto_enroll: bool = True
    """Enrol a board whose BMC holds no identity of this rack (a new board, a first boot) at
    once; false: it waits, condition ``Enrolled=False``, until ``racklet slot approve N``."""
    new_unit_power: NewUnitPower = "On"
    """What a board inserted into a slot does: ``On`` boots it (if its ``spec.power`` is On);
    ``Off`` keeps it off until ``racklet power on``; ``AsBefore`` boots it only if it was
    powered when it was pulled."""
    peer_to_peer: bool = True
    """Booting units fetch their payload from the rack's units that already run it, besides
    the controller's bulk server (docs/boot.md); false: from the bulk server alone."""


class RackStatus(Model):
    phase: str = "Unknown"
    power_watts: float = 0.0
    energy_joules: float = 0.0
    units_running: int = 0
    leader: str = ""
    """The controller acting for the rack: on etcd the elected leader (host/pid/API port)."""
    conditions: list[Condition] = Field(default_factory=list)


class Rack(Object):
    """The rack itself: its power budget; status sums up its units."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["Rack"] = "Rack"
    metadata: ObjectMeta
    spec: RackSpec
    status: RackStatus = Field(default_factory=RackStatus)


class BmcRef(Model):
    """Where the unit's BMC answers Redfish (HTTPS only)."""

    url: Annotated[str, Field(pattern=r"^https://")]


BootOverrideMode = Literal["Disabled", "Once", "Continuous"]


class BootSourceOverride(Model):
    """Where the unit boots from next (its BMC's Redfish ``Boot.BootSourceOverrideTarget``
    and ``BootSourceOverrideEnabled``); the targets a BMC offers are its own to say."""

    target: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")]
    enabled: BootOverrideMode = "Continuous"


class OsSlot(Model):
    """One of the unit's A/B OS slots, as its BMC's FirmwareInventory shows it."""

    name: Annotated[str, Field(max_length=8)]
    version: Annotated[str, Field(max_length=200)] | None = None
    booted: bool = False
    """The slot the unit runs from now."""
    trial: bool = False
    """On trial: tried at the next boot, or running and not committed yet."""
    note: Annotated[str, Field(max_length=200)] | None = None
    """The BMC's own words for the slot (e.g. ``committed, running``)."""


class ComputeUnitSpec(Model):
    slot: Annotated[int, Field(ge=1, le=16)]
    power: PowerSpec = "On"
    bmc: BmcRef
    power_priority: Annotated[int, Field(ge=0, le=1000)] = 100
    """Who keeps power when the busbar budget shrinks: the lowest is shed first."""
    locate: bool | None = None
    """The tray's locate LED (the BMC's ``LocationIndicatorActive``); unset leaves it be."""
    boot_override: BootSourceOverride | None = None
    """The boot source override the BMC should hold; unset leaves it be."""
    power_policy: PowerPolicy = "Enforce"
    """What the controller does when someone powers the unit on or off at its BMC, not
    through ``spec.power`` (an ``OutOfBandPowerChange`` event either way): ``Enforce``
    reverts it, ``Observe`` leaves it, until ``spec`` changes."""


class ComputeUnitStatus(Model):
    phase: Phase = "Unknown"
    power_state: str | None = None
    boot_progress: str | None = None
    power_watts: float | None = None
    energy_joules: float | None = None
    temperature_celsius: float | None = None
    cpu_load: Annotated[float, Field(ge=0, le=1)] | None = None
    """The share of its CPU cores the unit's OS keeps busy (0 to 1), from its heartbeat."""
    last_heartbeat_time: dt.datetime | None = None
    agent_url: str | None = None
    os_version: str | None = None
    boot_slot: str | None = None
    """The OS slot (``A`` or ``B``) the unit runs from, as its BMC says."""
    os_slots: list[OsSlot] | None = None
    """Both OS slots with their versions; read from the BMC once per boot (and at each look
    while a trial is on), not at every look."""
    rollback_floor: str | None = None
    """The lowest release version the unit accepts (its BMC's rollback counter)."""
    locate: bool | None = None
    """The locate LED as the BMC last showed it."""
    boot_override: BootSourceOverride | None = None
    """The boot source override as the BMC shows it."""
    boot_once_sent: str | None = None
    """The target of the last ``Once`` override sent: a BMC clears a one-time override when
    the unit boots, and the same ``Once`` is not sent again until the spec changes it."""
    last_power_cycle: str | None = None
    pending_power_cycle: str | None = None
    """A power cycle recorded but not yet known to have reached the BMC (set just before the
    reset is sent, cleared once the BMC answered): a controller taking over sends it again
    with the same ``Idempotency-Key``, so it is done exactly once."""
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)


class ComputeUnit(Object):
    """One unit in one slot, reached through its BMC; ``spec.power`` is what the user wants."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["ComputeUnit"] = "ComputeUnit"
    metadata: ObjectMeta
    spec: ComputeUnitSpec
    status: ComputeUnitStatus = Field(default_factory=ComputeUnitStatus)


def rack_of(unit: ComputeUnit, home: str | None) -> str | None:
    """The Rack ``unit`` belongs to: its :data:`RACK_LABEL`, else ``home`` (the rack of the
    controller that manages it, for units declared without the label)."""
    return unit.metadata.labels.get(RACK_LABEL) or home


class Event(Model):
    """Something that happened to an object; repeats fold into ``count``."""

    api_version: Literal["racklet.dev/v1alpha1"] = API_VERSION
    kind: Literal["Event"] = "Event"
    metadata: ObjectMeta
    involved_object: ObjectReference
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str = ""
    count: Annotated[int, Field(ge=1)] = 1
    first_timestamp: dt.datetime = Field(default_factory=utcnow)
    last_timestamp: dt.datetime = Field(default_factory=utcnow)

    @classmethod
    def about(
        cls,
        kind: str,
        name: str,
        reason: str,
        message: str = "",
        type: Literal["Normal", "Warning"] = "Normal",
    ) -> Event:
        """A new event about one object, with a unique name."""
        return cls(
            metadata=ObjectMeta(name=f"{name}-{uuid.uuid4().hex[:12]}"[:63]),
            involved_object=ObjectReference(kind=kind, name=name),
            type=type,
            reason=reason,
            message=message,
        )

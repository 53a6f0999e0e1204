"""A unit's status from one look: :func:`render_status` says what the look shows, a pure
function of the observation, the verdict on it and the latest heartbeat; :func:`write_status`
writes that into the reconciler's working copy of the status and returns the events the
change deserves (one when the phase or its reason changes, one when heartbeats go missing).

Neither looks at what was last commanded, so the status shows only what was observed. The
split keeps the rules testable without a store or a BMC, and keeps the reconcile path to one
copy of the status (it runs on every look at every unit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from racklet.api import (
    BootSourceOverride,
    ComputeUnitStatus,
    Event,
    OsSlot,
    Phase,
    find_condition,
    set_condition,
)
from racklet.controller._heartbeats import HeartbeatRecord
from racklet.controller._phase import Observation, PhaseVerdict
from racklet.versions import version_key

_WARNING_PHASES = ("BootFailed", "Unreachable", "Absent")


@dataclass(frozen=True, slots=True)
class RenderedStatus:
    """What one look says of a unit's status."""

    phase: Phase
    observed: Mapping[str, object]
    """Status fields this look saw, by name; the others keep their last known values (an
    unreachable BMC does not erase the last power reading)."""
    agent_temperature: float | None
    """The OS agent's reading: shown only while no BMC reading is known."""
    ready: bool
    reason: str
    message: str
    heartbeat_missing: bool


def render_status(
    observation: Observation, verdict: PhaseVerdict, heartbeat: HeartbeatRecord | None
) -> RenderedStatus:
    """What ``observation`` (judged ``verdict``) and the latest ``heartbeat`` show."""
    observed: dict[str, object] = {}
    system = observation.system
    if system is not None:
        observed["power_state"] = system.power_state
        observed["boot_progress"] = (
            system.boot_oem_last_state
            if system.boot_last_state == "OEM" and system.boot_oem_last_state
            else system.boot_last_state
        )
        if system.boot_override is not None:
            observed["boot_override"] = _boot_override(*system.boot_override)
    if observation.chassis is not None and observation.chassis.locate is not None:
        observed["locate"] = observation.chassis.locate
    env = observation.environment
    if env is not None:
        observed["power_watts"] = _rounded(env.power_watts, 3)
        observed["energy_joules"] = _rounded(env.energy_joules, 1)
        observed["temperature_celsius"] = _rounded(env.temperature_celsius, 1)
    if observation.os_slots is not None:
        slots = observation.os_slots
        observed["os_slots"] = [
            OsSlot(name=v.name, version=v.version, booted=v.booted, trial=v.trial, note=v.note)
            for v in slots
        ]
        observed["boot_slot"] = next((v.name for v in slots if v.booted), None)
        floors = [v.floor for v in slots if v.floor]  # the floor only rises: the later read's
        observed["rollback_floor"] = max(floors, key=version_key) if floors else None
    agent_temperature = None
    if heartbeat is not None:
        observed["last_heartbeat_time"] = heartbeat.received_at
        observed["agent_url"] = heartbeat.body.agent_url
        observed["os_version"] = heartbeat.body.os_version
        observed["cpu_load"] = _rounded(heartbeat.body.cpu_load, 3)
        agent_temperature = heartbeat.body.temperature_celsius
    return RenderedStatus(
        phase=verdict.phase,
        observed=observed,
        agent_temperature=agent_temperature,
        ready=verdict.happy,
        reason=verdict.reason,
        message=verdict.message,
        heartbeat_missing=verdict.heartbeat_missing,
    )


def write_status(
    status: ComputeUnitStatus, rendered: RenderedStatus, *, name: str, generation: int
) -> list[Event]:
    """Write ``rendered`` into ``status`` (unit ``name`` at spec ``generation``); return the
    events to record."""
    events: list[Event] = []
    previous = status.phase
    before = find_condition(status.conditions, "Ready")
    before_reason = before.reason if before is not None else None
    status.phase = rendered.phase
    status.observed_generation = generation
    for field, value in rendered.observed.items():
        setattr(status, field, value)
    if status.temperature_celsius is None and rendered.agent_temperature is not None:
        status.temperature_celsius = rendered.agent_temperature
    set_condition(
        status.conditions, "Ready", "True" if rendered.ready else "False", rendered.reason,
        rendered.message, observed_generation=generation,
    )  # fmt: skip
    had_missing = find_condition(status.conditions, "HeartbeatMissing")
    if rendered.heartbeat_missing:
        if had_missing is None or had_missing.status != "True":
            events.append(unit_event(name, "HeartbeatMissing", rendered.message, "Warning"))
        set_condition(
            status.conditions, "HeartbeatMissing", "True", "NoHeartbeat", rendered.message
        )
    elif had_missing is not None:
        set_condition(status.conditions, "HeartbeatMissing", "False", "HeartbeatSeen", "")
    if rendered.phase != previous or (
        before_reason is not None and before_reason != rendered.reason
    ):
        kind = "Warning" if rendered.phase in _WARNING_PHASES else "Normal"
        events.append(unit_event(name, rendered.reason, rendered.message, kind))
    return events


def working_copy(status: ComputeUnitStatus) -> ComputeUnitStatus:
    """A copy of ``status`` that can be changed without touching it. Shallow but for the
    conditions (every other field is an immutable value): a third of a deep copy's cost."""
    return status.model_copy(update={"conditions": [c.model_copy() for c in status.conditions]})


def unit_event(name: str, reason: str, message: str, kind: str = "Normal") -> Event:
    return Event.about("ComputeUnit", name, reason, message, kind)  # type: ignore[arg-type]


def _boot_override(target: str, enabled: str) -> BootSourceOverride | None:
    """The BMC's override as the status says it (None: a value no spec could ask for)."""
    try:
        return BootSourceOverride.model_validate({"target": target, "enabled": enabled})
    except ValidationError:
        return None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)

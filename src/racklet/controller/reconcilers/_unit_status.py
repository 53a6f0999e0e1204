"""A unit's status, rendered from one observation: a function of its arguments, no I/O
(the wall clock only stamps condition transitions and events).

:func:`render_status` takes the status as the reconciler left it (conditions it set while
acting, the power-cycle bookkeeping), the observation, the verdict on it and the latest
heartbeat, and returns the new status with the events that the change deserves: one when the
phase or its reason changes, one when heartbeats go missing. It never looks at what was last
commanded, so the status shows only what was observed.
"""

from __future__ import annotations

from racklet.api import (
    ComputeUnitStatus,
    Event,
    find_condition,
    set_condition,
)
from racklet.controller._heartbeats import Heartbeat
from racklet.controller._phase import Observation, Verdict

_WARNING_PHASES = ("BootFailed", "Unreachable", "Absent")


def render_status(
    name: str,
    generation: int,
    status: ComputeUnitStatus,
    observation: Observation,
    verdict: Verdict,
    heartbeat: Heartbeat | None,
) -> tuple[ComputeUnitStatus, list[Event]]:
    """The status ``verdict`` on ``observation`` makes of ``status`` (left untouched), and
    the events to record about unit ``name`` at spec ``generation``."""
    new = working_copy(status)
    events: list[Event] = []
    before = find_condition(status.conditions, "Ready")
    new.phase = verdict.phase
    new.observed_generation = generation
    system = observation.system
    if system is not None:
        new.power_state = system.power_state
        new.boot_progress = (
            system.boot_oem_last_state
            if system.boot_last_state == "OEM" and system.boot_oem_last_state
            else system.boot_last_state
        )
    env = observation.environment
    if env is not None:
        new.power_watts = _rounded(env.power_watts, 3)
        new.energy_joules = _rounded(env.energy_joules, 1)
        new.temperature_celsius = _rounded(env.temperature_celsius, 1)
    if heartbeat is not None:
        new.last_heartbeat_time = heartbeat.received_at
        new.agent_url = heartbeat.body.agent_url
        new.os_version = heartbeat.body.os_version
        if new.temperature_celsius is None:
            new.temperature_celsius = heartbeat.body.temperature_celsius

    reason = verdict.reason
    set_condition(
        new.conditions, "Ready", "True" if verdict.happy else "False", reason, verdict.message,
        observed_generation=generation,
    )  # fmt: skip
    had_missing = find_condition(new.conditions, "HeartbeatMissing")
    if verdict.heartbeat_missing:
        if had_missing is None or had_missing.status != "True":
            events.append(unit_event(name, "HeartbeatMissing", verdict.message, "Warning"))
        set_condition(new.conditions, "HeartbeatMissing", "True", "NoHeartbeat", verdict.message)
    elif had_missing is not None:
        set_condition(new.conditions, "HeartbeatMissing", "False", "HeartbeatSeen", "")
    if verdict.phase != status.phase or (before is not None and before.reason != reason):
        kind = "Warning" if verdict.phase in _WARNING_PHASES else "Normal"
        events.append(unit_event(name, reason, verdict.message, kind))
    return new, events


def working_copy(status: ComputeUnitStatus) -> ComputeUnitStatus:
    """A copy of ``status`` that can be changed without touching it. Shallow but for the
    conditions (every other field is an immutable value): a third of a deep copy's cost, and
    this runs twice on every look at every unit."""
    return status.model_copy(update={"conditions": [c.model_copy() for c in status.conditions]})


def unit_event(name: str, reason: str, message: str, kind: str = "Normal") -> Event:
    return Event.about("ComputeUnit", name, reason, message, kind)  # type: ignore[arg-type]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)

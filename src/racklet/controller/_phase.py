"""Deriving a unit's phase from what was observed — never from what was last commanded.

A pure function of one observation (Redfish chassis and system, heartbeat freshness), so
every rule of the lifecycle is testable without a BMC.
"""

from __future__ import annotations

from dataclasses import dataclass

from racklet.api import Phase
from racklet.redfish import ChassisView, EnvironmentView, SystemView

_BOOTING_STATES = ("SystemHardwareInitializationComplete", "OSBootStarted", "OEM")


@dataclass(frozen=True)
class Observation:
    """One look at a unit. ``error`` is set (and the views are ``None``) when its BMC failed."""

    error: str | None = None
    chassis: ChassisView | None = None
    system: SystemView | None = None
    environment: EnvironmentView | None = None
    heartbeat_fresh: bool = False

    @property
    def powered(self) -> bool:
        return self.system is not None and self.system.power_state in ("On", "PoweringOn")


@dataclass(frozen=True)
class PhaseVerdict:
    phase: Phase
    message: str
    heartbeat_missing: bool = False

    @property
    def happy(self) -> bool:
        return self.phase == "Running"


def derive_phase(obs: Observation) -> PhaseVerdict:
    if obs.error is not None or obs.chassis is None or obs.system is None:
        return PhaseVerdict("Unreachable", f"the BMC does not answer: {obs.error or 'no data'}")
    if obs.chassis.absent:
        return PhaseVerdict("Absent", "the slot is empty")
    system = obs.system
    if system.power_state not in ("On", "PoweringOn"):
        return PhaseVerdict("Off", f"power state is {system.power_state or 'unknown'}")
    if system.boot_failed:
        reason = "; ".join(system.messages) or "the BMC reports a failed boot without a reason"
        return PhaseVerdict("BootFailed", reason)
    state = system.boot_last_state
    if state in (None, "None"):
        return PhaseVerdict("PoweringOn", "powered, waiting for firmware")
    if state == "OSRunning":
        if obs.heartbeat_fresh:
            return PhaseVerdict("Running", "the OS is running and heartbeating")
        return PhaseVerdict(
            "Booting", "the OS is running but no heartbeat arrived", heartbeat_missing=True
        )
    if state in _BOOTING_STATES:
        return PhaseVerdict("Booting", f"boot progress {state}")
    return PhaseVerdict("Booting", f"unrecognised boot progress {state}")

"""Deriving a unit's phase from what was observed — never from what was last commanded.

A pure function of one observation (Redfish chassis and system, heartbeat freshness), so
every rule of the lifecycle is testable without a BMC.
"""

from __future__ import annotations

from dataclasses import dataclass

from racklet.api import Phase
from racklet.redfish import ChassisView, EnvironmentView, OsSlotView, SystemView

_BOOTING_STATES = ("SystemHardwareInitializationComplete", "OSBootStarted", "OEM")


@dataclass(frozen=True)
class Observation:
    """One look at a unit. ``error`` is set (and the views are ``None``) when its BMC failed."""

    error: str | None = None
    untrusted: bool = False
    """With ``error``: the BMC answered with a certificate this controller refuses (not of
    this rack, not the identity pinned for it, revoked, expired), so it is no outage."""
    chassis: ChassisView | None = None
    system: SystemView | None = None
    environment: EnvironmentView | None = None
    heartbeat_fresh: bool = False
    heartbeat_lost: bool = False
    """The OS heartbeated during this boot and then stopped: its network, not its boot."""
    os_slots: tuple[OsSlotView, ...] | None = None
    """The unit's OS slots as last read from its BMC (None: never read)."""

    @property
    def powered(self) -> bool:
        return self.system is not None and self.system.power_state in ("On", "PoweringOn")


@dataclass(frozen=True)
class PhaseVerdict:
    """The phase, and why: ``reason`` (one CamelCase word, the Ready condition's and the phase
    event's reason) and ``message`` must say the same thing. The reason is the phase unless a
    more precise word is true, e.g. ``PoweringOff`` for a unit in phase Off that its BMC is
    still shutting down."""

    phase: Phase
    message: str
    heartbeat_missing: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.reason:
            object.__setattr__(self, "reason", self.phase)

    @property
    def happy(self) -> bool:
        return self.phase == "Running"


def derive_phase(obs: Observation) -> PhaseVerdict:
    if obs.error is not None and obs.untrusted:
        return PhaseVerdict(
            "Unreachable",
            f"the BMC's certificate is refused: {obs.error}",
            reason="BmcCertificateRefused",
        )
    if obs.error is not None or obs.chassis is None or obs.system is None:
        return PhaseVerdict("Unreachable", f"the BMC does not answer: {obs.error or 'no data'}")
    if obs.chassis.absent:
        return PhaseVerdict("Absent", "the slot is empty")
    system = obs.system
    if system.power_state == "PoweringOff":
        return PhaseVerdict("Off", "the BMC is shutting the unit down", reason="PoweringOff")
    if system.power_state not in ("On", "PoweringOn"):
        if system.power_state in (None, "Off"):
            return PhaseVerdict(
                "Off",
                "power state is Off"
                if system.power_state
                else "no power state reported, taken as Off",
            )
        return PhaseVerdict("Off", f"unrecognised power state {system.power_state}, taken as Off")
    if system.boot_failed:
        reason = "; ".join(system.messages) or "the BMC reports a failed boot without a reason"
        return PhaseVerdict("BootFailed", reason)
    state = system.boot_last_state
    if state in (None, "None"):
        return PhaseVerdict("PoweringOn", "powered, waiting for firmware")
    if state == "OSRunning":
        if obs.heartbeat_fresh:
            return PhaseVerdict("Running", "the OS is running and heartbeating")
        if obs.heartbeat_lost:
            return PhaseVerdict(
                "Unreachable",
                "the OS stopped heartbeating while its BMC answers and reports it running: "
                "the unit's network is cut",
                heartbeat_missing=True,
            )
        return PhaseVerdict(
            "Booting", "the OS is running but no heartbeat arrived", heartbeat_missing=True
        )
    if state in _BOOTING_STATES:
        return PhaseVerdict("Booting", f"boot progress {state}")
    return PhaseVerdict("Booting", f"unrecognised boot progress {state}")

"""The phase is a function of the observation alone."""

from __future__ import annotations

import pytest

from racklet.controller._budget import Draw, projected_watts
from racklet.controller._phase import Observation, derive_phase
from racklet.redfish import ChassisView, SystemView


def observe(
    power: str = "On",
    last: str = "None",
    oem: str | None = None,
    absent: bool = False,
    fresh: bool = False,
    messages: tuple[str, ...] = (),
    lost: bool = False,
) -> Observation:
    return Observation(
        chassis=ChassisView(state="Absent" if absent else "Enabled", max_power_watts=6.0),
        system=SystemView(power, last, oem, "Enabled", "OK", messages),
        heartbeat_fresh=fresh,
        heartbeat_lost=lost,
    )


@pytest.mark.parametrize(
    ("obs", "phase", "missing"),
    [
        (Observation(error="refused"), "Unreachable", False),
        (observe(absent=True), "Absent", False),
        (observe(power="Off"), "Off", False),
        (observe(power="PoweringOn"), "PoweringOn", False),
        (observe(last="SystemHardwareInitializationComplete"), "Booting", False),
        (observe(last="OSBootStarted"), "Booting", False),
        (observe(last="OSRunning"), "Booting", True),
        (observe(last="OSRunning", fresh=True), "Running", False),
        # heartbeats came since this boot, then stopped: a partition, not a slow boot
        (observe(last="OSRunning", lost=True), "Unreachable", True),
        (observe(last="OEM", oem="BootFailed", messages=("bad sha-256",)), "BootFailed", False),
        (observe(power="Off", last="OEM", oem="BootFailed"), "Off", False),
    ],
)
def test_phase_rules(obs: Observation, phase: str, missing: bool) -> None:
    verdict = derive_phase(obs)
    assert (verdict.phase, verdict.heartbeat_missing) == (phase, missing)


def test_boot_failure_reason_comes_from_the_bmc() -> None:
    verdict = derive_phase(observe(last="OEM", oem="BootFailed", messages=("bad sha-256",)))
    assert verdict.message == "bad sha-256"


def test_budget_counts_transitional_units_at_their_ceiling() -> None:
    others = [
        Draw("Running", True, 2.0, 6.0),
        Draw("Booting", True, 3.0, 6.0),
        Draw("PoweringOn", True, 0.0, None),
        Draw("Off", False, 0.0, 6.0),
        Draw("BootFailed", True, 1.0, 6.0),
    ]
    assert projected_watts(others, 5.0) == 5.0 + 2.0 + 6.0 + 5.0 + 1.0

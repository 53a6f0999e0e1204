"""The phase is a function of the observation alone."""

from __future__ import annotations

import pytest

from racklet.api import ComputeUnitStatus
from racklet.controller._budget import Draw, projected_watts
from racklet.controller._phase import Observation, derive_phase
from racklet.controller.reconcilers._unit_status import render_status, write_status
from racklet.redfish import ChassisView, SystemView


def observe(
    power: str = "On",
    last: str = "None",
    oem: str | None = None,
    absent: bool = False,
    fresh: bool = False,
    lost: bool = False,
    messages: tuple[str, ...] = (),
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
        # Heartbeats came this boot and stopped (a partition): Unreachable, not Booting.
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


def test_a_refused_bmc_certificate_is_named_as_such_not_as_an_outage() -> None:
    """A BMC that answers with a certificate not of this rack (a board that holds no identity
    of it, a revoked or expired one) is Unreachable, and the reason says why."""
    error = "https://127.0.0.1:1: ConnectError: certificate verify failed: certificate revoked"
    verdict = derive_phase(Observation(error=error, untrusted=True))
    assert (verdict.phase, verdict.reason) == ("Unreachable", "BmcCertificateRefused")
    assert verdict.message == f"the BMC's certificate is refused: {error}"
    assert derive_phase(Observation(error="refused")).reason == "Unreachable"


def test_budget_counts_transitional_units_at_their_ceiling() -> None:
    others = [
        Draw("Running", True, 2.0, 6.0),
        Draw("Booting", True, 3.0, 6.0),
        Draw("PoweringOn", True, 0.0, None),
        Draw("Off", False, 0.0, 6.0),
        Draw("BootFailed", True, 1.0, 6.0),
    ]
    assert projected_watts(others, 5.0) == 5.0 + 2.0 + 6.0 + 5.0 + 1.0


@pytest.mark.parametrize(
    ("power", "reason", "message"),
    [
        ("Off", "Off", "power state is Off"),
        ("PoweringOff", "PoweringOff", "the BMC is shutting the unit down"),
        (None, "Off", "no power state reported, taken as Off"),
        ("Paused", "Off", "unrecognised power state Paused, taken as Off"),
    ],
)
def test_the_reason_says_what_the_message_says(
    power: str | None, reason: str, message: str
) -> None:
    verdict = derive_phase(observe(power=power))  # type: ignore[arg-type]
    assert (verdict.phase, verdict.reason, verdict.message) == ("Off", reason, message)


def test_a_look_is_rendered_and_written_once() -> None:
    obs = observe(power="PoweringOff")
    rendered = render_status(obs, derive_phase(obs), None)
    assert rendered == render_status(obs, derive_phase(obs), None)  # a function of its inputs
    status = ComputeUnitStatus(phase="Running", power_state="On")
    events = write_status(status, rendered, name="unit-1", generation=3)
    assert (status.phase, status.power_state, status.observed_generation) == (
        "Off",
        "PoweringOff",
        3,
    )
    assert [(e.reason, e.message) for e in events] == [
        ("PoweringOff", "the BMC is shutting the unit down")
    ]
    assert write_status(status, rendered, name="unit-1", generation=3) == []  # nothing new

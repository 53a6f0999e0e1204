"""A/B updates end to end: real boot server, real OS agent, the BMC's real A/B state."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from racklet.boot import BootLimits, RollbackError, build_default_payload
from racklet.boot.client import bootstrap
from racklet.node import run_os
from tests.boot.fakes import BootRig, FakeBmc, FakeHost, wait_for

LIMITS = BootLimits(health_deadline_seconds=40.0)


def _publish(rig: BootRig, version: str) -> None:
    rig.tuf.publish(
        "stable", "racklet-os", version, {"payload.bin": build_default_payload(65536, version)}
    )


async def _run_trial(host: FakeHost, bmc: FakeBmc) -> None:
    """Run the trial OS until it committed or asked its BMC for a restart."""
    restarted = asyncio.Event()
    bmc.on_restart = restarted.set
    booted = await bootstrap(host, limits=LIMITS)
    assert booted.trial is not None
    task = asyncio.create_task(run_os(host, booted))
    try:
        await wait_for(
            lambda: restarted.is_set() or "health check passed" in host.console_text or task.done(),
            "the trial's verdict",
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_update_is_committed_after_the_health_check(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host, limits=LIMITS)
    _publish(rig, "0.2.0")
    await _run_trial(host, bmc)
    assert "racklet-agent: health check passed; slot B committed" in host.console_text
    record = bmc.ab.load()
    assert record.committed is not None
    assert (record.committed.slot, record.committed.version) == ("B", "0.2.0")
    assert record.rollback_version == "0.2.0" and record.trying is None
    assert rig.heartbeats and rig.heartbeats[-1].body["osVersion"] == "0.2.0"
    booted = await bootstrap(host, limits=LIMITS)  # the next boot: committed, no trial
    assert (booted.slot, booted.manifest.version, booted.trial) == ("B", "0.2.0", None)


async def test_failed_health_check_falls_back_and_is_not_retried(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host, limits=LIMITS)
    _publish(rig, "0.2.0")
    rig.heartbeat_status = 503  # the controller refuses the new OS's heartbeats
    await _run_trial(host, bmc)
    assert "health check not passed within 40 s; rebooting" in host.console_text
    assert [r["op"] for r in bmc.requests].count("restart") == 1
    booted = await bootstrap(host, limits=LIMITS)  # the reboot: flag consumed, fall back
    assert (booted.slot, booted.manifest.version, booted.trial) == ("A", "0.1.0", None)
    record = bmc.ab.load()
    assert record.last_trial is not None and record.last_trial["result"] == "failed"
    assert record.rejected_version == "0.2.0" and record.rollback_version == "0.1.0"
    assert "racklet-os 0.2.0 failed its trial before; staying on 0.1.0" in host.console_text


async def test_crash_of_the_trial_boot_falls_back(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host, limits=LIMITS)
    _publish(rig, "0.2.0")
    trial = await bootstrap(host, limits=LIMITS)
    assert (trial.slot, trial.manifest.version) == ("B", "0.2.0")  # and it dies right here
    booted = await bootstrap(host, limits=LIMITS)
    assert (booted.slot, booted.manifest.version) == ("A", "0.1.0")


async def test_older_release_is_refused_by_the_rollback_counter(
    rig: BootRig, host: FakeHost, bmc: FakeBmc
) -> None:
    await bootstrap(host, limits=LIMITS)
    _publish(rig, "0.2.0")
    await _run_trial(host, bmc)
    _publish(rig, "0.1.5")  # TUF-valid, signed, current on the channel, but older
    with pytest.raises(RollbackError):
        await bootstrap(host, limits=LIMITS)
    expected = (
        "refusing racklet-os 0.1.5 from channel stable: below the committed version 0.2.0 "
        "(rollback protection)"
    )
    assert host.lines[-1] == f"bootstrap: boot failed: {expected}"
    assert bmc.ops("failed")[-1]["reason"] == expected
    assert bmc.ab.load().rollback_version == "0.2.0"

"""The ComputeUnit reconciler against the fake Redfish service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from racklet.api import (
    HELD_OFF_ANNOTATION,
    POWER_CYCLE_ANNOTATION,
    ComputeUnit,
    Rack,
    find_condition,
    utcnow,
)
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRecord
from racklet.redfish import RedfishClient
from racklet.store import Fenced
from tests.controller.harness import FakeClock, Harness, make


def condition(unit: ComputeUnit, type_: str) -> tuple[str, str, str] | None:
    found = find_condition(unit.status.conditions, type_)
    return None if found is None else (found.status, found.reason, found.message)


async def test_powers_on_and_follows_the_boot_to_running() -> None:
    h = await make(["unit-1"])
    try:
        assert await h.reconciler.reconcile("unit-1") is None  # the BMC shows it on at once
        assert h.bmc.resets == [("unit-1", "On")]
        unit = await h.unit("unit-1")  # observed by looking again right after the reset
        assert unit.status.phase == "PoweringOn" and unit.status.power_state == "On"
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "PoweringOn" and unit.status.power_state == "On"
        assert condition(unit, "Ready") == ("False", "PoweringOn", "powered, waiting for firmware")

        h.bmc.units["unit-1"].last_state = "OSBootStarted"
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Booting"

        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.bmc.units["unit-1"].power_watts = 2.5
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Booting"
        assert condition(unit, "HeartbeatMissing") is not None
        assert condition(unit, "HeartbeatMissing")[0] == "True"  # type: ignore[index]

        h.clock.now += 1
        h.heartbeat("unit-1")
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Running"
        assert unit.status.power_watts == 2.5 and unit.status.os_version == "racklet-os 1.0"
        assert condition(unit, "Ready") is not None
        assert condition(unit, "Ready")[:2] == ("True", "Running")  # type: ignore[index]
        assert condition(unit, "HeartbeatMissing")[0] == "False"  # type: ignore[index]
        assert h.bmc.resets == [("unit-1", "On")]  # no second power-on

        h.clock.now += 11  # the agent went silent for longer than heartbeat_timeout
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Unreachable"  # it ran, then fell silent
        reasons = [e.reason for e in await h.store.events("unit-1")]
        assert reasons[:2] == ["PowerOn", "PoweringOn"] and "Running" in reasons
        assert (
            reasons.count("HeartbeatMissing") == 2
        )  # once while booting, once when it fell silent
    finally:
        await h.close()


async def test_silence_is_judged_by_the_agents_announced_interval() -> None:
    """Two missed intervals of the agent's own clock, scaled to the controller's: a unit that
    heartbeats every 2 simulated seconds on a twin at speed 1 is Unreachable 4 s after its
    last heartbeat, not after a fixed 10 s."""
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.clock.now += 1
        h.heartbeats.record(
            HeartbeatBody(unit="unit-1", agentUrl="https://127.0.0.1:9999",
                          osVersion="racklet-os 1.0", heartbeatIntervalSeconds=2.0)
        )  # fmt: skip
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Running"
        h.clock.now += 3.9  # one interval missed, the second not yet
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Running"
        h.clock.now += 0.2
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Unreachable"
    finally:
        await h.close()


def test_the_heartbeat_timeout_follows_the_interval_the_speed_and_a_floor() -> None:
    def beat(interval: float | None) -> HeartbeatRecord:
        body = HeartbeatBody(unit="u", agentUrl="https://a", osVersion="1",
                             heartbeatIntervalSeconds=interval)  # fmt: skip
        return HeartbeatRecord(body=body, received=0.0, received_at=utcnow())

    assert HeartbeatRegistry().timeout_for(beat(2.0)) == 4.0  # hardware: two intervals
    assert HeartbeatRegistry(time_scale=2.0).timeout_for(beat(2.0)) == 2.0  # a twin at 2x
    assert HeartbeatRegistry(time_scale=20.0).timeout_for(beat(2.0)) == 2.0  # the floor
    assert HeartbeatRegistry().timeout_for(beat(None)) == 10.0  # an agent that says nothing


async def test_a_silent_unit_is_looked_at_when_its_heartbeat_goes_stale() -> None:
    registry = HeartbeatRegistry(fallback_timeout=0.2)
    woken: list[str] = []
    registry.watch(woken.append)
    body = HeartbeatBody(unit="unit-1", agentUrl="https://a", osVersion="1")
    registry.record(body)
    registry.record(body)  # a newer heartbeat re-arms the wake-up: one wake, not two
    for _ in range(100):
        if woken:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert woken == ["unit-1"]
    registry.record(body)
    await registry.aclose()  # stopping cancels what is pending
    await asyncio.sleep(0.3)
    assert woken == ["unit-1"]


async def test_heartbeat_from_before_a_power_cycle_does_not_count() -> None:
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.heartbeat("unit-1")
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Running"
        h.clock.now += 1
        unit = await h.unit("unit-1")
        unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = "req-1"
        await h.store.update(unit)
        await h.reconcile("unit-1")  # cycles; the fake comes back On / None at once
        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.clock.now += 1
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Booting"  # the old heartbeat belongs to the old boot
        h.heartbeat("unit-1")
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Running"
    finally:
        await h.close()


async def test_power_cycle_is_done_once_per_request() -> None:
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        unit = await h.unit("unit-1")
        unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = "req-1"
        await h.store.update(unit)
        for _ in range(4):
            await h.reconcile("unit-1")
        assert h.bmc.resets == [("unit-1", "PowerCycle")]
        assert (await h.unit("unit-1")).status.last_power_cycle == "req-1"

        unit = await h.unit("unit-1")
        unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = "req-2"
        await h.store.update(unit)
        for _ in range(3):
            await h.reconcile("unit-1")
        assert h.bmc.resets == [("unit-1", "PowerCycle"), ("unit-1", "PowerCycle")]
        assert [e.reason for e in await h.store.events("unit-1")].count("PowerCycle") == 2
    finally:
        await h.close()


async def test_a_slow_bmc_is_looked_at_again_and_the_phase_waits_for_it() -> None:
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.heartbeat("unit-1")
        unit = await h.unit("unit-1")
        unit.spec.power = "Off"
        await h.store.update(unit)
        h.bmc.defer_resets = True  # accepts the shutdown, still reports On
        assert await h.reconciler.reconcile("unit-1") == 0.2  # not done yet: look again soon
        unit = await h.unit("unit-1")
        assert unit.status.power_state == "On" and unit.status.phase != "Off"
        assert await h.reconciler.reconcile("unit-1") is None  # cooling down, nothing sent
        assert h.bmc.resets == [("unit-1", "GracefulShutdown")]
        h.bmc.settle()
        assert await h.reconciler.reconcile("unit-1") is None
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Off" and unit.status.power_state == "Off"
        assert h.bmc.resets == [("unit-1", "GracefulShutdown")]
    finally:
        await h.close()


async def test_power_off_is_a_graceful_shutdown_sent_once() -> None:
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        unit = await h.unit("unit-1")
        unit.spec.power = "Off"
        await h.store.update(unit)
        await h.reconcile("unit-1")
        assert h.bmc.resets == [("unit-1", "GracefulShutdown")]
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Off" and condition(unit, "Ready")[1] == "Off"  # type: ignore[index]
        await h.reconcile("unit-1")
        assert h.bmc.resets == [("unit-1", "GracefulShutdown")]  # off stays off
    finally:
        await h.close()


async def _graceful_shutdown_asked(h: Harness) -> None:
    """unit-1 running, then its spec Off: the reconcile asks the BMC for a graceful shutdown,
    which the BMC has not finished (resets deferred)."""
    h.bmc.power_on("unit-1")
    await h.reconcile("unit-1")
    unit = await h.unit("unit-1")
    unit.spec.power = "Off"
    await h.store.update(unit)
    h.bmc.defer_resets = True
    await h.reconcile("unit-1")


async def test_a_shutdown_in_progress_is_not_reported_as_off() -> None:
    h = await make(["unit-1"])
    try:
        await _graceful_shutdown_asked(h)
        assert h.bmc.received[-1][:2] == ("unit-1", "GracefulShutdown")
        h.bmc.units["unit-1"].power_state = "PoweringOff"  # the BMC waits for the OS to halt
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Off"
        assert condition(unit, "Ready") == (
            "False",
            "PoweringOff",
            "the BMC is shutting the unit down",
        )
        h.bmc.power_off("unit-1")
        await h.reconcile("unit-1")
        assert condition(await h.unit("unit-1"), "Ready") == ("False", "Off", "power state is Off")
        said = [(e.reason, e.message) for e in await h.store.events("unit-1")]
        assert said[-2:] == [
            ("PoweringOff", "the BMC is shutting the unit down"),
            ("Off", "power state is Off"),
        ]
    finally:
        await h.close()


async def test_powered_on_again_while_shutting_down_it_is_followed_until_off() -> None:
    """Off and on again before the OS halted: the reconcile that sees the new spec cannot
    power on yet (the BMC is still shutting the unit down) and must ask to look again soon,
    or the power-on waits for the next resync (up to a second on a small rack, 200 s on a
    large one) although nothing but the halt stands in its way."""
    h = await make(["unit-1"])
    try:
        await _graceful_shutdown_asked(h)
        h.bmc.units["unit-1"].power_state = "PoweringOff"  # the BMC waits for the OS to halt
        unit = await h.unit("unit-1")
        unit.spec.power = "On"
        await h.store.update(unit)
        assert await h.reconciler.reconcile("unit-1") is not None  # look again soon
        assert h.bmc.resets == [("unit-1", "GracefulShutdown")]  # not on while going off
        assert await h.reconciler.reconcile("unit-1") is not None  # still going off
        h.bmc.power_off("unit-1")
        h.bmc.defer_resets = False
        assert await h.reconciler.reconcile("unit-1") is None  # on, seen on: done
        assert h.bmc.resets == [("unit-1", "GracefulShutdown"), ("unit-1", "On")]
    finally:
        await h.close()


async def test_staggered_power_on_never_exceeds_the_busbar() -> None:
    names = [f"unit-{i}" for i in range(1, 6)]
    rated = 16.0  # room for two booting units, and for the fifth once four run
    h = await make(names, rated=rated)  # each unit: 6 W ceiling, 2 W once running
    try:
        waited = False
        for _ in range(40):
            await h.reconcile(*names)
            assert h.worst_case_draw() <= rated
            h.boot_step()
            statuses = [(await h.unit(n)) for n in names]
            budgets = [condition(u, "PowerBudget") for u in statuses]
            if any(b is not None and b[:2] == ("False", "BusbarBudget") for b in budgets):
                waited = True
            if all(u.status.phase == "Running" for u in statuses):
                break
            h.clock.now += 1
        assert all(u.status.phase == "Running" for u in statuses)
        assert waited
        ons = [name for name, kind in h.bmc.resets if kind == "On"]
        assert sorted(ons) == names  # each powered on exactly once
        warnings = [e for e in await h.store.events() if e.reason == "BusbarBudget"]
        assert warnings and all(e.type == "Warning" for e in warnings)
    finally:
        await h.close()


async def test_a_hot_swap_is_seen_although_the_chassis_is_read_once() -> None:
    """The chassis (presence, power ceiling) is inventory, read again only when the system's
    state moves: pulling a board and putting a bigger one in must still show, both times."""
    h = await make(["unit-1"], rated=100.0)
    try:
        h.bmc.power_on("unit-1")
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase != "Absent"
        h.bmc.units["unit-1"].absent = True  # pulled
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Absent"
        swapped = h.bmc.units["unit-1"]
        swapped.absent, swapped.max_power_watts = False, 150.0  # a board over the budget
        h.bmc.power_off("unit-1")
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Off"
        # the new board's ceiling was read: powering it would exceed the busbar's rating
        budget = condition(unit, "PowerBudget")
        assert budget is not None and budget[:2] == ("False", "BusbarBudget")
        assert "projected 150.00 W of 100.00 W" in budget[2]
    finally:
        await h.close()


async def test_boot_failure_absent_slot_and_unreachable_bmc() -> None:
    h = await make(["unit-1", "unit-2"])
    try:
        h.bmc.power_on("unit-1")
        fake = h.bmc.units["unit-1"]
        fake.last_state, fake.oem_last_state = "OEM", "BootFailed"
        fake.failure = "payload sha-256 mismatch: refusing to boot"
        h.bmc.units["unit-2"].absent = True
        await h.reconcile("unit-1", "unit-2")
        failed = await h.unit("unit-1")
        assert failed.status.phase == "BootFailed" and failed.status.boot_progress == "BootFailed"
        assert condition(failed, "Ready") == ("False", "BootFailed", fake.failure)
        absent = await h.unit("unit-2")
        assert absent.status.phase == "Absent"
        assert h.bmc.resets == []  # neither a failed nor an empty slot is powered by itself
        events = {e.reason: e for e in await h.store.events()}
        assert events["BootFailed"].type == "Warning"
        assert events["BootFailed"].message == fake.failure
    finally:
        await h.close()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    h2 = await make(["unit-1"])
    dead = RedfishClient(
        "https://bmc.test",
        "a",
        "b",
        ca_bundle=Path("/unused"),
        transport=httpx.MockTransport(refuse),
    )
    reconciler = ComputeUnitReconciler(
        h2.store, {"unit-1": dead}, HeartbeatRegistry(clock=FakeClock()), rack_name="rack-1"
    )
    try:
        await reconciler.reconcile("unit-1")
        unit = await h2.unit("unit-1")
        assert unit.status.phase == "Unreachable"
        ready = condition(unit, "Ready")
        assert ready is not None and ready[:2] == ("False", "Unreachable")
        assert "ConnectError" in ready[2]
        assert [e.type for e in await h2.store.events("unit-1")] == ["Warning"]
    finally:
        await dead.aclose()
        await h2.close()


async def test_status_is_not_rewritten_when_nothing_changed() -> None:
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.heartbeat("unit-1")
        await h.reconcile("unit-1")
        version = (await h.unit("unit-1")).metadata.resource_version
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).metadata.resource_version == version
        h.bmc.units["unit-1"].power_watts = 3.0
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).metadata.resource_version != version
    finally:
        await h.close()


async def test_a_deleted_unit_is_forgotten() -> None:
    h: Harness = await make(["unit-1"])
    try:
        await h.store.delete(ComputeUnit, "unit-1")
        assert await h.reconciler.reconcile("unit-1") is None
        assert h.bmc.resets == []
    finally:
        await h.close()


class _DiesAfterSending:
    """A leader's BMC client whose process dies (loses its lease) just after a reset left."""

    def __init__(self, inner: RedfishClient) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def reset(
        self, system_id: str, reset_type: str, *, idempotency_key: str | None = None
    ) -> None:
        await self.inner.reset(system_id, reset_type, idempotency_key=idempotency_key)
        raise Fenced("the lease ran out just after the reset was sent")


@pytest.mark.parametrize("dies", ["before sending", "after sending"])
async def test_a_power_cycle_is_done_exactly_once_across_a_failover(dies: str) -> None:
    """The old leader records the cycle, then dies before or after its reset reached the BMC;
    the new leader finds it pending and sends it again with the same Idempotency-Key."""
    h = await make(["unit-1"])
    try:
        h.bmc.power_on("unit-1")
        unit = await h.unit("unit-1")
        unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = "rollout-web-1"
        await h.store.update(unit)

        async def deposed() -> None:
            raise Fenced("another controller leads now")

        old_leader = ComputeUnitReconciler(
            h.store,
            {"unit-1": _DiesAfterSending(h.clients["unit-1"])} if dies == "after sending"
            else h.clients,
            h.heartbeats,
            rack_name="rack-1",
            clock=h.clock,
            fence=deposed if dies == "before sending" else None,
        )  # fmt: skip
        with pytest.raises(Fenced):
            await old_leader.reconcile("unit-1")
        recorded = (await h.unit("unit-1")).status
        assert recorded.pending_power_cycle == "rollout-web-1"
        assert len(h.bmc.resets) == (1 if dies == "after sending" else 0)

        new_leader = ComputeUnitReconciler(
            h.store, h.clients, h.heartbeats, rack_name="rack-1", clock=h.clock
        )
        for _ in range(3):
            await new_leader.reconcile("unit-1")
        assert h.bmc.resets == [("unit-1", "PowerCycle")]  # exactly once
        keys = {key for _, kind, key in h.bmc.received if kind == "PowerCycle"}
        assert len(keys) == 1 and next(iter(keys)).endswith("/rollout-web-1")
        status = (await h.unit("unit-1")).status
        assert status.pending_power_cycle is None and status.last_power_cycle == "rollout-web-1"
        reasons = [e.reason for e in await h.store.events("unit-1")]
        assert reasons.count("PowerCycle") == 1  # the new leader's; the old one wrote none
    finally:
        await h.close()


async def test_status_shows_the_load_the_agent_reports() -> None:
    h = await make(["unit-1"])
    try:
        await h.reconcile("unit-1")
        h.bmc.units["unit-1"].last_state = "OSRunning"
        h.heartbeat("unit-1", cpu_load=0.75)
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert unit.status.phase == "Running" and unit.status.cpu_load == 0.75
        assert unit.model_dump(by_alias=True)["status"]["cpuLoad"] == 0.75
        h.heartbeat("unit-1", cpu_load=0.05)
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.cpu_load == 0.05
    finally:
        await h.close()


@pytest.mark.parametrize(
    ("policy", "was_on", "held"),
    [
        ("On", False, False),
        ("Off", True, True),
        ("AsBefore", True, False),
        ("AsBefore", False, True),
    ],
)
async def test_an_inserted_board_follows_the_racks_new_unit_power(
    policy: str, was_on: bool, held: bool
) -> None:
    h = await make(["unit-1"])
    try:
        rack = await h.store.get(Rack, "rack-1")
        rack.spec.new_unit_power = policy  # type: ignore[assignment]
        await h.store.update(rack)
        board = h.bmc.units["unit-1"]
        if was_on:
            await h.reconcile("unit-1")  # powered on
        else:
            unit = await h.unit("unit-1")
            unit.spec.power = "Off"
            await h.store.update(unit)
            await h.reconcile("unit-1")
            unit = await h.unit("unit-1")
            unit.spec.power = "On"  # wanted on again, but pulled before the controller acts
            await h.store.update(unit)
        assert (await h.unit("unit-1")).status.power_state == ("On" if was_on else "Off")
        board.absent, board.power_state = True, "Off"  # pulled: it loses power
        await h.reconcile("unit-1")
        assert (await h.unit("unit-1")).status.phase == "Absent"
        resets = len(h.bmc.resets)

        h.clock.now += 11  # past the power-on cooldown
        board.absent = False  # inserted, powered off as a fresh board is
        await h.reconcile("unit-1")
        unit = await h.unit("unit-1")
        assert (len(h.bmc.resets) == resets) is held
        assert (HELD_OFF_ANNOTATION in unit.metadata.annotations) is held
        if held:
            assert condition(unit, "PowerHold") is not None
            await h.reconcile("unit-1")
            assert len(h.bmc.resets) == resets, "a held board stays off"
            unit.metadata.annotations.pop(HELD_OFF_ANNOTATION)  # what `racklet power on` does
            await h.store.update(unit)
            await h.reconcile("unit-1")
            assert h.bmc.resets[-1] == ("unit-1", "On")
            assert condition(await h.unit("unit-1"), "PowerHold") is None
    finally:
        await h.close()

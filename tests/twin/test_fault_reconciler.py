"""The Fault reconciler against the real control endpoint of a running twin rack: selectors,
start, duration, clear, deletion, and refusals that end as a Failed Fault with the reason."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    Fault,
    FaultSelector,
    FaultSpec,
    FaultStart,
    InvalidObject,
    ObjectMeta,
    find_condition,
    parse,
    select_targets,
)
from racklet.controller.errors import TemporaryError
from racklet.controller.reconcilers import FaultReconciler
from racklet.store import MemoryStore

from .conftest import Endpoint


def _units(count: int) -> list[ComputeUnit]:
    return [
        ComputeUnit(
            metadata=ObjectMeta(name=f"unit-{n}", labels={"row": "even" if n % 2 == 0 else "odd"}),
            spec=ComputeUnitSpec(slot=n, bmc=BmcRef(url=f"https://127.0.0.1:{n}")),
        )
        for n in range(1, count + 1)
    ]


def test_selectors_pick_by_name_label_slot_and_seeded_random() -> None:
    units = _units(6)
    assert select_targets(FaultSelector(slots="2-4"), units) == ["unit-2", "unit-3", "unit-4"]
    assert select_targets(FaultSelector(labels={"row": "even"}, slots="1-4"), units) == [
        "unit-2",
        "unit-4",
    ]
    picked = select_targets(FaultSelector(slots="1-6", random=2, seed=11), units)
    assert len(picked) == 2
    assert picked == select_targets(FaultSelector(slots="1-6", random=2, seed=11), units)
    assert select_targets(FaultSelector(names=["unit-9"]), units) == ["unit-9"]  # refused later


def test_bad_fault_manifests_name_the_problem() -> None:
    base = {"apiVersion": "racklet.dev/v1alpha1", "kind": "Fault", "metadata": {"name": "f"}}
    for spec, words in (
        ({"type": "PowerLoss"}, "needs a selector"),
        ({"type": "BusbarOutage", "selector": {"names": ["unit-1"]}}, "takes no selector"),
        ({"type": "PowerLoss", "selector": {"slots": "5-2"}}, "within 1..16"),
        ({"type": "Meteor"}, "type"),
        ({"type": "BrownOut", "duration": "ten"}, "duration"),
        ({"type": "BrownOut", "params": {"watts": float("nan")}}, "params.watts must be a finite"),
    ):
        with pytest.raises(InvalidObject, match=words):
            parse({**base, "spec": spec})


async def _reconciled(store: MemoryStore, reconciler: FaultReconciler, name: str) -> Fault:
    await reconciler.reconcile(name)
    return await store.get(Fault, name)


async def test_a_fault_is_injected_on_its_targets_and_cleared_on_request(
    endpoint: Endpoint,
) -> None:
    store = MemoryStore()
    for unit in _units(3):
        await store.create(unit)
    woken: list[str] = []
    reconciler = FaultReconciler(store, endpoint.client, wake=woken.append)
    await store.create(
        Fault(
            metadata=ObjectMeta(name="cut-odd"),
            spec=FaultSpec(type="PowerLoss", selector=FaultSelector(labels={"row": "odd"})),
        )
    )
    for name in ("unit-1", "unit-2", "unit-3"):
        endpoint.rack.unit(name).power_on()
    fault = await _reconciled(store, reconciler, "cut-odd")
    assert fault.status.phase == "Active" and fault.status.targets == ["unit-1", "unit-3"]
    assert not endpoint.rack.unit("unit-1").powered and endpoint.rack.unit("unit-2").powered
    injected = find_condition(fault.status.conditions, "Injected")
    assert injected is not None and injected.status == "True"

    fault.spec.cleared = True
    await store.update(fault)
    fault = await _reconciled(store, reconciler, "cut-odd")
    assert fault.status.phase == "Cleared" and fault.status.clear_time is not None
    assert endpoint.rack.unit("unit-1").cuts == set()
    assert woken == ["unit-1", "unit-3"]  # looked at again at once, not at the next resync
    assert [e.reason for e in await store.events("cut-odd")] == ["Injected", "Cleared"]


async def test_refusals_fail_the_fault_with_the_hardware_reason(endpoint: Endpoint) -> None:
    store = MemoryStore()
    for unit in _units(3):
        await store.create(unit)
    reconciler = FaultReconciler(store, endpoint.client)
    endpoint.rack.pull("unit-3")
    for name, spec, reason in (
        ("ghost", FaultSpec(type="PowerLoss", selector=FaultSelector(names=["unit-9"])), "no unit"),
        ("bmc", FaultSpec(type="BmcReboot", selector=FaultSelector(slots="1")), "cannot be done"),
        ("empty", FaultSpec(type="PowerLoss", selector=FaultSelector(slots="3")), "is empty"),
        ("low", FaultSpec(type="BrownOut", params={"watts": 0.1}), "idle draw"),
        ("none", FaultSpec(type="PowerLoss", selector=FaultSelector(slots="9")), "matches no"),
    ):
        await store.create(Fault(metadata=ObjectMeta(name=name), spec=spec))
        fault = await _reconciled(store, reconciler, name)
        assert fault.status.phase == "Failed", name
        condition = find_condition(fault.status.conditions, "Injected")
        assert condition is not None and condition.status == "False"
        assert reason in condition.message, (name, condition.message)
        assert (await store.events(name))[-1].type == "Warning"


async def test_a_timed_fault_waits_for_its_start_and_ends_after_its_duration(
    endpoint: Endpoint,
) -> None:
    store = MemoryStore()
    for unit in _units(2):
        await store.create(unit)
    reconciler = FaultReconciler(store, endpoint.client)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await store.create(
        Fault(
            metadata=ObjectMeta(name="later"),
            spec=FaultSpec(type="BusbarOutage", start=FaultStart(at=later), duration="10s"),
        )
    )
    delay = await reconciler.reconcile("later")
    assert delay is not None and 3500 < delay <= 3601  # utcnow() is whole seconds
    assert (await store.get(Fault, "later")).status.phase == "Pending"
    assert endpoint.rack.unit("unit-1").cuts == set()

    await store.create(
        Fault(metadata=ObjectMeta(name="now"), spec=FaultSpec(type="BusbarOutage", duration="10s"))
    )
    assert await reconciler.reconcile("now") == pytest.approx(10, abs=1)
    assert endpoint.rack.unit("unit-1").cuts == {"busbar"}
    fault = await store.get(Fault, "now")
    fault.status.start_time = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=11)
    await store.update_status(fault)
    fault = await _reconciled(store, reconciler, "now")
    assert fault.status.phase == "Cleared" and "duration ended" in fault.status.message
    assert endpoint.rack.unit("unit-1").cuts == set()


async def test_a_deleted_fault_is_cleared_and_an_unreachable_rack_is_retried(
    endpoint: Endpoint,
) -> None:
    store = MemoryStore()
    for unit in _units(2):
        await store.create(unit)
    reconciler = FaultReconciler(store, endpoint.client)
    await store.create(
        Fault(
            metadata=ObjectMeta(name="p"),
            spec=FaultSpec(type="Partition", selector=FaultSelector(names=["unit-2"])),
        )
    )
    endpoint.rack.unit("unit-2").power_on()
    await reconciler.reconcile("p")
    assert not endpoint.rack.unit("unit-2").link_up()
    await store.delete(Fault, "p")
    await reconciler.reconcile("p")
    assert endpoint.rack.unit("unit-2").link_up()

    await endpoint.stop()
    await store.create(Fault(metadata=ObjectMeta(name="q"), spec=FaultSpec(type="BusbarOutage")))
    with pytest.raises(TemporaryError, match="does not answer"):
        await reconciler.reconcile("q")
    assert (await store.get(Fault, "q")).status.phase == "Pending"


def test_gitops_carries_fault_manifests_like_any_kind() -> None:
    from racklet.gitops import load_manifests

    manifest = b"""
apiVersion: racklet.dev/v1alpha1
kind: Fault
metadata: {name: two-units-lose-power}
spec:
  type: PowerLoss
  selector: {slots: 1-8, random: 2, seed: 7}
  start: {after: 30s}
  duration: 1m
"""
    (loaded,) = load_manifests({"faults/power.yaml": manifest})
    assert loaded.kind == "Fault" and loaded.name == "two-units-lose-power"
    assert loaded.body["spec"]["selector"] == {
        "slots": "1-8",
        "random": 2,
        "seed": 7,
        "names": [],
        "labels": {},
    }


async def test_a_controller_crash_is_recorded_before_it_happens_and_happens_once(
    endpoint: Endpoint,
) -> None:
    store = MemoryStore()
    crash = Fault(metadata=ObjectMeta(name="boom"), spec=FaultSpec(type="ControllerCrash"))
    await store.create(crash)
    seen_when_crashed: list[Fault] = []

    async def record() -> None:
        seen_when_crashed.append(await store.get(Fault, "boom"))

    crashes: list[asyncio.Task[None]] = []
    first = FaultReconciler(
        store, endpoint.client, identity="host/100/api:1",
        crash=lambda: crashes.append(asyncio.ensure_future(record())),
    )  # fmt: skip
    assert await first.reconcile("boom") == 1.0  # alive a second later: it asks again
    await asyncio.gather(*crashes)
    [before] = seen_when_crashed  # what the store held when the supervisor was asked
    assert before.status.phase == "Active"
    assert before.status.crashed_controller == "host/100/api:1"

    # The supervisor killed it and started another process: it does not crash again.
    again: list[str] = []
    restarted = FaultReconciler(
        store, endpoint.client, identity="host/101/api:1", crash=lambda: again.append("x")
    )
    fault = await _reconciled(store, restarted, "boom")
    assert again == [] and fault.status.phase == "Cleared"
    assert "came back after the crash (host/101/api:1 acts now)" in fault.status.message
    assert await restarted.reconcile("boom") is None and again == []


async def test_a_controller_crash_without_a_supervisor_is_refused(endpoint: Endpoint) -> None:
    store = MemoryStore()
    await store.create(
        Fault(metadata=ObjectMeta(name="boom"), spec=FaultSpec(type="ControllerCrash"))
    )
    fault = await _reconciled(store, FaultReconciler(store, endpoint.client, crash=None), "boom")
    assert fault.status.phase == "Failed"
    injected = find_condition(fault.status.conditions, "Injected")
    assert injected is not None and injected.reason == "NoSupervisor"
    assert "needs a supervisor that restarts the controller" in fault.status.message

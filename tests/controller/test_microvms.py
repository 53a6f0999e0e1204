"""The MicroVM scheduler and reconciler over a real (in-memory) store: placement by capacity
and labels, the short resource named, the busbar, rescheduling when a unit is lost, fencing."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

import httpx

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    MicroVM,
    MicroVMSpec,
    ObjectMeta,
    Rack,
    RackSpec,
    VmImageRef,
    find_condition,
    utcnow,
)
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry, VmReport
from racklet.controller._http import create_machine_app
from racklet.controller._scheduler import OS_RESERVED_MIB
from racklet.controller._workloads import LEASE_MARGIN_SECONDS, exchange
from racklet.controller.reconcilers import MicroVMReconciler
from racklet.controller.reconcilers._microvms import LEASE_SECONDS, RESTART_BACKOFF_SECONDS
from racklet.hw import measured_capacity
from racklet.net import AppServer
from racklet.store import MemoryStore
from racklet.twin import load_profile
from tests.controller.harness import machine_listener_tls


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def _rack(
    units: dict[str, str], *, rated: float = 100.0, labels: dict[str, dict[str, str]] | None = None
) -> tuple[MemoryStore, HeartbeatRegistry, MicroVMReconciler, Clock]:
    store = MemoryStore()
    await store.create(
        Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=rated))
    )
    beats = HeartbeatRegistry()
    for slot, (name, phase) in enumerate(units.items(), start=1):
        unit = await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name, labels=(labels or {}).get(name, {})),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
            )
        )
        await _set_unit(store, name, phase)
        del unit
        beats.record(
            HeartbeatBody(
                unit=name, agent_url="https://x", os_version="1", cores=4, memory_mi_b=2048
            )
        )
    clock = Clock()
    return store, beats, MicroVMReconciler(store, beats, now=clock), clock


async def _set_unit(store: MemoryStore, name: str, phase: str, power: str = "On") -> None:
    unit = await store.get(ComputeUnit, name)
    unit.status.phase = phase  # type: ignore[assignment]
    unit.status.power_state = power
    unit.status.power_watts = 3.0 if power == "On" else 0.0
    await store.update_status(unit)


async def _vm(store: MemoryStore, name: str, **spec: object) -> None:
    await store.create(
        MicroVM(
            metadata=ObjectMeta(name=name),
            spec=MicroVMSpec.model_validate(
                {"image": VmImageRef(name="busybox", version="1.0.0"), **spec}
            ),
        )
    )


async def test_vms_spread_and_those_that_do_not_fit_say_what_is_short() -> None:
    store, _, rec, _ = await _rack({"unit-1": "Running", "unit-2": "Running"})
    await _vm(store, "a", vcpus=2, memoryMiB=512)
    await _vm(store, "b", vcpus=2, memoryMiB=512)
    await _vm(store, "too-wide", vcpus=8)
    await _vm(store, "too-big", vcpus=1, memoryMiB=4096)
    for name in ("a", "b", "too-wide", "too-big"):
        await rec.reconcile(name)
    a, b = await store.get(MicroVM, "a"), await store.get(MicroVM, "b")
    assert {a.status.unit, b.status.unit} == {"unit-1", "unit-2"}  # spread
    assert a.status.phase == "Scheduled" and a.status.attempt == 1
    for name, reason, words in (
        ("too-wide", "InsufficientCPU", "needs 8 vCPUs"),
        ("too-big", "InsufficientMemory", "needs 4096 MiB"),
    ):
        vm = await store.get(MicroVM, name)
        assert vm.status.phase == "Pending" and vm.status.unit is None
        cond = find_condition(vm.status.conditions, "Scheduled")
        assert cond is not None and (cond.status, cond.reason) == ("False", reason)
        assert words in cond.message
    reasons = {e.reason for e in await store.events()}
    assert {"Scheduled", "InsufficientCPU", "InsufficientMemory"} <= reasons


async def test_node_selector_anti_affinity_and_the_busbar() -> None:
    store, _, rec, _ = await _rack(
        {"unit-1": "Running", "unit-2": "Running"},
        rated=6.0 + 1.0,  # two units at 3 W each: 1 W of headroom
        labels={"unit-2": {"zone": "top"}},
    )
    await _vm(store, "pinned", nodeSelector="zone=top", vcpus=1)
    await rec.reconcile("pinned")
    assert (await store.get(MicroVM, "pinned")).status.unit == "unit-2"
    await _vm(store, "nowhere", nodeSelector="zone=bottom")
    await rec.reconcile("nowhere")
    cond = find_condition((await store.get(MicroVM, "nowhere")).status.conditions, "Scheduled")
    assert cond is not None and cond.reason == "NodeSelector"
    await _vm(store, "hungry", vcpus=2)  # 1.85 W expected, 1 W − 0.925 W left
    await rec.reconcile("hungry")
    cond = find_condition((await store.get(MicroVM, "hungry")).status.conditions, "Scheduled")
    assert cond is not None and cond.reason == "BusbarBudget"


async def test_a_vm_moves_when_its_unit_is_powered_off_and_waits_out_a_partition() -> None:
    store, _, rec, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    await _vm(store, "web", restartPolicy="Always")
    await rec.reconcile("web")
    first = (await store.get(MicroVM, "web")).status.unit
    assert first is not None
    other = "unit-2" if first == "unit-1" else "unit-1"
    await _set_unit(store, first, "Off", power="Off")
    await rec.reconcile("web")  # fenced by power: Pending at once ...
    await rec.reconcile("web")  # ... and placed on the other unit
    vm = await store.get(MicroVM, "web")
    assert (vm.status.unit, vm.status.attempt) == (other, 2)
    # a partition: the unit is Unreachable, its power still On: the VM stays until its lease ends
    await _set_unit(store, other, "Unreachable")
    await _set_unit(store, first, "Running")
    await rec.reconcile("web")
    assert (await store.get(MicroVM, "web")).status.unit == other
    clock.now += dt.timedelta(seconds=LEASE_SECONDS + 1)
    await rec.reconcile("web")
    await rec.reconcile("web")
    vm = await store.get(MicroVM, "web")
    assert (vm.status.unit, vm.status.attempt) == (first, 3)
    assert [e.reason for e in await store.events()].count("Rescheduling") == 2
    # pulled from its slot: fenced (no power) and said so
    await _set_unit(store, first, "Absent", power="Off")
    await rec.reconcile("web")
    (pulled,) = [e for e in await store.events() if "pulled" in e.message]
    assert pulled.reason == "Rescheduling" and f"unit {first} was pulled" in pulled.message


async def test_a_never_restarted_vm_fails_with_its_unit() -> None:
    store, _, rec, _ = await _rack({"unit-1": "Running"})
    await _vm(store, "once", restartPolicy="Never")
    await rec.reconcile("once")
    await _set_unit(store, "unit-1", "Off", power="Off")
    await rec.reconcile("once")
    vm = await store.get(MicroVM, "once")
    assert vm.status.phase == "Failed" and "unit-1 is powered off" in vm.status.reason


async def test_the_heartbeat_carries_reports_in_and_assignments_out(tmp_path: Path) -> None:
    """Over the real machine listener (mutual TLS, the unit's own certificate): the reply
    names the unit's VMs with their lease; a report updates the VM's status, a report of an
    older attempt (the VM moved meanwhile) changes nothing."""
    store, beats, rec, clock = await _rack({"unit-1": "Running"})
    clock.now = utcnow()
    await _vm(store, "web", userData="echo hi", vcpus=2)
    await rec.reconcile("web")
    context, unit_tls = machine_listener_tls(tmp_path)
    queued: list[tuple[str, str]] = []
    app = create_machine_app(beats, enqueue=lambda k, n: queued.append((k, n)), store=store)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = AppServer(
        app,
        port=port,
        ssl_context=context,
        name="machine",
    )
    await server.start()
    body: dict[str, object] = {
        "unit": "unit-1",
        "agentUrl": "https://127.0.0.1:4000",
        "osVersion": "racklet-os 1.0",
    }
    url = f"https://127.0.0.1:{port}/machine/v1/heartbeat"
    try:
        async with httpx.AsyncClient(verify=unit_tls) as unit:
            reply = (await unit.post(url, json=body)).json()
            (assigned,) = reply["details"]["microvms"]  # beside a stress job, if any
            assert assigned["name"] == "web" and assigned["attempt"] == 1
            assert assigned["image"] == "vm-images/busybox/1.0.0/image.tar"
            assert (assigned["vcpus"], assigned["userData"]) == (2, "echo hi")
            # the agent's lease ends before the controller's: it stops the VM before the
            # controller may place it elsewhere
            assert 0 < assigned["leaseSeconds"] <= LEASE_SECONDS - LEASE_MARGIN_SECONDS
            stale = {"name": "web", "attempt": 0, "phase": "Failed", "exitCode": 9}
            await unit.post(url, json={**body, "microvms": [stale]})
            assert (await store.get(MicroVM, "web")).status.phase == "Scheduled"
            done = {"name": "web", "attempt": 1, "phase": "Succeeded", "exitCode": 0}
            reply = (await unit.post(url, json={**body, "microvms": [done]})).json()
            assert reply["details"]["microvms"] == []  # finished: nothing left to run
    finally:
        await server.stop()
    vm = await store.get(MicroVM, "web")
    assert (vm.status.phase, vm.status.exit_code) == ("Succeeded", 0)
    assert vm.status.console_url == "https://127.0.0.1:4000/vms/web/console"
    assert ("MicroVM", "web") in queued


async def test_a_unit_is_as_big_as_its_agent_says_less_the_os(tmp_path: Path) -> None:
    """The scheduler sizes each unit from its heartbeat (a Pi 5 with 8 GiB takes a VM a
    Pi 4 with 4 GiB cannot), less what the OS keeps; the twin's board reports its
    profile's size and a real unit what its kernel says."""
    store, beats, rec, _ = await _rack({"unit-1": "Running", "unit-2": "Running"})
    for name, profile in (("unit-1", "raspberry-pi-4"), ("unit-2", "raspberry-pi-5")):
        cores, memory = load_profile(profile).cores, load_profile(profile).memory_mib
        beats.record(
            HeartbeatBody.model_validate(
                {"unit": name, "agentUrl": "https://x", "osVersion": "1"}
                | {"cores": cores, "memoryMiB": memory}
            )
        )
    await _vm(store, "big", vcpus=4, memoryMiB=8192 - OS_RESERVED_MIB)
    await _vm(store, "bigger", vcpus=1, memoryMiB=8192 - OS_RESERVED_MIB + 1)
    await rec.reconcile("big")
    await rec.reconcile("bigger")
    assert (await store.get(MicroVM, "big")).status.unit == "unit-2"
    await _vm(store, "by-name", nodeSelector="racklet.dev/unit=unit-1")  # each unit's name
    await rec.reconcile("by-name")
    assert (await store.get(MicroVM, "by-name")).status.unit == "unit-1"
    cond = find_condition((await store.get(MicroVM, "bigger")).status.conditions, "Scheduled")
    assert cond is not None and cond.reason == "InsufficientMemory"
    assert f"the most free on a unit with the cores is {4096 - OS_RESERVED_MIB} MiB" in (
        cond.message
    )
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        3884060 kB\nMemFree:  1 kB\n")
    assert measured_capacity(meminfo) == (os.cpu_count(), 3884060 // 1024)


async def _ends(store: MemoryStore, name: str, phase: str, code: int) -> None:
    """The VM's agent reports it ended (through the heartbeat's exchange)."""
    vm = await store.get(MicroVM, name)
    assert vm.status.unit is not None
    report = VmReport(name=name, attempt=vm.status.attempt, phase=phase, exit_code=code)
    await exchange(store, vm.status.unit, [report], "https://127.0.0.1:4000")


async def test_restart_policies_start_an_ended_vm_again_after_a_back_off() -> None:
    """OnFailure restarts a failed VM (not a succeeded one), Always any that ended, Never
    none; each restart is a new attempt, after a back-off that doubles."""
    store, _, rec, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    for name, policy in (("flaky", "OnFailure"), ("done", "OnFailure"), ("loop", "Always")):
        await _vm(store, name, restartPolicy=policy)
    await _vm(store, "once", restartPolicy="Never")
    for name in ("flaky", "done", "loop", "once"):
        await rec.reconcile(name)
    clock.now = utcnow()
    await _ends(store, "flaky", "Failed", 3)
    await _ends(store, "done", "Succeeded", 0)
    await _ends(store, "loop", "Succeeded", 0)
    await _ends(store, "once", "Failed", 3)
    wait = await rec.reconcile("flaky")
    assert wait is not None and 0 < wait <= RESTART_BACKOFF_SECONDS  # not at once
    assert (await store.get(MicroVM, "flaky")).status.phase == "Failed"
    clock.now += dt.timedelta(seconds=RESTART_BACKOFF_SECONDS + 0.1)
    for name in ("flaky", "done", "loop", "once"):
        await rec.reconcile(name)
    for name in ("flaky", "loop"):
        vm = await store.get(MicroVM, name)
        assert (vm.status.phase, vm.status.attempt, vm.status.restarts) == ("Scheduled", 2, 1)
        assert vm.status.exit_code is None and vm.status.finished_time is None
    done, once = await store.get(MicroVM, "done"), await store.get(MicroVM, "once")
    assert (done.status.phase, done.status.attempt) == ("Succeeded", 1)
    assert (once.status.phase, once.status.exit_code, once.status.attempt) == ("Failed", 3, 1)
    (event,) = [e for e in await store.events() if e.reason == "Restarting" and "flaky" in str(e)]
    assert "exit code 3" in event.message and "restart 1 under restartPolicy OnFailure" in (
        event.message
    )
    # the second failure waits twice as long
    await _ends(store, "flaky", "Failed", 3)
    clock.now = utcnow() + dt.timedelta(seconds=RESTART_BACKOFF_SECONDS + 0.1)
    await rec.reconcile("flaky")
    assert (await store.get(MicroVM, "flaky")).status.phase == "Failed"
    clock.now += dt.timedelta(seconds=RESTART_BACKOFF_SECONDS)
    await rec.reconcile("flaky")
    vm = await store.get(MicroVM, "flaky")
    assert (vm.status.phase, vm.status.attempt, vm.status.restarts) == ("Scheduled", 3, 2)


async def test_a_units_phase_change_wakes_the_vms_on_it_and_those_waiting() -> None:
    """Without it a VM would notice a lost unit (or a unit that came back for a waiting VM)
    only at its next recheck, a second later."""
    store, beats, _, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    woken: list[str] = []
    rec = MicroVMReconciler(store, beats, now=clock, wake=woken.append)
    await _vm(store, "web", nodeSelector="racklet.dev/unit=unit-1")
    await _vm(store, "big", vcpus=64)  # fits nowhere: waits for a place
    await _vm(store, "done", restartPolicy="Never")
    for name in ("web", "big", "done"):
        await rec.reconcile(name)
    done = await store.get(MicroVM, "done")
    done.status.phase = "Succeeded"
    await store.update_status(done)
    await rec.reconcile("done")  # ended for good: never woken again
    rec.unit_changed("unit-1", "Off")
    assert woken == ["web"]
    woken.clear()
    rec.unit_changed("unit-2", "Running")
    assert woken == ["big"]
    await store.delete(MicroVM, "web")
    await rec.reconcile("web")
    woken.clear()
    rec.unit_changed("unit-1", "Running")
    assert woken == ["big"]


async def test_a_placement_once_stored_is_told_so_its_agent_beats_at_once() -> None:
    """The controller asks the new unit's agent for a heartbeat when a VM is placed on it
    (the reply carries the assignment): for a new placement, not for each lease renewal."""
    store, beats, _, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    told: list[str] = []
    stored: list[str | None] = [None]
    rec = MicroVMReconciler(store, beats, now=clock, assigned=told.append)
    await _vm(store, "web", restartPolicy="Always")

    async def reconcile() -> None:
        await rec.reconcile("web")
        stored[0] = (await store.get(MicroVM, "web")).status.unit

    await reconcile()
    first = stored[0]
    assert first is not None and told == [first]
    await reconcile()  # a lease renewal: nothing to tell
    assert len(told) == 1
    other = "unit-2" if first == "unit-1" else "unit-1"
    await _set_unit(store, first, "Off", power="Off")
    await reconcile()  # moved: the other unit is told
    assert told == [first, other] and stored[0] == other


async def test_units_are_told_the_images_of_vms_that_may_move_to_them() -> None:
    """The heartbeat reply names, to each unit, the images of the movable VMs (``Always``,
    ``OnFailure``) that run elsewhere or wait for a place, so it can hold them verified."""
    from racklet.controller._workloads import standby_images

    store, _, rec, _ = await _rack({"unit-1": "Running", "unit-2": "Running"})
    await _vm(store, "web", restartPolicy="Always")
    await _vm(store, "once", restartPolicy="Never")  # never moves: nobody needs its image
    await rec.reconcile("web")
    on = (await store.get(MicroVM, "web")).status.unit
    other = "unit-2" if on == "unit-1" else "unit-1"
    image = "vm-images/busybox/1.0.0/image.tar"
    assert await standby_images(store, other) == [image]
    assert await standby_images(store, on or "") == []  # it runs there already


async def test_a_report_that_lost_to_a_move_is_answered_from_the_store() -> None:
    """The heartbeat lists the VMs once; if the reconciler moves a VM between that list and
    the report's status write, the write loses (a conflict) and the VM is read again, so the
    reply does not hand the old unit a VM that now runs elsewhere."""
    store, _, rec, _ = await _rack({"unit-1": "Running", "unit-2": "Running"})
    await _vm(store, "web", vcpus=1)
    await rec.reconcile("web")
    listed = await store.list(MicroVM)  # the heartbeat's one list
    vm = await store.get(MicroVM, "web")
    old = vm.status.unit
    assert old is not None
    vm.status.unit = "unit-2" if old == "unit-1" else "unit-1"  # the reconciler moved it
    vm.status.attempt += 1
    await store.update_status(vm)
    report = VmReport(name="web", attempt=1, phase="Running")
    assert await exchange(store, old, [report], "https://127.0.0.1:4000", vms=listed) == []
    moved = await store.get(MicroVM, "web")
    assert (moved.status.unit, moved.status.attempt, moved.status.phase) == (
        vm.status.unit,
        2,
        "Scheduled",
    )

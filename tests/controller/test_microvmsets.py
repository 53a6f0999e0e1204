"""MicroVMSets over a real (in-memory) store with the real MicroVM reconciler and scheduler:
scaling, the rolling replacement (never fewer Running than allowed, never more VMs than the
surge allows), owner references and garbage collection. The agent's reports are written as
the heartbeat exchange writes them (``status.phase``); QEMU runs in the e2e test."""

from __future__ import annotations

import asyncio
from pathlib import Path

from racklet.api import (
    SET_LABEL,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    MicroVM,
    MicroVMSet,
    MicroVMSetSpec,
    ObjectMeta,
    VmTemplate,
    find_condition,
)
from racklet.controller._heartbeats import HeartbeatBody, HeartbeatRegistry
from racklet.controller.reconcilers import MicroVMReconciler, MicroVMSetReconciler
from racklet.controller.reconcilers._microvmsets import Member, plan_members
from racklet.store import MemoryStore, NotFound, SqliteStore
from tests.controller.test_microvms import _rack


def _members(ready: int, pending: int = 0, start: int = 0) -> list[Member]:
    return [Member(f"m{start + i}", i < ready, start + i) for i in range(ready + pending)]


def test_the_plan_makes_a_new_vm_run_before_an_old_one_goes() -> None:
    # defaults (surge 1, unavailable 0), 3 replicas all old and Running: one new VM first
    first = plan_members(3, 1, 0, [], _members(3))
    assert (first.create, first.delete) == (1, ())
    # the new one not yet Running: nothing more
    waiting = plan_members(3, 1, 0, _members(0, 1, start=10), _members(3))
    assert (waiting.create, waiting.delete) == (0, ())
    # Running: one old one goes (the newest), and only then another new one is made
    ran = plan_members(3, 1, 0, _members(1, start=10), _members(3))
    assert (ran.create, ran.delete) == (0, (("m2", "Replaced"),))
    after = plan_members(3, 1, 0, _members(1, start=10), _members(2))
    assert (after.create, after.delete) == (1, ())


def test_the_plan_with_max_unavailable_and_scaling() -> None:
    # surge 0, unavailable 1: an old Running VM goes first, then its replacement is made
    plan = plan_members(2, 0, 1, [], _members(2))
    assert (plan.create, plan.delete) == (0, (("m1", "Replaced"),))
    assert plan_members(2, 0, 1, [], _members(1)).create == 1
    # an old VM that is not Running goes at once: it serves nothing
    plan = plan_members(2, 1, 0, [], [Member("up", True, 0), Member("down", False, 1)])
    assert plan.delete == (("down", "Replaced"),) and plan.create == 1
    # scaling: up to replicas, down from the VMs not Running first, then the newest
    assert plan_members(3, 1, 0, _members(1), []).create == 2
    down = plan_members(
        1, 1, 0, [Member("a", True, 0), Member("b", True, 1), Member("c", False, 2)], []
    )
    assert (down.create, down.delete) == (0, (("c", "ScaledDown"), ("b", "ScaledDown")))
    # to zero while replacing: every VM goes
    gone = plan_members(0, 1, 0, [], _members(2))
    assert gone.create == 0 and len(gone.delete) == 2


def _template(version: str = "1.0.0", **spec: object) -> VmTemplate:
    return VmTemplate.model_validate(
        {"spec": {"image": {"name": "busybox", "version": version}, **spec}}
    )


async def _set(store: MemoryStore, name: str, replicas: int, **spec: object) -> MicroVMSet:
    return await store.create(
        MicroVMSet(
            metadata=ObjectMeta(name=name),
            spec=MicroVMSetSpec(replicas=replicas, template=_template(**spec)),  # type: ignore[arg-type]
        )
    )


async def _owned(store: MemoryStore, name: str) -> list[MicroVM]:
    return sorted(await store.list(MicroVM, {SET_LABEL: name}), key=lambda v: v.metadata.name)


async def _settle(
    store: MemoryStore, sets: MicroVMSetReconciler, vms: MicroVMReconciler, name: str
) -> None:
    """One round as the runtime would run it: the set, then each of its VMs (scheduled by the
    real reconciler), then the agents' reports: a scheduled VM comes up Running."""
    await sets.reconcile(name)
    for vm in await _owned(store, name):
        await vms.reconcile(vm.metadata.name)
        vm = await store.get(MicroVM, vm.metadata.name)
        if vm.status.phase == "Scheduled":
            vm.status.phase = "Running"
            await store.update_status(vm)
    await sets.reconcile(name)


async def test_a_set_keeps_its_replicas_spread_owned_and_reports_them() -> None:
    store, beats, _, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    woken: list[str] = []
    vms = MicroVMReconciler(store, beats, now=clock, wake_set=woken.append)
    sets = MicroVMSetReconciler(store)
    made = await _set(store, "web", 2, vcpus=2)
    await sets.reconcile("web")
    owned = await _owned(store, "web")
    assert len(owned) == 2
    vmset = await store.get(MicroVMSet, "web")
    hash_ = vmset.status.template_hash
    assert [v.metadata.name for v in owned] == [f"web-{hash_}-0", f"web-{hash_}-1"]
    for vm in owned:
        (owner,) = vm.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("MicroVMSet", "web", made.metadata.uid)
        assert vm.spec.restart_policy == "Always" and vm.spec.vcpus == 2
    assert vmset.status.ready_replicas == 0
    cond = find_condition(vmset.status.conditions, "Available")
    assert cond is not None and cond.status == "False"
    await _settle(store, sets, vms, "web")
    assert woken and set(woken) == {"web"}  # a VM's change wakes its set
    units = {v.status.unit for v in await _owned(store, "web")}
    assert units == {"unit-1", "unit-2"}  # spread by the scheduler
    vmset = await store.get(MicroVMSet, "web")
    status = vmset.status
    assert (status.replicas, status.ready_replicas, status.updated_replicas) == (2, 2, 2)
    progressing = find_condition(status.conditions, "Progressing")
    available = find_condition(status.conditions, "Available")
    assert progressing is not None and progressing.reason == "NewReplicasAvailable"
    assert available is not None and available.status == "True"
    complete = find_condition(status.conditions, "Complete")
    assert complete is not None and complete.status == "True"
    assert [e.reason for e in await store.events("web", kind="MicroVMSet")] == ["Created"] * 2


async def test_a_new_image_replaces_the_vms_one_at_a_time() -> None:
    store, beats, _, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    vms = MicroVMReconciler(store, beats, now=clock)
    sets = MicroVMSetReconciler(store)
    await _set(store, "web", 2)
    await _settle(store, sets, vms, "web")
    before = {v.metadata.name for v in await _owned(store, "web")}
    vmset = await store.get(MicroVMSet, "web")
    old_hash = vmset.status.template_hash
    vmset.spec.template = _template("2.0.0")
    await store.update(vmset)
    for _ in range(12):
        await sets.reconcile("web")
        owned = await _owned(store, "web")
        assert len(owned) <= 3  # replicas + maxSurge
        running = [v for v in owned if v.status.phase == "Running"]
        assert len(running) >= 2  # maxUnavailable 0: never fewer Running
        for vm in owned:  # the agents: scheduled ones come up
            await vms.reconcile(vm.metadata.name)
            fresh = await store.get(MicroVM, vm.metadata.name)
            if fresh.status.phase == "Scheduled":
                fresh.status.phase = "Running"
                await store.update_status(fresh)
    owned = await _owned(store, "web")
    assert not before & {v.metadata.name for v in owned}
    assert {v.spec.image.version for v in owned} == {"2.0.0"}
    vmset = await store.get(MicroVMSet, "web")
    assert vmset.status.template_hash != old_hash
    assert (vmset.status.ready_replicas, vmset.status.updated_replicas) == (2, 2)
    reasons = [e.reason for e in await store.events("web", kind="MicroVMSet")]
    assert reasons.count("TemplateChanged") == 1 and reasons.count("Replaced") == 2
    # the deletions came one at a time: each after a new VM was Running
    deleted = [e for e in await store.events("web", kind="MicroVMSet") if e.reason == "Replaced"]
    assert all(old_hash in e.message for e in deleted)


async def test_scaling_and_deleting_the_set_takes_its_vms() -> None:
    store, beats, _, clock = await _rack({"unit-1": "Running", "unit-2": "Running"})
    vms = MicroVMReconciler(store, beats, now=clock)
    sets = MicroVMSetReconciler(store)
    await _set(store, "web", 3)
    await _settle(store, sets, vms, "web")
    vmset = await store.get(MicroVMSet, "web")
    vmset.spec.replicas = 1
    await store.update(vmset)
    await sets.reconcile("web")
    assert [v.metadata.name for v in await _owned(store, "web")] == [
        f"web-{vmset.status.template_hash}-0"
    ]
    assert (await store.get(MicroVMSet, "web")).status.replicas == 1
    await store.delete(MicroVMSet, "web")
    await sets.reconcile("web")
    assert await _owned(store, "web") == []


async def test_a_vm_whose_set_is_gone_or_replaced_is_collected() -> None:
    """The set deleted while no controller ran, then made again under the same name: its old
    VMs (the old uid) go through the MicroVM reconciler; the new set makes its own."""
    store, beats, _, clock = await _rack({"unit-1": "Running"})
    vms = MicroVMReconciler(store, beats, now=clock)
    sets = MicroVMSetReconciler(store)
    await _set(store, "web", 1)
    await sets.reconcile("web")
    (old,) = await _owned(store, "web")
    await store.delete(MicroVMSet, "web")
    await _set(store, "web", 1, vcpus=2)
    await sets.reconcile("web")  # the old VM is not the new set's: it makes another
    assert len(await _owned(store, "web")) == 2
    await vms.reconcile(old.metadata.name)
    try:
        await store.get(MicroVM, old.metadata.name)
        raise AssertionError("the orphan was kept")
    except NotFound:
        pass
    (kept,) = await _owned(store, "web")
    assert kept.spec.vcpus == 2
    reasons = [e.reason for e in await store.events(old.metadata.name, kind="MicroVM")]
    assert reasons == ["OwnerGone"]


async def test_replicas_reconciled_at_once_still_spread(tmp_path: Path) -> None:
    """The runtime reconciles VMs concurrently (on the SQLite store every call awaits a
    thread): two placed at the same time must not both pick the emptiest unit, each seeing
    the other not yet placed."""
    store = SqliteStore(tmp_path / "store.db")
    try:
        beats = HeartbeatRegistry()
        for slot, name in enumerate(("unit-1", "unit-2"), start=1):
            await store.create(
                ComputeUnit(
                    metadata=ObjectMeta(name=name),
                    spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
                )
            )
            unit = await store.get(ComputeUnit, name)
            unit.status.phase, unit.status.power_state = "Running", "On"
            await store.update_status(unit)
            beats.record(
                HeartbeatBody(unit=name, agent_url="https://x", os_version="1", cores=4,
                              memory_mi_b=2048)
            )  # fmt: skip
        vms = MicroVMReconciler(store, beats)
        await _set(store, "web", 2)  # type: ignore[arg-type]
        await MicroVMSetReconciler(store).reconcile("web")
        names = [v.metadata.name for v in await store.list(MicroVM)]
        await asyncio.gather(*(vms.reconcile(n) for n in names))
        assert {v.status.unit for v in await store.list(MicroVM)} == {"unit-1", "unit-2"}
    finally:
        await store.close()

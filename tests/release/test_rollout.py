"""The Rollout reconciler against a real TUF repository and a fake unit fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from racklet.api import (
    ComputeUnit,
    ObjectMeta,
    Release,
    Rollout,
    RolloutSpec,
    find_condition,
)
from racklet.boot import TufRepository, build_default_payload
from racklet.cli._release import release_object
from racklet.controller._releases import register_release_reconcilers
from racklet.controller._runtime import Registry
from racklet.controller.reconcilers._release import ReleaseReconciler, TufChannels
from racklet.controller.rollout import RolloutReconciler
from racklet.store import MemoryStore
from tests.release.fleet import FakeFleet

UNITS = ("unit-1", "unit-2", "unit-3", "unit-4", "unit-5")


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.store = MemoryStore()
        self.repo = TufRepository.create(tmp_path / "boot")
        self.fleet = FakeFleet(self.store, self.repo)
        self.clock = Clock()
        self.channels = TufChannels(tmp_path / "boot")
        self.rollouts = RolloutReconciler(self.store, self.channels, clock=self.clock)
        self.releases = ReleaseReconciler(self.store, self.channels)

    async def setup(self) -> None:
        self.repo.publish(
            "stable", "racklet-os", "0.1.0", {"payload.bin": build_default_payload(8192)}
        )
        for slot, name in enumerate(UNITS, start=1):
            await self.fleet.add(name, slot, "0.1.0", {"tier": "edu" if slot <= 4 else "lab"})

    async def publish(self, version: str) -> str:
        payload = build_default_payload(8192, version)
        tuf = self.repo.publish(
            "stable", "racklet-os", version, {"payload.bin": payload}, current=False
        )
        obj = await self.store.create(release_object(tuf))
        return obj.metadata.name

    async def start(self, name: str, **spec: object) -> None:
        await self.store.create(Rollout(metadata=ObjectMeta(name=name), spec=RolloutSpec(**spec)))

    async def get(self, name: str) -> Rollout:
        return await self.store.get(Rollout, name)

    async def drive(self, name: str, *, steps: int = 60, advance: float = 0.0) -> Rollout:
        """Reconcile and let the fleet react until the rollout ends (bounded by steps)."""
        for _ in range(steps):
            await self.rollouts.reconcile(name)
            rollout = await self.get(name)
            if rollout.status.phase in ("Complete", "Failed", "RolledBack"):
                return rollout
            await self.fleet.step()
            self.clock.now += advance
        raise AssertionError(f"rollout {name} did not finish: {rollout.status}")

    async def reasons(self, name: str) -> list[str]:
        return [e.reason for e in await self.store.events(name=name, kind="Rollout")]


@pytest.fixture
async def rig(tmp_path: Path) -> Rig:
    r = Rig(tmp_path)
    await r.setup()
    return r


async def test_canary_then_batches_within_max_unavailable(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    await rig.start(
        "to-020", release=release, selector={"tier": "edu"}, canary=1, batchSize=3, maxUnavailable=2
    )
    done = await rig.drive("to-020")
    assert done.status.phase == "Complete"
    assert done.status.updated_units == ["unit-1", "unit-2", "unit-3", "unit-4"]
    assert rig.fleet.current() == "0.2.0"
    # canary alone, then batches of min(batchSize, maxUnavailable) = 2, in slot order
    assert [u for u, _ in rig.fleet.cycles] == ["unit-1", "unit-2", "unit-3", "unit-4"]
    batches = [
        e.message
        for e in await rig.store.events(name="to-020", kind="Rollout")
        if e.reason == "BatchStarted"
    ]
    assert batches == [
        "canary: power-cycling unit-1 into 0.2.0",
        "batch 2: power-cycling unit-2, unit-3 into 0.2.0",
        "batch 3: power-cycling unit-4 into 0.2.0",
    ]
    lab = await rig.store.get(ComputeUnit, "unit-5")
    assert lab.status.os_version == "0.1.0", "units outside the selector are not cycled"
    assert find_condition(done.status.conditions, "Complete").status == "True"


async def test_units_already_down_count_against_max_unavailable(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    unit3 = await rig.store.get(ComputeUnit, "unit-3")
    unit3.status.phase = "BootFailed"  # down before the rollout reaches it
    await rig.store.update_status(unit3)
    await rig.start(
        "down", release=release, selector={"tier": "edu"}, canary=1, batchSize=2, maxUnavailable=2
    )
    done = await rig.drive("down")
    assert done.status.phase == "Complete", done.status
    batches = [
        e.message
        for e in await rig.store.events(name="down", kind="Rollout")
        if e.reason == "BatchStarted"
    ]
    assert batches == [
        "canary: power-cycling unit-1 into 0.2.0",
        "batch 2: power-cycling unit-2 into 0.2.0",  # one of maxUnavailable 2 is spent
        "batch 3: power-cycling unit-3 into 0.2.0",  # still down itself: it goes alone
        "batch 4: power-cycling unit-4 into 0.2.0",
    ]


async def test_the_next_batch_waits_for_the_canary(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    await rig.start("slow", release=release, canary=1, batchSize=2, maxUnavailable=2)
    for _ in range(3):  # the fleet never reacts: the canary stays Updating
        await rig.rollouts.reconcile("slow")
    rollout = await rig.get("slow")
    assert [u.phase for u in rollout.status.units][:3] == ["Updating", "Pending", "Pending"]
    await rig.fleet.step()
    await rig.rollouts.reconcile("slow")
    rollout = await rig.get("slow")
    assert [u.phase for u in rollout.status.units][:3] == ["Updated", "Updating", "Updating"]


async def test_a_failing_canary_pauses_and_rolls_back(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    rig.fleet.broken.add("0.2.0")
    await rig.start("bad", release=release, selector={"tier": "edu"}, batchSize=2)
    done = await rig.drive("bad")
    assert done.status.phase == "RolledBack"
    assert rig.fleet.current() == "0.1.0", "the channel points back at the old release"
    assert rig.fleet.cycles == [("unit-1", "0.2.0"), ("unit-1", "0.1.0")]
    assert [(u.name, u.phase) for u in done.status.units][:2] == [
        ("unit-1", "RolledBack"),
        ("unit-2", "Pending"),
    ]
    unit = await rig.store.get(ComputeUnit, "unit-1")
    assert (unit.status.phase, unit.status.os_version) == ("Running", "0.1.0")
    assert find_condition(done.status.conditions, "Healthy").reason == "UnitFailed"
    reasons = await rig.reasons("bad")
    assert "UnitFailed" in reasons and "RollingBack" in reasons and "RolledBack" in reasons


async def test_a_unit_that_misses_the_health_deadline_fails_the_gate(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    rig.fleet.hangs.add("0.2.0")
    await rig.start("hang", release=release, healthDeadlineSeconds=60)
    for _ in range(4):
        await rig.rollouts.reconcile("hang")
        await rig.fleet.step()
    assert (await rig.get("hang")).status.phase == "Progressing", "within the deadline: waits"
    done = await rig.drive("hang", advance=30.0)
    assert done.status.phase == "RolledBack"
    failed = [
        e.message
        for e in await rig.store.events(name="hang", kind="Rollout")
        if e.reason == "UnitFailed"
    ]
    assert failed and "not Running 0.2.0 within 60 s" in failed[0]


async def test_without_rollback_a_failure_stops_the_rollout(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    rig.fleet.broken.add("0.2.0")
    await rig.start("stop", release=release, rollbackOnFailure=False)
    done = await rig.drive("stop")
    assert done.status.phase == "Failed" and done.status.failed_units == ["unit-1"]
    assert rig.fleet.current() == "0.2.0"
    assert len(rig.fleet.cycles) == 1


async def test_an_unknown_release_stalls_until_it_exists(rig: Rig) -> None:
    await rig.start("early", release="racklet-os-0-3-0")
    await rig.rollouts.reconcile("early")
    await rig.rollouts.reconcile("early")
    rollout = await rig.get("early")
    stalled = find_condition(rollout.status.conditions, "Stalled")
    assert rollout.status.phase == "Pending" and stalled is not None
    assert stalled.reason == "ReleaseNotFound"
    assert (await rig.reasons("early")).count("ReleaseNotFound") == 1, "one event, not a flood"
    assert rig.fleet.cycles == []
    await rig.publish("0.3.0")
    done = await rig.drive("early")
    assert done.status.phase == "Complete"
    assert find_condition(done.status.conditions, "Stalled") is None


async def test_a_release_missing_from_the_repository_stalls(rig: Rig) -> None:
    tuf = rig.repo.publish(
        "stable",
        "racklet-os",
        "0.4.0",
        {"payload.bin": build_default_payload(8192, "0.4.0")},
        current=False,
    )
    obj = release_object(tuf)
    rig.repo.remove()
    TufRepository.create(rig.repo.base)  # a factory reset: the release is gone
    await rig.store.create(obj)
    await rig.start("ghost", release=obj.metadata.name)
    await rig.rollouts.reconcile("ghost")
    stalled = find_condition((await rig.get("ghost")).status.conditions, "Stalled")
    assert stalled is not None and stalled.reason == "ReleaseNotPublished"


async def test_an_overlapping_rollout_is_refused(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    await rig.start("first", release=release, selector={"tier": "edu"})
    await rig.rollouts.reconcile("first")
    await rig.start("second", release=release, selector={})
    await rig.start("lab-only", release=release, selector={"tier": "lab"})
    await rig.rollouts.reconcile("second")
    await rig.rollouts.reconcile("lab-only")
    second = await rig.get("second")
    assert second.status.phase == "Failed"
    accepted = find_condition(second.status.conditions, "Accepted")
    assert accepted is not None and accepted.reason == "OverlappingRollout"
    assert "first" in accepted.message
    assert (await rig.get("lab-only")).status.phase == "Progressing"


async def test_paused_rollouts_hold_and_resume(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    await rig.start("p", release=release, paused=True)
    for _ in range(3):
        await rig.rollouts.reconcile("p")
        await rig.fleet.step()
    assert (await rig.get("p")).status.phase == "Paused"
    assert rig.fleet.cycles == []
    rollout = await rig.get("p")
    rollout.spec.paused = False
    await rig.store.update(rollout)
    assert (await rig.drive("p")).status.phase == "Complete"


async def test_a_rollout_rolls_back_when_its_spec_asks(rig: Rig) -> None:
    release = await rig.publish("0.2.0")
    await rig.start("asked", release=release, selector={"tier": "edu"}, batchSize=2)
    await rig.rollouts.reconcile("asked")  # started: the canary is being power-cycled
    await rig.rollouts.reconcile("asked")
    rollout = await rig.get("asked")
    assert rollout.status.phase == "Progressing" and rig.fleet.current() == "0.2.0"
    rollout.spec.roll_back = True  # the dashboard's "Roll back" button
    await rig.store.update(rollout)
    done = await rig.drive("asked")
    assert done.status.phase == "RolledBack"
    assert rig.fleet.current() == "0.1.0", "the channel points back at the old release"
    assert "RollingBack" in await rig.reasons("asked")
    assert all(u.phase in ("Pending", "RolledBack", "Updated") for u in done.status.units)


async def test_release_status_reflects_the_repository(rig: Rig) -> None:
    name = await rig.publish("0.2.0")
    await rig.releases.reconcile(name)
    release = await rig.store.get(Release, name)
    assert release.status.phase == "Published"
    release.spec.targets[0].sha256 = "0" * 64
    await rig.store.update(release)
    await rig.releases.reconcile(name)
    release = await rig.store.get(Release, name)
    published = find_condition(release.status.conditions, "Published")
    assert release.status.phase == "Failed" and published is not None
    assert published.reason == "TargetsMismatch"


def test_registration_adds_both_kinds(tmp_path: Path) -> None:
    registry = Registry()
    register_release_reconcilers(registry, MemoryStore(), tmp_path / "boot")
    assert registry.get("Release") is not None and registry.get("Rollout") is not None

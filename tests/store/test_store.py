"""Both store backends keep the same rules: versions, generations, conflicts, event folding."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, Event, ObjectMeta, Rack, RackSpec
from racklet.store import (
    AlreadyExists,
    Conflict,
    EtcdStore,
    Expired,
    MemoryStore,
    NotFound,
    SqliteStore,
    Store,
)
from tests.store.etcd_server import EtcdServer


def unit(name: str, slot: int = 1, **labels: str) -> ComputeUnit:
    return ComputeUnit(
        metadata=ObjectMeta(name=name, labels=labels),
        spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
    )


def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if backend == "memory":
        return MemoryStore()
    if backend == "sqlite":
        return SqliteStore(tmp_path / "s.db")
    server: EtcdServer = request.getfixturevalue("etcd")
    return EtcdStore(server.url, prefix=f"/test-{uuid.uuid4().hex}/")


@pytest.fixture(params=["memory", "sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = open_store(request.param, tmp_path, request)
    yield backend
    await backend.close()


async def test_create_get_list_delete(store: Store) -> None:
    created = await store.create(unit("unit-2", 2, role="web"))
    await store.create(unit("unit-1", 1))
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    fetched = await store.get(ComputeUnit, "unit-2")
    assert fetched == created
    assert [u.metadata.name for u in await store.list(ComputeUnit)] == ["unit-1", "unit-2"]
    assert [u.metadata.name for u in await store.list(ComputeUnit, {"role": "web"})] == ["unit-2"]
    assert await store.list(Rack) == []
    await store.delete(ComputeUnit, "unit-2")
    with pytest.raises(NotFound, match='computeunit "unit-2" not found'):
        await store.get(ComputeUnit, "unit-2")
    with pytest.raises(NotFound):
        await store.delete(ComputeUnit, "unit-2")


async def test_every_read_and_write_result_is_the_callers_own_copy(store: Store) -> None:
    """Changing an object in hand changes nothing stored (the SQLite store serves reads from
    a cache of committed rows, so this is its promise too), until it is written back."""
    written = await store.create(unit("unit-1", role="web"))
    written.metadata.labels["role"] = "db"
    first = await store.get(ComputeUnit, "unit-1")
    first.spec.power = "Off"
    first.status.conditions.clear()
    first.status.phase = "Running"
    second = await store.get(ComputeUnit, "unit-1")
    assert second.spec.power == "On" and second.status.phase == "Unknown"
    assert second.metadata.labels == {"role": "web"}
    second.status.phase = "Off"
    updated = await store.update_status(second)
    second.status.phase = "Running"  # after the write: not stored
    assert (await store.get(ComputeUnit, "unit-1")).status.phase == "Off"
    assert updated.status.phase == "Off"


async def test_create_twice_is_refused(store: Store) -> None:
    await store.create(unit("unit-1"))
    with pytest.raises(AlreadyExists):
        await store.create(unit("unit-1"))


async def test_generation_moves_only_with_the_spec(store: Store) -> None:
    first = await store.create(unit("unit-1"))
    relabelled = first.model_copy(deep=True)
    relabelled.metadata.labels = {"a": "b"}
    second = await store.update(relabelled)
    assert second.metadata.generation == 1
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    second.spec.power = "Off"
    third = await store.update(second)
    assert third.metadata.generation == 2 and third.spec.power == "Off"
    assert third.metadata.uid == first.metadata.uid


async def test_stale_resource_version_conflicts(store: Store) -> None:
    first = await store.create(unit("unit-1"))
    fresh = first.model_copy(deep=True)
    fresh.spec.power = "Off"
    await store.update(fresh)
    first.spec.slot = 3
    with pytest.raises(Conflict):
        await store.update(first)
    first.status.phase = "Running"
    with pytest.raises(Conflict):
        await store.update_status(first)
    stored = await store.get(ComputeUnit, "unit-1")
    assert stored.spec.slot == 1 and stored.spec.power == "Off"
    assert stored.status.phase == "Unknown"


async def test_status_and_spec_are_written_separately(store: Store) -> None:
    created = await store.create(unit("unit-1"))
    created.status.phase = "Running"
    created.spec.power = "Off"  # ignored by update_status
    after = await store.update_status(created)
    assert after.status.phase == "Running" and after.spec.power == "On"
    assert after.metadata.generation == 1
    after.status.phase = "Off"  # ignored by update
    after.spec.power = "Off"
    again = await store.update(after)
    assert again.status.phase == "Running" and again.spec.power == "Off"


async def test_events_fold_repeats_and_filter(store: Store) -> None:
    for _ in range(3):
        await store.record_event(Event.about("ComputeUnit", "unit-1", "BootFailed", "bad hash"))
    await store.record_event(Event.about("ComputeUnit", "unit-2", "PowerOn", "on"))
    await store.record_event(Event.about("ComputeUnit", "unit-1", "BootFailed", "other"))
    events = await store.events("unit-1")
    assert [(e.reason, e.message, e.count) for e in events] == [
        ("BootFailed", "bad hash", 3),
        ("BootFailed", "other", 1),
    ]
    assert events[0].first_timestamp <= events[0].last_timestamp
    assert len(await store.events()) == 3
    assert [e.message for e in await store.events(limit=1)] == ["other"]


async def test_rack_round_trip(store: Store) -> None:
    rack = await store.create(
        Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=50))
    )
    rack.status.power_watts = 12.5
    await store.update_status(rack)
    assert (await store.get(Rack, "rack-1")).status.power_watts == 12.5


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = SqliteStore(path)
    created = await first.create(unit("unit-1"))
    await first.record_event(Event.about("ComputeUnit", "unit-1", "PowerOn"))
    await first.close()
    await first.close()  # idempotent
    second = SqliteStore(path)
    try:
        assert await second.get(ComputeUnit, "unit-1") == created
        assert [e.reason for e in await second.events("unit-1")] == ["PowerOn"]
        newer = await second.create(unit("unit-2"))
        assert int(newer.metadata.resource_version) > int(created.metadata.resource_version)
    finally:
        await second.close()


async def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(tmp_path / "store.db")
    try:
        first = await store.create(unit("unit-1"))

        def explode(*_: object) -> ComputeUnit:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr("racklet.store._rules.for_update", explode)
        first.spec.power = "Off"
        with pytest.raises(RuntimeError):
            await store.update(first)
        monkeypatch.undo()
        stored = await store.get(ComputeUnit, "unit-1")
        assert stored.spec.power == "On"
        assert stored.metadata.resource_version == first.metadata.resource_version
        # the version bump inside the failed transaction was rolled back
        later = await store.create(unit("unit-2"))
        assert int(later.metadata.resource_version) == int(first.metadata.resource_version) + 1
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite", "etcd"])
async def test_watch_replays_in_order_and_expires(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: Store
    if backend == "memory":
        store = MemoryStore(history=6)
    elif backend == "sqlite":
        store = SqliteStore(tmp_path / "w.db", history=6)
    else:
        store = open_store(backend, tmp_path, request)
    try:
        _, start = await store.list_with_revision(ComputeUnit)
        first = await store.create(unit("unit-1"))
        first.status.phase = "Running"
        await store.update_status(first)
        await store.create(Rack(metadata=ObjectMeta(name="r"), spec=RackSpec(psu_rated_watts=5)))
        gone = await store.delete(ComputeUnit, "unit-1")
        changes = store.watch(ComputeUnit, start)
        seen = [await anext(changes) for _ in range(4)]
        await changes.aclose()  # type: ignore[attr-defined]
        assert [c.type for c in seen] == ["BOOKMARK", "ADDED", "MODIFIED", "DELETED"]
        assert seen[3].revision == int(gone.metadata.resource_version)
        assert seen[2].object is not None and seen[2].object.status.phase == "Running"
        for slot in range(2, 10):  # more than the kept history
            latest = await store.create(unit(f"unit-{slot}", slot))
        if isinstance(store, EtcdStore):  # etcd keeps history until compacted
            await store.gateway.compact(int(latest.metadata.resource_version))
        with pytest.raises(Expired):
            await anext(store.watch(ComputeUnit, start))
    finally:
        await store.close()


async def test_watch_sees_changes_as_they_happen(store: Store) -> None:
    _, start = await store.list_with_revision(ComputeUnit)
    changes = store.watch(ComputeUnit, start)
    assert (await anext(changes)).type == "BOOKMARK"
    created = await store.create(unit("unit-1"))
    created.spec.power = "Off"
    updated = await store.update(created)
    seen = [await anext(changes), await anext(changes)]
    await changes.aclose()  # type: ignore[attr-defined]
    assert [(c.type, c.revision) for c in seen] == [
        ("ADDED", int(created.metadata.resource_version)),
        ("MODIFIED", int(updated.metadata.resource_version)),
    ]
    assert seen[1].object == updated

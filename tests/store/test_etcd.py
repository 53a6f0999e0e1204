"""etcd-only behaviour: outages are clear errors and recoverable; fenced writes; mod_revision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.store import EtcdStore, Fence, Fenced, Unavailable
from tests.store.etcd_server import EtcdServer, running_etcd


def unit(name: str) -> ComputeUnit:
    return ComputeUnit(
        metadata=ObjectMeta(name=name),
        spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://127.0.0.1:1")),
    )


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd this test may kill and restart."""
    yield from running_etcd(tmp_path / "etcd")


async def test_resource_version_is_the_mod_revision(etcd: EtcdServer) -> None:
    store = EtcdStore(etcd.url, prefix="/rv-test/")
    try:
        created = await store.create(unit("unit-1"))
        kv, _ = await store.gateway.get(b"/rv-test/objects/ComputeUnit/unit-1")
        assert kv is not None and str(kv.mod_revision) == created.metadata.resource_version
        assert b"resourceVersion" not in kv.value  # derived from etcd, never stored
    finally:
        await store.close()


async def test_etcd_outage_is_unavailable_then_recovers(own_etcd: EtcdServer) -> None:
    store = EtcdStore(own_etcd.url, timeout=2.0)
    try:
        acknowledged = [await store.create(unit(f"unit-{i}")) for i in range(20)]
        own_etcd.kill()  # SIGKILL: no clean shutdown
        with pytest.raises(Unavailable, match="unreachable"):
            await store.list(ComputeUnit)
        with pytest.raises(Unavailable):
            await store.create(unit("unit-lost"))
        own_etcd.start()  # same data dir and port: the same client reconnects
        stored = {u.metadata.name: u for u in await store.list(ComputeUnit)}
        assert [stored[u.metadata.name] for u in acknowledged] == acknowledged
        assert "unit-lost" not in stored
        await store.create(unit("unit-after"))
    finally:
        await store.close()


async def test_watch_ends_with_unavailable_when_etcd_dies(own_etcd: EtcdServer) -> None:
    store = EtcdStore(own_etcd.url, timeout=2.0)
    try:
        _, start = await store.list_with_revision(ComputeUnit)
        changes = store.watch(ComputeUnit, start)
        assert (await anext(changes)).type == "BOOKMARK"
        own_etcd.kill()
        with pytest.raises(Unavailable):
            await anext(changes)
    finally:
        await store.close()


async def test_fenced_writes_need_the_current_leader_key(etcd: EtcdServer) -> None:
    store = EtcdStore(etcd.url, prefix="/fence-test/")
    leader_key = b"/fence-test/leader"
    try:
        await store.gateway.txn(
            [], [{"request_put": {"key": "L2ZlbmNlLXRlc3QvbGVhZGVy", "value": "YQ=="}}]
        )
        kv, _ = await store.gateway.get(leader_key)
        assert kv is not None
        fence: Fence | None = Fence(leader_key, kv.mod_revision)
        fenced = store.fenced(lambda: fence)
        created = await fenced.create(unit("unit-1"))
        created.status.phase = "Running"
        created = await fenced.update_status(created)
        # another controller wins the key: the old token no longer holds
        await store.gateway.txn(
            [], [{"request_put": {"key": "L2ZlbmNlLXRlc3QvbGVhZGVy", "value": "Yg=="}}]
        )
        created.status.phase = "Off"
        with pytest.raises(Fenced):
            await fenced.update_status(created)
        with pytest.raises(Fenced):
            await fenced.create(unit("unit-2"))
        fence = None  # not leading at all: refused before asking etcd
        with pytest.raises(Fenced):
            await fenced.delete(ComputeUnit, "unit-1")
        assert (await store.get(ComputeUnit, "unit-1")).status.phase == "Running"
        await fenced.close()  # a view: the shared connection stays open
        assert (await store.list(ComputeUnit))[0].metadata.name == "unit-1"
    finally:
        await store.close()

"""High availability on a real etcd: one leader, takeover, and no action done twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from racklet.api import (
    POWER_CYCLE_ANNOTATION,
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
)
from racklet.controller import Controller, LeaderElection, Runtime
from racklet.store import Conflict, EtcdStore
from tests.controller.harness import client
from tests.controller.test_main import make_state_dir
from tests.redfish.fake_bmc import FakeBmc
from tests.store.etcd_server import EtcdServer

TTL = 2  # short leases keep the test quick; the controller process uses 5 s
DEADLINE = 30.0


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``predicate`` until it holds, failing after a generous bound (not a timing test)."""
    deadline = time.monotonic() + DEADLINE
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Node:
    """One in-process controller, built as ``python -m racklet.controller`` builds it."""

    name: str
    controller: Controller

    @property
    def election(self) -> LeaderElection:
        assert self.controller.election is not None
        return self.controller.election

    @property
    def runtime(self) -> Runtime:
        return self.controller.runtime

    async def saw(self, text: str) -> bool:
        return text in self.controller.metrics.render().decode()

    def freeze(self) -> None:
        """Stop refreshing the lease without resigning, as a paused or cut-off process
        would: the runtime keeps running and still believes it leads (a zombie)."""
        task = self.election._task.task
        assert task is not None
        task.cancel()

    async def close(self) -> None:
        await self.controller.stop()


@pytest.fixture
async def cluster(
    etcd: EtcdServer, tmp_path: Path
) -> AsyncIterator[tuple[EtcdStore, FakeBmc, list[Node]]]:
    prefix = f"/ha-{uuid.uuid4().hex}/"
    admin = EtcdStore(etcd.url, prefix=prefix)
    bmc = FakeBmc("unit-1")
    bmc.power_on("unit-1")
    await admin.create(
        ComputeUnit(
            metadata=ObjectMeta(name="unit-1"),
            spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://bmc.test")),
        )
    )
    # a resyncs often; b only on election (and, as both, on every write it watches)
    nodes = [
        _node("a", tmp_path / "a", etcd.url, prefix, bmc, 0.2),
        _node("b", tmp_path / "b", etcd.url, prefix, bmc, 3600),
    ]
    try:
        yield admin, bmc, nodes
    finally:
        for node in nodes:
            await node.close()
        await admin.close()


def _node(name: str, root: Path, url: str, prefix: str, bmc: FakeBmc, resync: float) -> Node:
    config = make_state_dir(root, units=1)
    config.rack.resync_seconds = resync
    controller = Controller(
        config,
        store=EtcdStore(url, prefix=prefix),
        bmcs={"unit-1": client(bmc)},
        identity=name,
        election_ttl=TTL,
        election_poll=0.2,
    )
    return Node(name, controller)


async def request_cycle(admin: EtcdStore, request: str) -> None:
    """Annotate, as an API client would: on a Conflict (a controller's status write came
    first) read again and retry."""
    while True:
        unit = await admin.get(ComputeUnit, "unit-1")
        unit.metadata.annotations[POWER_CYCLE_ANNOTATION] = request
        try:
            await admin.update(unit)
            return
        except Conflict:
            continue


async def test_one_leader_and_takeover_on_resign(
    cluster: tuple[EtcdStore, FakeBmc, list[Node]],
) -> None:
    _, _, (a, b) = cluster
    await a.controller.start()
    await until(lambda: _true(a.election.is_leader), "a to lead")
    await b.controller.start()
    await asyncio.sleep(0)  # b has campaigned at least once by the next check
    await until(lambda: _true(b.election.fence() is None), "b to follow")
    assert await a.election.leader() == "a"
    assert a.runtime.running and not b.runtime.running
    await a.election.stop()  # a clean stop revokes the lease: b takes over at once
    await until(lambda: _true(b.election.is_leader), "b to take over")
    assert await b.election.leader() == "b" and b.runtime.running
    assert not a.runtime.running


async def test_power_cycle_runs_exactly_once_across_a_failover(
    cluster: tuple[EtcdStore, FakeBmc, list[Node]],
) -> None:
    admin, bmc, (a, b) = cluster
    await a.controller.start()
    await until(lambda: _true(a.election.is_leader), "a to lead")
    await b.controller.start()

    await request_cycle(admin, "req-1")
    await until(lambda: _cycled(admin, "req-1"), "a to power-cycle for req-1")
    a.freeze()  # a stops renewing but its runtime keeps going, still believing it leads
    await until(lambda: _true(b.election.is_leader), "b to take over after a's lease expires")
    assert a.election.is_leader  # the zombie does not know yet: only the fence stops it

    # b's first resync on taking over saw req-1 already recorded: it did not cycle again
    await until(lambda: b.saw('racklet_controller_reconcile_total{result="success"}'), "b to run")

    # Both watch the store: the zombie tries to act on req-2 too and is fenced off; b acts.
    await request_cycle(admin, "req-2")
    await until(lambda: a.saw('reason="Fenced"'), "the zombie to be fenced off")
    await until(lambda: _cycled(admin, "req-2"), "b to power-cycle for req-2")
    assert bmc.resets == [("unit-1", "PowerCycle"), ("unit-1", "PowerCycle")]
    await until(lambda: _cycle_events(admin, 2), "b to record req-2's event")
    messages = [e.message for e in await admin.events("unit-1") if e.reason == "PowerCycle"]
    assert messages == ["power cycle req-1 requested", "power cycle req-2 requested"]


async def _cycle_events(admin: EtcdStore, count: int) -> bool:
    """The reconciler records the event after the reset (its intent is in status first)."""
    return len([e for e in await admin.events("unit-1") if e.reason == "PowerCycle"]) >= count


async def _cycled(admin: EtcdStore, request: str) -> bool:
    unit = await admin.get(ComputeUnit, "unit-1")
    return unit.status.last_power_cycle == request


async def _true(value: bool) -> bool:
    return value

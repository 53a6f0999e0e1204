"""The dashboard's last hour (:mod:`racklet.controller._ui_history`) and the rack actions
(:mod:`racklet.controller._rack_actions`) through the real API app, with bearer tokens."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rack, RackSpec
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.controller._ui_history import Ring, UnitHistory
from racklet.store import MemoryStore

ADMIN = "admin-t0ken-for-tests"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=40)))
    for slot in (1, 2):
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=f"unit-{slot}"),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://127.0.0.1:1")),
            )
        )
    yield store
    await store.close()


def test_a_ring_keeps_the_newest_rows_oldest_first_in_fixed_memory() -> None:
    ring = Ring(3, 2)
    size = ring.nbytes
    for t in range(5):
        ring.append([float(t), None if t == 3 else t * 1.5])
    assert ring.rows() == [[2.0, 3.0], [3.0, None], [4.0, 6.0]]
    assert ring.rows(since=2.0) == [[3.0, None], [4.0, 6.0]]
    assert ring.nbytes == size == 3 * 2 * 8


async def test_history_samples_each_unit_and_the_rack_for_one_hour(store: MemoryStore) -> None:
    clock = Clock()
    history = UnitHistory(store, "rack-1", interval=5.0, span=3600.0, clock=clock)
    unit = await store.get(ComputeUnit, "unit-1")
    for n in range(800):  # more than an hour of samples: the ring holds the last 720
        unit.status.power_watts = float(n)
        unit = await store.update_status(unit)
        await history.sample()
        clock.now += 5.0
    rows = history.units["unit-1"].rows()
    assert len(rows) == 720 and rows[-1][1] == 799.0 and rows[0][1] == 80.0
    assert rows[-1][0] - rows[0][0] == 5.0 * 719
    assert len(history.rack.rows()) == 720
    assert history.nbytes == 3 * 720 * 5 * 8 - 720 * 2 * 8  # two units' rings and the rack's
    await store.delete(ComputeUnit, "unit-2")
    await history.sample()
    assert set(history.units) == {"unit-1"}  # a deleted unit's ring goes


async def _client(store: MemoryStore, **options: object) -> httpx.AsyncClient:
    app = create_api_app(
        store, token=ADMIN, metrics=ControllerMetrics(), enqueue=lambda k, n: None,
        rack_name="rack-1", **options,  # type: ignore[arg-type]
    )  # fmt: skip
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="https://controller",
        headers={"Authorization": f"Bearer {ADMIN}"},
    )


async def test_the_page_gets_the_last_hour_of_the_units_it_asks_for(store: MemoryStore) -> None:
    clock = Clock()
    history = UnitHistory(store, "rack-1", clock=clock)
    for _ in range(3):
        await history.sample()
        clock.now += 5.0
    async with await _client(store, history=history) as client:
        got = (await client.get("/ui/v1/history", params={"units": "unit-1,unit-9"})).json()
        assert list(got["units"]) == ["unit-1"] and len(got["units"]["unit-1"]) == 3
        assert got["unitFields"][:2] == ["time", "powerWatts"] and got["rack"] == []
        with_rack = (await client.get("/ui/v1/history", params={"rack": "true"})).json()
        assert len(with_rack["rack"]) == 3
        many = ",".join(f"u{n}" for n in range(65))
        refused = await client.get("/ui/v1/history", params={"units": many})
        assert refused.status_code == 400 and "at most 64" in refused.json()["message"]


async def test_a_factory_reset_needs_the_rack_name_and_a_supervisor(
    store: MemoryStore, tmp_path: Path
) -> None:
    async with await _client(store, state_dir=tmp_path) as client:
        url = "/api/v1/racks/rack-1/factory-reset"
        no_name = await client.post(url, json={})
        assert no_name.status_code == 400 and '"confirm": "rack-1"' in no_name.json()["message"]
        wrong = await client.post("/api/v1/racks/rack-2/factory-reset", json={"confirm": "rack-2"})
        assert wrong.status_code == 404
        alone = await client.post(url, json={"confirm": "rack-1"})
        assert alone.status_code == 409 and "no racklet up" in alone.json()["message"]

        # a stand-in for racklet up: holds the state dir's lock, names its pid, takes SIGUSR1
        marker = tmp_path / "signalled"
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SUPERVISOR, str(tmp_path), str(marker),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).strip() == b"ready"
            accepted = await client.post(url, json={"confirm": "rack-1"})
            assert accepted.status_code == 202, accepted.text
            assert await asyncio.wait_for(holder.wait(), 10) == 0
            assert marker.read_text() == "reset"
        finally:
            if holder.returncode is None:
                holder.kill()
                await holder.wait()


_SUPERVISOR = """
import fcntl, os, signal, sys, time
from pathlib import Path
state, marker = Path(sys.argv[1]), Path(sys.argv[2])
lock = open(state / "up.lock", "a+")
fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
(state / "up.pid").write_text(str(os.getpid()))
signal.signal(signal.SIGUSR1, lambda *_: (marker.write_text("reset"), sys.exit(0)))
print("ready", flush=True)
time.sleep(30)
sys.exit(1)
"""


async def test_slots_without_a_control_endpoint_and_for_a_viewer(store: MemoryStore) -> None:
    async with await _client(store) as client:
        missing = await client.post("/api/v1/slots/1/pull")
        assert missing.status_code == 404 and "control endpoint" in missing.json()["message"]
        token = (await client.post("/api/v1/tokens", json={"role": "operator"})).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        refused = await client.post("/api/v1/slots/1/pull")
        assert refused.status_code == 403  # hot-swap is an admin's, even of an operator's unit

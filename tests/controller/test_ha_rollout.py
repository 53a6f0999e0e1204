"""A rollout across a leader failover: SIGKILL the leading controller mid-batch; the other
takes over within 15 s, finishes the rollout, and no unit is power-cycled twice.

Everything the controllers talk to is real and on loopback: etcd (Debian's ``etcd-server``),
two ``python -m racklet.controller`` processes sharing one TUF repository, and a Redfish
service over mutual-TLS-capable HTTPS (:class:`tests.redfish.fake_bmc.FakeBmc`, served by
:class:`racklet.net.AppServer`) that stands in for the units' BMCs. A small fleet model boots a
cycled unit into its channel's current release and sends its OS agent's heartbeats (mTLS,
the unit's own certificate) to both controllers, as units behind a shared controller address
would. What was done is counted from the BMC's own record of the resets it received, not
from the controllers' status.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from racklet import config as rack_config
from racklet.api import ComputeUnit, ObjectMeta, Rollout, RolloutSpec
from racklet.boot import TufRepository, build_default_payload
from racklet.cli._release import release_object
from racklet.controller.reconcilers._release import TufChannels
from racklet.controller.rollout import RolloutReconciler
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.store import EtcdStore, MemoryStore
from tests.controller.test_main import _free_ports, make_state_dir
from tests.redfish.fake_bmc import PASSWORD, USER, FakeBmc, serves_as_bmcs
from tests.release.fleet import FakeFleet
from tests.store.etcd_server import EtcdServer, running_etcd

UNITS = [f"unit-{i}" for i in range(1, 7)]
RIG_UNITS = [f"unit-{i}" for i in range(1, 6)]  # the in-process crash tests
HELD = {"unit-2", "unit-3"}  # batch 2: they stay booting until the leader has been killed
TAKEOVER_LIMIT = 15.0  # the issue's requirement (lease TTL 5 s + 1 s poll by design)
DEADLINE = 120.0  # generous bound for anything else: CI machines are slow


@dataclass
class Fleet:
    """The hardware side: BMCs that record resets, units that boot their channel's release."""

    bmc: FakeBmc
    repo: Path
    certs: Path
    machine_urls: list[str]
    ca: Path
    running: dict[str, str] = field(default_factory=dict)  # unit -> OS version it runs
    held: set[str] = field(default_factory=lambda: set(HELD))
    heartbeats_accepted: int = 0

    def cycles(self, name: str) -> int:
        return sum(1 for unit, kind in self.bmc.resets if unit == name and kind == "PowerCycle")

    async def _current(self) -> str:
        def read() -> str:
            releases = TufRepository.open(self.repo).list()
            return next(r.version for r in releases if r.channel == "stable" and r.current)

        return await asyncio.to_thread(read)

    async def run(self) -> None:
        """Each tick: a unit its BMC just powered on boots (unless held) the channel's
        current release; every running unit's agent heartbeats."""
        clients = {
            name: httpx.AsyncClient(
                verify=client_context(
                    self.ca, self.certs / f"{name}.crt", self.certs / f"{name}.key"
                ),
                timeout=2.0,
            )
            for name in UNITS
        }
        try:
            while True:
                for name, unit in self.bmc.units.items():
                    if unit.power_state != "On":
                        self.running.pop(name, None)
                    elif unit.last_state == "None" and name not in self.held:
                        self.running[name] = await self._current()
                        unit.last_state = "OSRunning"
                await asyncio.gather(
                    *(self._beat(clients[n], n, v) for n, v in list(self.running.items()))
                )
                await asyncio.sleep(0.2)
        finally:
            for client in clients.values():
                await client.aclose()

    async def _beat(self, client: httpx.AsyncClient, name: str, version: str) -> None:
        body = {"unit": name, "agentUrl": "https://127.0.0.1:1", "osVersion": version}
        for url in self.machine_urls:
            with contextlib.suppress(httpx.HTTPError):  # a killed controller does not answer
                answer = await client.post(url + "/machine/v1/heartbeat", json=body)
                self.heartbeats_accepted += answer.status_code == 200


@pytest.fixture
def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of its own: the controller processes use the default key prefix."""
    yield from running_etcd(tmp_path / "etcd")


def _state_dirs(tmp_path: Path, etcd: EtcdServer, bmc_url: str) -> list[rack_config.RackConfig]:
    """Two controllers of one rack: one CA, one TUF repository, their own ports."""
    first = make_state_dir(tmp_path / "one", units=len(UNITS))
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    configs = [first, rack_config.load(tmp_path / "two" / rack_config.CONFIG_NAME)]
    for config, root in zip(configs, (tmp_path / "one", tmp_path / "two"), strict=True):
        api, machine = _free_ports(2)
        config.state_dir = str(root)
        config.api.url = f"https://127.0.0.1:{api}"
        config.api.ca_bundle = str(root / "pki" / "ca.crt")
        config.controller.api_port, config.controller.machine_port = api, machine
        config.rack.store = "etcd://" + etcd.url.removeprefix("http://")
        config.rack.psu_rated_watts = 100.0
        for unit in config.units:
            unit.bmc.url, unit.bmc.username, unit.bmc.password = bmc_url, USER, PASSWORD
        (root / "boot").symlink_to(tmp_path / "boot")  # the shared TUF repository
        rack_config.save(config)
    return configs


def _controller(state_dir: Path) -> subprocess.Popen[bytes]:
    with (state_dir / "controller.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "racklet.controller", "--state-dir", str(state_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _until(what: str, check: object, limit: float = DEADLINE) -> float:
    """Poll ``check`` (an async predicate) until it holds; the seconds it took."""
    started = time.monotonic()
    while not await check():  # type: ignore[operator]
        if time.monotonic() - started > limit:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
async def rig(
    tmp_path: Path, etcd_server: EtcdServer
) -> AsyncIterator[
    tuple[Fleet, EtcdStore, list[rack_config.RackConfig], dict[int, subprocess.Popen[bytes]]]
]:
    repo = TufRepository.create(tmp_path / "boot")
    payload = build_default_payload(8192, "0.1.0")
    repo.publish("stable", "racklet-os", "0.1.0", {"payload.bin": payload})
    bmc = FakeBmc(*UNITS)
    for name in UNITS:
        bmc.power_on(name)
        bmc.units[name].last_state = "OSRunning"
    (bmc_port,) = _free_ports(1)
    configs = _state_dirs(tmp_path, etcd_server, f"https://127.0.0.1:{bmc_port}")
    ca = RackCA.load(tmp_path / "one" / "pki")
    certs = tmp_path / "units"
    certs.mkdir()
    for name in UNITS:
        ca.issue(name, role=f"unit/{name}", server=False, client=True).write(certs, name)
    stand_in = serves_as_bmcs(ca, UNITS, certs)
    server = AppServer(
        bmc.app,
        port=bmc_port,
        # Client certificates from the rack CA are a login, as on Racklet's BMCs.
        ssl_context=server_context(stand_in, stand_in, ca=tmp_path / "one" / "pki" / "ca.crt"),
        name="bmc",
    )
    await server.start()
    fleet = Fleet(
        bmc,
        tmp_path / "boot",
        certs,
        [f"https://127.0.0.1:{c.controller.machine_port}" for c in configs],
        tmp_path / "one" / "pki" / "ca.crt",
        running=dict.fromkeys(UNITS, "0.1.0"),
    )
    fleet_task = asyncio.create_task(fleet.run())
    admin = EtcdStore(etcd_server.url)
    processes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for root in (tmp_path / "one", tmp_path / "two"):
            process = _controller(root)
            processes[process.pid] = process
        yield fleet, admin, configs, processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            await asyncio.to_thread(process.wait)
        fleet_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fleet_task
        await admin.close()
        await server.stop()


def _logs(tmp_path: Path) -> str:
    """The controllers' last log lines, for a failure message."""
    return "\n".join(
        f"--- {name}:\n" + (tmp_path / name / "controller.log").read_text()[-3000:]
        for name in ("one", "two")
        if (tmp_path / name / "controller.log").exists()
    )


async def _leader_pid(admin: EtcdStore) -> int | None:
    kv, _ = await admin.gateway.get(admin.prefix + b"leader")
    return int(kv.value.decode().split("/")[1]) if kv is not None else None


async def test_a_rollout_survives_sigkill_of_the_leader_with_no_unit_cycled_twice(
    rig: tuple[Fleet, EtcdStore, list[rack_config.RackConfig], dict[int, subprocess.Popen[bytes]]],
    tmp_path: Path,
) -> None:
    try:
        await _failover_rollout(*rig, tmp_path)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(tmp_path)}") from None


async def _failover_rollout(
    fleet: Fleet,
    admin: EtcdStore,
    _configs: list[rack_config.RackConfig],
    processes: dict[int, subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:

    async def units_running() -> bool:
        units = await admin.list(ComputeUnit)
        return len(units) == len(UNITS) and all(u.status.phase == "Running" for u in units)

    await _until("a leader and every unit Running", units_running)
    leader = await _leader_pid(admin)
    assert leader in processes

    tuf = TufRepository.open(tmp_path / "boot").publish(
        "stable",
        "racklet-os",
        "0.2.0",
        {"payload.bin": build_default_payload(8192, "0.2.0")},
        current=False,
    )
    release = await admin.create(release_object(tuf))
    await admin.create(
        Rollout(
            metadata=ObjectMeta(name="to-020"),
            spec=RolloutSpec(
                release=release.metadata.name,
                canary=1,
                batch_size=2,
                max_unavailable=2,
                health_deadline_seconds=600,
            ),
        )
    )

    async def batch_two_started() -> bool:
        status = (await admin.get(Rollout, "to-020")).status
        updating = {u.name for u in status.units if u.phase == "Updating"}
        # ... and its power cycles done: a kill between a unit's recorded request and its
        # reset loses that cycle (at most once, by design; see docs/control-plane.md)
        cycled = all(fleet.cycles(name) == 1 for name in HELD)
        return status.current_batch == 2 and updating == HELD and cycled

    await _until("batch 2 to start", batch_two_started)
    processes[leader].kill()  # SIGKILL: no resignation, the lease must expire
    await asyncio.to_thread(processes[leader].wait)

    async def taken_over() -> bool:
        now = await _leader_pid(admin)
        return now is not None and now != leader

    took = await _until("the follower to take over", taken_over, limit=TAKEOVER_LIMIT)
    print(f"takeover after SIGKILL of the leader mid-batch: {took:.1f} s")
    fleet.held.clear()  # batch 2's units finish booting under the new leader

    async def complete() -> bool:
        return (await admin.get(Rollout, "to-020")).status.phase in ("Complete", "Failed")

    await _until("the rollout to finish", complete)
    done = await admin.get(Rollout, "to-020")
    assert done.status.phase == "Complete", done.status
    assert done.status.updated_units == UNITS
    assert fleet.running == dict.fromkeys(UNITS, "0.2.0")
    # the BMC's own record: one power cycle per unit and nothing else, batch by batch
    assert {kind for _, kind in fleet.bmc.resets} == {"PowerCycle"}
    assert {name: fleet.cycles(name) for name in UNITS} == dict.fromkeys(UNITS, 1)
    order = [name for name, _ in fleet.bmc.resets]
    assert order[0] == "unit-1" and set(order[1:3]) == HELD
    assert set(order[3:5]) == {"unit-4", "unit-5"} and order[5] == "unit-6"
    assert done.status.current_batch == 4
    # no batch announced twice (batch 2's event may be missing: the kill can land between the
    # status write that started it and the event write that follows)
    labels = [
        e.message.split(":")[0]
        for e in await admin.events(name="to-020", kind="Rollout")
        if e.reason == "BatchStarted"
        for _ in range(e.count)  # a repeat folds into its count
    ]
    assert len(labels) == len(set(labels)) and {"canary", "batch 3", "batch 4"} <= set(labels)
    survivor = next(p for pid, p in processes.items() if pid != leader)
    survivor.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(survivor.wait, 30) == 0


class _Killed(Exception):
    """The leader's process dies at this write: it and everything after it never happen."""


class _DyingStore(MemoryStore):
    """A leader's view of the store that dies at its ``die_at``-th write after arming."""

    def __init__(self, store: MemoryStore, die_at: int) -> None:
        self.__dict__ = store.__dict__  # the same objects: one store, two controllers' views
        self.writes, self.die_at = -1, die_at

    def _write(self) -> None:
        if self.writes >= 0:
            self.writes += 1
            if self.writes == self.die_at:
                raise _Killed

    async def update(self, obj: Any) -> Any:
        self._write()
        return await super().update(obj)

    async def update_status(self, obj: Any) -> Any:
        self._write()
        return await super().update_status(obj)


@pytest.mark.parametrize("die_at", [1, 2, 3, 4])
async def test_a_leader_dying_while_starting_a_batch_cycles_no_unit_twice(
    tmp_path: Path, die_at: int
) -> None:
    """The old leader dies at its 1st, 2nd, 3rd or 4th write of the pass that starts batch 2
    (the batch on record in the Rollout's status, unit-2's annotation, unit-3's, the final
    status), while unit-3, if it was asked, is still booting when the new leader looks.
    Every unit is still cycled exactly once and the rollout completes. (Before the batch was
    recorded first, dying after both annotations cycled unit-3 twice: the new leader, seeing
    it down, started batch 2 with unit-2 alone and put unit-3 in batch 3.)"""
    store = MemoryStore()
    repo = TufRepository.create(tmp_path / "boot")
    repo.publish("stable", "racklet-os", "0.1.0", {"payload.bin": build_default_payload(8192)})
    fleet = FakeFleet(store, repo)
    for slot, name in enumerate(RIG_UNITS, start=1):
        await fleet.add(name, slot, "0.1.0", {})
    payload = {"payload.bin": build_default_payload(8192, "0.2.0")}
    release = await store.create(
        release_object(repo.publish("stable", "racklet-os", "0.2.0", payload, current=False))
    )
    await store.create(
        Rollout(
            metadata=ObjectMeta(name="r"),
            spec=RolloutSpec(
                release=release.metadata.name, canary=1, batch_size=2, max_unavailable=2
            ),
        )
    )
    channels = TufChannels(tmp_path / "boot")
    dying = _DyingStore(store, die_at)
    old = RolloutReconciler(dying, channels)
    await old.reconcile("r")  # Pending -> Progressing
    await old.reconcile("r")  # canary: unit-1
    await fleet.step()
    dying.writes = 0  # armed: this pass judges the canary and starts batch 2
    with pytest.raises(_Killed):
        await old.reconcile("r")
    await fleet.step()  # whatever was asked of the units is carried out ...
    unit3 = await store.get(ComputeUnit, "unit-3")
    if unit3.status.last_power_cycle:  # ... but unit-3 has not finished booting yet
        unit3.status.phase = "Booting"
        await store.update_status(unit3)
    new = RolloutReconciler(store, channels)
    await new.reconcile("r")
    if unit3.status.last_power_cycle:
        unit3 = await store.get(ComputeUnit, "unit-3")
        unit3.status.phase = "Running"
        await store.update_status(unit3)
    for _ in range(20):  # bounded: a rollout of five units takes a handful of passes
        await new.reconcile("r")
        if (await store.get(Rollout, "r")).status.phase in ("Complete", "Failed", "RolledBack"):
            break
        await fleet.step()
    done = await store.get(Rollout, "r")
    assert done.status.phase == "Complete", done.status
    cycled = [name for name, _ in fleet.cycles]
    assert sorted(cycled) == RIG_UNITS, cycled

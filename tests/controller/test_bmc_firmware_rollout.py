"""A Rollout of a ``bmc-firmware`` Release over three real BMCs (HTTPS, A/B firmware slots,
restarts), driven by the one rollout engine: canary then batches, every BMC on the new
version committed; a canary whose self-test fails (its board's power monitor NACKs) falls
back by itself and the rollout rolls back, or stops when there is no release to go back to;
a BMC that does not answer counts against maxUnavailable; a leader dying while it starts a
batch pushes no BMC twice.

The TUF repository is created the way racks were before the ``bmc-firmware`` channel
existed; the controller's channels add it, and BMCs holding the old root accept its images.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rollout,
    RolloutSpec,
    find_condition,
)
from racklet.bmc import BmcHost, BmcSettings, TufImageVerifier, build_manifest, write_accounts
from racklet.boot import TufRepository
from racklet.cli._release import release_object
from racklet.controller.reconcilers._release import TufChannels
from racklet.controller.rollout import BmcFirmwareTarget, RolloutReconciler
from racklet.net import server_context
from racklet.pki import RackCA
from racklet.redfish import RedfishClient, RedfishClientError
from racklet.store import MemoryStore
from tests.bmc.conftest import ADMIN, FakeUnit, FastClock, eventually, free_port, make_board
from tests.controller.test_ha_rollout import _DyingStore, _Killed

UNITS = ("unit-1", "unit-2", "unit-3")
FACTORY = "0.1.0"
CHANNEL = "bmc-firmware"


@dataclass
class Rack:
    store: MemoryStore
    boot: Path
    hosts: dict[str, BmcHost]
    clients: dict[str, RedfishClient]
    rollouts: RolloutReconciler
    units: dict[str, FakeUnit]
    """Each BMC's board: a unit whose power monitor NACKs fails a firmware's self-test."""

    async def release(self, version: str) -> str:
        image = build_manifest(version, b"firmware " * 64)
        repo = TufRepository.open(self.boot)
        tuf = repo.publish(CHANNEL, "racklet-bmc", version, {"bmc.img": image}, current=False)
        return (await self.store.create(release_object(tuf))).metadata.name

    async def drive(self, name: str) -> Rollout:
        """Reconcile until the rollout ends (bounded), polling the real BMCs."""
        done: list[Rollout] = []

        async def ended() -> bool:
            await self.rollouts.reconcile(name)
            rollout = await self.store.get(Rollout, name)
            done[:] = [rollout]
            return rollout.status.phase in ("Complete", "Failed", "RolledBack")

        await eventually(ended, f"rollout {name} to end", limit=40.0)
        return done[0]

    async def versions(self) -> dict[str, tuple[str, bool]]:
        views = {n: await c.bmc_firmware() for n, c in self.clients.items()}
        return {n: (v.version, v.committed) for n, v in views.items()}

    async def events(self, name: str) -> list[str]:
        return [e.message for e in await self.store.events(name=name, kind="Rollout")]


@pytest.fixture
async def rack(tmp_path: Path) -> AsyncIterator[Rack]:
    boot = tmp_path / "boot"
    old = TufRepository.create(boot)  # a rack from before the bmc-firmware channel
    assert old.channels == ("stable",)
    ca = RackCA.create(tmp_path / "pki")
    store = MemoryStore()
    hosts: dict[str, BmcHost] = {}
    clients: dict[str, RedfishClient] = {}
    units: dict[str, FakeUnit] = {}
    for slot, name in enumerate(UNITS, start=1):
        state = tmp_path / "bmc" / name
        state.mkdir(parents=True)
        ca.issue(f"{name}-bmc", role=f"bmc/{name}").write(state, "server")
        trust = {"tufRoot": old.root_bytes().decode(), "channel": "stable"}
        (state / "trust.json").write_text(json.dumps(trust))
        write_accounts(state / "accounts.json", *ADMIN)
        units[name] = FakeUnit()
        board, *_ = make_board(units[name], FastClock())
        port = free_port()
        host = BmcHost(
            board,
            BmcSettings(
                unit=name,
                state_dir=state,
                firmware_version=FACTORY,
                image_verifier=TufImageVerifier(state),
                self_test_deadline=5.0,
            ),
            port=port,
            ssl_context=functools.partial(
                server_context, state / "server.crt", state / "server.key"
            ),
        )
        await host.start()
        hosts[name] = host
        url = f"https://127.0.0.1:{port}"
        clients[name] = RedfishClient(url, *ADMIN, ca_bundle=tmp_path / "pki" / "ca.crt")
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url=url)),
            )
        )
    channels = TufChannels(boot)
    assert await channels.current(CHANNEL) is None  # first use adds the channel
    rollouts = RolloutReconciler(
        store,
        channels,
        clock=time.time,
        poll_seconds=0.05,
        bmc_firmware=BmcFirmwareTarget(clients, boot),
    )
    try:
        yield Rack(store, boot, hosts, clients, rollouts, units)
    finally:
        for client in clients.values():
            await client.aclose()
        for host in hosts.values():
            await host.stop()


async def test_an_old_repository_gains_the_channel_once(rack: Rack) -> None:
    repo = TufRepository.open(rack.boot)
    assert repo.channels == ("stable", CHANNEL)
    timestamp = (repo.metadata_dir / "timestamp.json").read_bytes()
    assert repo.ensure_channel(CHANNEL) is False, "idempotent"
    assert (repo.metadata_dir / "timestamp.json").read_bytes() == timestamp


async def test_a_bmc_firmware_rollout_goes_canary_then_batches(rack: Rack) -> None:
    release = await rack.release("0.2.0")
    spec = RolloutSpec(release=release, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="bmc-020"), spec=spec))
    done = await rack.drive("bmc-020")
    assert done.status.phase == "Complete", done.status
    assert done.status.updated_units == list(UNITS)
    assert await rack.versions() == {name: ("0.2.0", True) for name in UNITS}
    assert all(host.restarts == 1 for host in rack.hosts.values())
    batches = [m for m in await rack.events("bmc-020") if "pushing" in m]
    assert batches == [
        "canary: pushing BMC firmware 0.2.0 to unit-1",
        "batch 2: pushing BMC firmware 0.2.0 to unit-2, unit-3",
    ]


async def _batches(rack: Rack, name: str) -> list[str]:
    return [m for m in await rack.events(name) if "pushing" in m]


async def test_a_canary_failing_its_self_test_stops_and_rolls_back(rack: Rack) -> None:
    good = await rack.release("0.2.0")
    spec = RolloutSpec(release=good, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="good"), spec=spec))
    assert (await rack.drive("good")).status.phase == "Complete"
    bad = await rack.release("0.3.0")
    rack.units["unit-1"].monitor_fails = True  # the canary's trial cannot read its hardware
    spec = RolloutSpec(release=bad, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="bad"), spec=spec))
    done = await rack.drive("bad")
    assert done.status.phase == "RolledBack", done.status
    phases = [(u.name, u.phase) for u in done.status.units]
    assert phases == [("unit-1", "RolledBack"), ("unit-2", "Pending"), ("unit-3", "Pending")]
    failed = [m for m in await rack.events("bad") if m.startswith("unit-1: fell back")]
    assert failed and "fell back to 0.2.0: self-test: the hardware" in failed[0], failed
    assert "channel bmc-firmware names racklet-bmc 0.2.0 again" in await rack.events("bad")
    # The canary fell back by itself; the others were never touched.
    assert await rack.versions() == {name: ("0.2.0", True) for name in UNITS}
    assert [h.restarts for h in rack.hosts.values()] == [3, 1, 1]


async def test_with_no_release_to_go_back_to_a_failure_stops_the_rollout(rack: Rack) -> None:
    """The channel named no release before: nothing to roll back to, so the rollout fails
    (the canary's BMC is on its committed factory firmware again by itself)."""
    release = await rack.release("0.3.0")
    rack.units["unit-1"].monitor_fails = True
    spec = RolloutSpec(release=release, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="first"), spec=spec))
    done = await rack.drive("first")
    assert done.status.phase == "Failed", done.status
    assert done.status.failed_units == ["unit-1"]
    progressing = find_condition(done.status.conditions, "Progressing")
    assert progressing is not None and "no release to roll back to" in progressing.message
    assert "RollingBack" not in [e.reason for e in await rack.store.events(name="first")]
    assert await rack.versions() == {name: (FACTORY, True) for name in UNITS}


async def test_a_bmc_that_does_not_answer_counts_against_max_unavailable(rack: Rack) -> None:
    await rack.hosts["unit-3"].stop()
    release = await rack.release("0.2.0")
    spec = RolloutSpec(release=release, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="r"), spec=spec))

    async def second_batch() -> bool:
        await rack.rollouts.reconcile("r")
        return (await rack.store.get(Rollout, "r")).status.current_batch >= 2

    await eventually(second_batch, "batch 2 to start", limit=40.0)
    # unit-3's BMC is down: of maxUnavailable 2, one is left for batch 2
    assert await _batches(rack, "r") == [
        "canary: pushing BMC firmware 0.2.0 to unit-1",
        "batch 2: pushing BMC firmware 0.2.0 to unit-2",
    ]
    await rack.hosts["unit-3"].start()
    done = await rack.drive("r")
    assert done.status.phase == "Complete", done.status
    assert (await _batches(rack, "r"))[2:] == ["batch 3: pushing BMC firmware 0.2.0 to unit-3"]
    assert await rack.versions() == {name: ("0.2.0", True) for name in UNITS}


@pytest.mark.parametrize("die_at", [1, 2])
async def test_a_leader_dying_while_starting_a_batch_pushes_no_bmc_twice(
    rack: Rack, die_at: int
) -> None:
    """The old leader dies at its 1st or 2nd status write of the pass that starts batch 2
    (the batch on record, then the status after the pushes). The new leader finishes the
    rollout and every BMC took the firmware once: one restart each, by the BMCs' own count.
    (Before the batch was recorded first, dying at the only write, after the pushes, made
    the new leader push batch 2 again.)"""
    release = await rack.release("0.2.0")
    spec = RolloutSpec(release=release, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="r"), spec=spec))
    dying = _DyingStore(rack.store, die_at)
    old = RolloutReconciler(
        dying,
        TufChannels(rack.boot),
        poll_seconds=0.05,
        bmc_firmware=BmcFirmwareTarget(rack.clients, rack.boot),
    )

    await old.reconcile("r")  # Pending -> Progressing
    await old.reconcile("r")  # the canary: unit-1 pushed

    async def canary_committed() -> bool:
        try:
            view = await rack.clients["unit-1"].bmc_firmware()
        except RedfishClientError:
            return False  # restarting into the new firmware
        return (view.version, view.committed) == ("0.2.0", True)

    await eventually(canary_committed, "the canary to commit", limit=40.0)
    dying.writes = 0  # armed: the next pass judges the canary and starts batch 2
    with pytest.raises(_Killed):
        await old.reconcile("r")
    done = await rack.drive("r")  # the new leader: its own reconciler and target
    assert done.status.phase == "Complete", done.status

    async def answering() -> bool:  # a BMC pushed twice would be restarting again
        try:
            return await rack.versions() == {name: ("0.2.0", True) for name in UNITS}
        except RedfishClientError:
            return False

    await eventually(answering, "every BMC to answer on 0.2.0 committed")
    assert [h.restarts for h in rack.hosts.values()] == [1, 1, 1]

"""A Rollout of a ``bmc-firmware`` Release over three real BMCs (HTTPS, A/B firmware slots,
restarts): canary then batches, every BMC on the new version committed; a build that fails
its self-test stops at the canary, which falls back by itself, and the rollout rolls back.

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

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rollout, RolloutSpec
from racklet.bmc import BmcHost, BmcSettings, TufImageVerifier, build_manifest, write_accounts
from racklet.boot import TufRepository
from racklet.cli._release import release_object
from racklet.controller.reconcilers._bmc_firmware import BmcFirmwareRollouts
from racklet.controller.reconcilers._release import TufChannels
from racklet.controller.reconcilers._rollout import RolloutReconciler
from racklet.net import server_context
from racklet.pki import RackCA
from racklet.redfish import RedfishClient
from racklet.store import MemoryStore
from tests.bmc.conftest import ADMIN, FakeUnit, FastClock, eventually, free_port, make_board

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

    async def release(self, version: str, *, self_test: str = "pass") -> str:
        image = build_manifest(version, b"firmware " * 64, self_test=self_test)
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
    for slot, name in enumerate(UNITS, start=1):
        state = tmp_path / "bmc" / name
        state.mkdir(parents=True)
        ca.issue(f"{name}-bmc", role=f"bmc/{name}").write(state, "server")
        trust = {"tufRoot": old.root_bytes().decode(), "channel": "stable"}
        (state / "trust.json").write_text(json.dumps(trust))
        write_accounts(state / "accounts.json", *ADMIN)
        board, *_ = make_board(FakeUnit(), FastClock())
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
        bmc_firmware=BmcFirmwareRollouts(clients, boot),
    )
    try:
        yield Rack(store, boot, hosts, clients, rollouts)
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


async def test_a_failing_build_stops_at_the_canary_and_rolls_back(rack: Rack) -> None:
    release = await rack.release("0.3.0", self_test="fail")
    spec = RolloutSpec(release=release, canary=1, batch_size=2, max_unavailable=2)
    await rack.store.create(Rollout(metadata=ObjectMeta(name="bad"), spec=spec))
    done = await rack.drive("bad")
    assert done.status.phase == "RolledBack", done.status
    phases = [(u.name, u.phase) for u in done.status.units]
    assert phases == [("unit-1", "RolledBack"), ("unit-2", "Pending"), ("unit-3", "Pending")]
    failed = [m for m in await rack.events("bad") if m.startswith("unit-1: fell back")]
    assert failed and "fell back to 0.1.0: self-test" in failed[0], failed
    # The canary fell back by itself; the others were never touched.
    assert await rack.versions() == {name: (FACTORY, True) for name in UNITS}
    assert [h.restarts for h in rack.hosts.values()] == [2, 0, 0]

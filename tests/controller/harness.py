"""A controller wired to an in-memory store and the fake Redfish service, with a fake clock."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rack, RackSpec
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry
from racklet.controller._heartbeats import HeartbeatBody
from racklet.net import client_context, server_context
from racklet.pki import RackCA
from racklet.redfish import RedfishClient
from racklet.store import MemoryStore
from tests.redfish.fake_bmc import PASSWORD, USER, FakeBmc


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    store: MemoryStore
    bmc: FakeBmc
    clock: FakeClock
    heartbeats: HeartbeatRegistry
    reconciler: ComputeUnitReconciler
    clients: dict[str, RedfishClient] = field(default_factory=dict)

    async def reconcile(self, *names: str) -> None:
        await asyncio.gather(*(self.reconciler.reconcile(n) for n in names))

    async def unit(self, name: str) -> ComputeUnit:
        return await self.store.get(ComputeUnit, name)

    def heartbeat(self, name: str, cpu_load: float | None = None) -> None:
        self.heartbeats.record(
            HeartbeatBody(
                unit=name,
                agentUrl="https://127.0.0.1:9999",
                osVersion="racklet-os 1.0",
                cpuLoad=cpu_load,
            )
        )

    def boot_step(self) -> list[str]:
        """The boards' "physics", one step: each powered unit goes from power-on to booting
        (4 W) to running (2 W, heartbeating). Returns the units that just started running."""
        started = []
        for name, unit in self.bmc.units.items():
            if unit.power_state != "On":
                continue
            if unit.last_state == "None":
                unit.last_state, unit.power_watts = "OSBootStarted", 4.0
            elif unit.last_state == "OSBootStarted":
                unit.last_state, unit.power_watts = "OSRunning", 2.0
                self.heartbeat(name)
                started.append(name)
        return started

    def worst_case_draw(self) -> float:
        """What the rack could draw now, by the rule the controller promises to keep: units
        still booting at their ceiling, running ones at their measured watts."""
        return sum(
            (unit.max_power_watts if unit.last_state != "OSRunning" else unit.power_watts)
            for unit in self.bmc.units.values()
            if unit.power_state == "On"
        )

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await self.store.close()


def client(bmc: FakeBmc) -> RedfishClient:
    return RedfishClient(
        "https://bmc.test",
        USER,
        PASSWORD,
        ca_bundle=Path("/unused"),
        transport=httpx.ASGITransport(app=bmc.app),
    )


async def make(names: list[str], rated: float = 100.0, **options: float) -> Harness:
    store = MemoryStore()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=rated)))
    for slot, name in enumerate(names, start=1):
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url="https://bmc.test")),
            )
        )
    bmc = FakeBmc(*names)
    clock = FakeClock()
    heartbeats = HeartbeatRegistry(clock=clock)
    clients = {name: client(bmc) for name in names}
    reconciler = ComputeUnitReconciler(
        store, clients, heartbeats, rack_name="rack-1", clock=clock, **options
    )
    return Harness(store, bmc, clock, heartbeats, reconciler, clients)


def machine_listener_tls(
    tmp_path: Path, unit: str = "unit-1"
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A fresh rack CA's TLS for the machine listener: the controller's server context (client
    certificates required) and ``unit``'s client context (its own identity, ``unit/<unit>``)."""
    ca = RackCA.create(tmp_path / "pki")
    ca_path = tmp_path / "pki" / "ca.crt"
    key, crt = ca.issue("racklet-controller", role="controller").write(tmp_path, "server")
    unit_key, unit_crt = ca.issue(unit, role=f"unit/{unit}", client=True).write(tmp_path, unit)
    server = server_context(crt, key, ca=ca_path, require_client_cert=True)
    return server, client_context(ca_path, unit_crt, unit_key)

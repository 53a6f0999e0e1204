"""A unit powered off or on at its BMC by someone else: recorded, then reverted or left.

Real BMC services on a twin rack (``tests.rmc.conftest``); the controller's reconciler talks
to them as it does in a rack, with its own client certificate (``spiffe://rack-1/controller``),
and an operator works at unit-1's BMC directly with sushy and the BMC's admin password.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sushy

from racklet.api import (
    BmcRef,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry
from racklet.pki import RackCA
from racklet.redfish import RedfishClient
from racklet.store import MemoryStore
from tests.rmc.conftest import BMC_PASSWORD, running_rack

UNIT = "unit-1"
SYSTEM = f"/redfish/v1/Systems/{UNIT}"
CONTROLLER = "spiffe://rack-1/controller"


@dataclass
class Bench:
    store: MemoryStore
    reconciler: ComputeUnitReconciler
    bmc_url: str
    ca: Path
    client: RedfishClient

    async def reconcile(self) -> None:
        for _ in range(20):  # follow the look-again of a reset in progress
            if await self.reconciler.reconcile(UNIT) is None:
                return
            await asyncio.sleep(0.2)

    async def unit(self) -> ComputeUnit:
        return await self.store.get(ComputeUnit, UNIT)

    async def reasons(self) -> list[str]:
        return [e.reason for e in await self.store.events(UNIT)]

    async def out_of_band(self) -> list[str]:
        return [
            e.message for e in await self.store.events(UNIT) if e.reason == "OutOfBandPowerChange"
        ]

    async def operator_resets(self, reset_type: str) -> None:
        """What an operator does with sushy, at the unit's BMC, with the admin password."""

        def work() -> None:
            root = sushy.Sushy(
                self.bmc_url + "/redfish/v1",
                username="admin",
                password=BMC_PASSWORD,
                verify=str(self.ca),
            )
            root.get_system(SYSTEM).reset_system(reset_type)
            root.__del__()  # log out now, while the BMC listens

        await asyncio.to_thread(work)

    async def power_state(self) -> str | None:
        return (await self.client.system(UNIT)).power_state


async def _bench(tmp_path: Path, policy: str) -> AsyncIterator[Bench]:
    async with running_rack(tmp_path / "rack") as rack:
        ca = RackCA.load(rack.ca.parent)
        cert_dir = tmp_path / "controller"
        cert_dir.mkdir()
        key, crt = ca.issue("controller", role="controller", server=False, client=True).write(
            cert_dir, "client"
        )
        client = RedfishClient(
            rack.bmc_urls[UNIT],
            "controller",
            None,
            ca_bundle=rack.ca,
            client_cert=(crt, key),
            expect=f"spiffe://rack-1/bmc/{UNIT}",
        )
        store = MemoryStore()
        await store.create(
            Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=100.0))
        )
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=UNIT),
                spec=ComputeUnitSpec.model_validate(
                    {"slot": 1, "bmc": BmcRef(url=rack.bmc_urls[UNIT]), "powerPolicy": policy}
                ),
            )
        )
        reconciler = ComputeUnitReconciler(
            store,
            {UNIT: client},
            HeartbeatRegistry(),
            rack_name="rack-1",
            action_cooldown=0.0,
            identities=frozenset({CONTROLLER}),
        )
        try:
            yield Bench(store, reconciler, rack.bmc_urls[UNIT], rack.ca, client)
        finally:
            await client.aclose()


@pytest.fixture
async def enforcing(tmp_path: Path) -> AsyncIterator[Bench]:
    async for bench in _bench(tmp_path, "Enforce"):
        yield bench


@pytest.fixture
async def observing(tmp_path: Path) -> AsyncIterator[Bench]:
    async for bench in _bench(tmp_path, "Observe"):
        yield bench


async def test_enforce_records_who_switched_the_unit_off_and_powers_it_on_again(
    enforcing: Bench,
) -> None:
    h = enforcing
    await h.reconcile()
    assert await h.power_state() == "On"
    assert "PowerOn" in await h.reasons()
    await h.reconcile()
    assert await h.out_of_band() == [], "the controller's own power-on is not out of band"

    await h.operator_resets(sushy.RESET_FORCE_OFF)
    assert await h.power_state() == "Off"
    await h.reconcile()

    (message,) = await h.out_of_band()
    assert message.startswith("powered off at its BMC by admin (ForceOff)")
    assert "reverting to spec.power On" in message
    assert await h.power_state() == "On", "Enforce reverts it"
    assert (await h.unit()).status.power_state == "On"
    await h.reconcile()
    assert len(await h.out_of_band()) == 1, "its own revert is not out of band"


async def test_observe_leaves_the_operators_change_until_the_spec_changes(
    observing: Bench,
) -> None:
    h = observing
    await h.reconcile()
    assert await h.power_state() == "On"

    await h.operator_resets(sushy.RESET_FORCE_OFF)
    for _ in range(3):
        await h.reconcile()
    assert await h.power_state() == "Off", "Observe does not fight the operator"
    unit = await h.unit()
    assert unit.status.power_state == "Off"
    held = find_condition(unit.status.conditions, "PowerEnforced")
    assert held is not None and (held.status, held.reason) == ("False", "OutOfBandPowerChange")
    (message,) = await h.out_of_band()
    assert "powered off at its BMC by admin (ForceOff)" in message
    assert "powerPolicy Observe" in message

    await h.operator_resets(sushy.RESET_ON)  # the operator is done: back on, by hand
    await h.reconcile()
    assert await h.power_state() == "On"
    assert "powered on at its BMC by admin (On)" in (await h.out_of_band())[-1]

    unit = await h.unit()  # the user now asks for Off: a new generation, enforced again
    unit.spec.power = "Off"
    await h.store.update(unit)
    await h.reconcile()
    unit = await h.unit()
    assert find_condition(unit.status.conditions, "PowerEnforced") is None
    assert "Shutdown" in await h.reasons()
    assert len(await h.out_of_band()) == 2, "the controller's shutdown is not out of band"

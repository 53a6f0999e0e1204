"""The unit reconciler sets the locate LED and the boot override the spec asks for, on a real
BMC service (:class:`racklet.bmc.BmcService` over TLS, on the BMC tests' fake board)."""

from __future__ import annotations

from pathlib import Path

from racklet.api import (
    BmcRef,
    BootSourceOverride,
    ComputeUnit,
    ComputeUnitSpec,
    ObjectMeta,
    Rack,
    RackSpec,
    find_condition,
)
from racklet.controller import ComputeUnitReconciler, HeartbeatRegistry
from racklet.hw import BootSource
from racklet.redfish import RedfishClient
from racklet.store import MemoryStore
from tests.bmc.conftest import ADMIN, UNIT, FastClock, running_bench


async def test_the_boot_override_goes_to_the_bmc_and_a_refusal_is_a_condition(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=40)))
    async with running_bench(tmp_path, FastClock(speed=50.0)) as bmc:
        spec = ComputeUnitSpec(slot=1, bmc=BmcRef(url=bmc.url))
        await store.create(ComputeUnit(metadata=ObjectMeta(name=UNIT), spec=spec))
        client = RedfishClient(bmc.url, *ADMIN, ca_bundle=bmc.ca)
        phases: list[tuple[str, str]] = []
        reconciler = ComputeUnitReconciler(
            store,
            {UNIT: client},
            HeartbeatRegistry(),
            rack_name="rack-1",
            on_phase=lambda name, phase: phases.append((name, phase)),
        )
        try:
            await reconciler.reconcile(UNIT)
            unit = await store.get(ComputeUnit, UNIT)
            assert phases == [(UNIT, unit.status.phase)]  # told once, when the phase changed
            assert unit.status.boot_override == BootSourceOverride(
                target="None", enabled="Disabled"
            )
            unit.spec.boot_override = BootSourceOverride(target="UefiHttp", enabled="Continuous")
            await store.update(unit)
            await reconciler.reconcile(UNIT)
            assert bmc.boot_select.get() == BootSource.NETWORK  # on the board itself
            unit = await store.get(ComputeUnit, UNIT)
            assert unit.status.boot_override == unit.spec.boot_override  # read back
            await reconciler.reconcile(UNIT)  # nothing left to do: no second PATCH
            assert len(phases) == 1
            reasons = [e.reason for e in await store.events(UNIT)]
            assert reasons.count("SettingsApplied") == 1

            unit = await store.get(ComputeUnit, UNIT)
            unit.spec.boot_override = BootSourceOverride(target="Hdd", enabled="Once")
            await store.update(unit)  # a Redfish target this board has not: refused, by name
            for _ in range(2):
                await reconciler.reconcile(UNIT)
            unit = await store.get(ComputeUnit, UNIT)
            settings = find_condition(unit.status.conditions, "Settings")
            assert settings is not None and settings.status == "False"
            assert settings.reason == "BmcRefused" and "Hdd" in settings.message
            reasons = [e.reason for e in await store.events(UNIT)]
            assert reasons.count("SettingsRefused") == 1  # not retried at this generation
            assert bmc.boot_select.get() == BootSource.NETWORK  # the last good one holds
        finally:
            await client.aclose()
            await store.close()

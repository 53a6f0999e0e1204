"""Power cuts at random instants of A/B updates never brick a unit (hypothesis).

Each example starts from a unit with 0.1.0 committed in slot A while the channel offers
0.2.0, and powers it on a few times; some power-ons lose power at a random event (a console
line, a BMC request just applied, a download chunk), some trials pass their health check and
some do not. After every power-on: the committed slot still verifies against the BMC's
record, every boot ran the committed or the trial slot with 0.1.0 or 0.2.0, and the BMC's
rollback counter never went down. A last uncut power-on always boots.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racklet.boot import BootedPayload, BootLimits, build_default_payload, version_key
from racklet.boot._slots import verify_slot
from racklet.boot.client import bootstrap
from racklet.log import get_logger
from racklet.node._health import TrialCheck
from tests.ab.rig import CutBmc, CutHost, DiskFetcher, PowerCut
from tests.boot.fakes import BootRig

VERSIONS = {"0.1.0", "0.2.0"}
LIMITS = BootLimits(health_deadline_seconds=600.0)


@dataclass
class Base:
    rig: BootRig
    storage: Path
    bmc_dir: Path
    work: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    root = tmp_path_factory.mktemp("ab-power-cut")
    rig = BootRig(root / "rack", payload_size=16384)
    storage, bmc_dir = root / "unit", root / "bmc"

    async def first_boot() -> None:
        cut = PowerCut(asyncio.get_running_loop())
        bmc = CutBmc(rig.trust(), rig.identity(), bmc_dir)
        host = CutHost(storage, bmc, cut)
        booted = await bootstrap(host, transport=DiskFetcher(rig.repo), limits=LIMITS)
        assert (booted.manifest.version, booted.slot) == ("0.1.0", "A")
        await host.fake_link.close()

    asyncio.run(first_boot())
    rig.tuf.publish(
        "stable", "racklet-os", "0.2.0", {"payload.bin": build_default_payload(16384, "0.2.0")}
    )
    yield Base(rig, storage, bmc_dir, root / "examples")


async def _power_on(
    host: CutHost, bmc: CutBmc, fetcher: DiskFetcher, healthy: bool
) -> BootedPayload:
    booted = await bootstrap(host, transport=fetcher, limits=LIMITS)
    record = bmc.ab.load()
    assert booted.manifest.version in VERSIONS
    if booted.trial is None:
        assert record.committed is not None and record.committed.slot == booted.slot
        assert record.committed.version == booted.manifest.version
    else:
        assert record.trying is not None and record.trying.slot == booted.slot
        assert not record.tryboot  # the flag was consumed by this very boot
        check = TrialCheck(host, booted, booted.trial, host.clock.monotonic())
        await check.check(healthy, get_logger("test"))
    return booted


async def _scenario(base: Base, power_ons: list[tuple[int | None, bool]]) -> None:
    base.work.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=base.work))
    shutil.copytree(base.storage, work / "unit")
    shutil.copytree(base.bmc_dir, work / "bmc")
    loop = asyncio.get_running_loop()
    cut = PowerCut(loop)
    bmc = CutBmc(base.rig.trust(), base.rig.identity(), work / "bmc")
    bmc.cut = cut
    host = CutHost(work / "unit", bmc, cut)
    fetcher = DiskFetcher(base.rig.repo, cut)
    floor = version_key("0.1.0")
    try:
        for cut_at, healthy in [*power_ons, (None, True), (None, True)]:
            executor = ThreadPoolExecutor(max_workers=2)
            loop.set_default_executor(executor)
            cut.events, cut.at, cut.fired = 0, cut_at, False
            task = asyncio.create_task(_power_on(host, bmc, fetcher, healthy))
            cut.task = task
            try:
                await task
            except asyncio.CancelledError:
                assert cut.fired
                host.fake_link.sever()
            executor.shutdown(wait=True)  # a cut CPU runs no further: let its threads end
            if cut_at is None:
                assert not task.cancelled()  # an uncut power-on always boots: never bricked
            record = bmc.ab.load()
            assert record.committed is not None
            assert record.committed.version in VERSIONS
            verify_slot(host.storage, record.committed.slot, record.committed.sha256)
            assert record.rollback_version is not None
            assert version_key(record.rollback_version) >= floor  # the counter never drops
            floor = version_key(record.rollback_version)
        # the last uncut, healthy power-ons leave 0.2.0 committed unless a trial of it failed
        record = bmc.ab.load()
        assert record.committed is not None
        if record.rejected_version is None:
            assert record.committed.version == "0.2.0"
    finally:
        await host.fake_link.close()
        shutil.rmtree(work, ignore_errors=True)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    power_ons=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(1, 24)), st.booleans()), min_size=1, max_size=4
    )
)
def test_power_cuts_never_brick_a_unit(
    base: Base, power_ons: list[tuple[int | None, bool]]
) -> None:
    asyncio.run(_scenario(base, power_ons))

"""An etcd-backed rack issues unit identities: the controller process (built the way
``python -m racklet.controller`` builds it) against a real etcd and a real BMC service.

The bug this pins: the certificate loop asked "am I the leader?" before the first campaign had
answered, concluded "no", and slept a whole interval (60 s), so units on ``racklet up --store
etcd://…`` waited with "no identity yet". Leader-only work now starts when elected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from racklet import config as rack_config
from racklet.api import ComputeUnit, find_condition
from racklet.controller._main import run
from racklet.redfish import RedfishClient
from racklet.store import EtcdStore, NotFound
from tests.bmc.conftest import ADMIN, UNIT
from tests.bmc.resources.certificates.test_certificates import running
from tests.controller.test_main import make_state_dir
from tests.store.etcd_server import EtcdServer, running_etcd

IDENTITY = f"/redfish/v1/Systems/{UNIT}/Certificates/1"
DEADLINE = 30.0
"""Generous for a loaded CI machine, and well under the 60 s round the bug waited for."""


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of this test's own: the controller uses the default key prefix."""
    yield from running_etcd(tmp_path / "etcd")


async def test_units_get_their_identity_on_an_etcd_backed_rack(
    tmp_path: Path, own_etcd: EtcdServer
) -> None:
    async with running(tmp_path, identity=False) as bench:
        config = make_state_dir(tmp_path, units=1, ca=bench.ca)
        config.rack.store = "etcd://" + own_etcd.url.removeprefix("http://")
        config.units[0].bmc = rack_config.BmcConfig(
            url=bench.url, username=ADMIN[0], password=ADMIN[1]
        )
        rack_config.save(config)
        client = RedfishClient(bench.url, *ADMIN, ca_bundle=bench.ca_path)
        store = EtcdStore(own_etcd.url)
        stop = asyncio.Event()
        controller = asyncio.create_task(run(config, stop))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while not await _identity_recorded(store):
                assert not controller.done(), controller
                assert loop.time() < deadline, "the unit's identity was never issued"
                await asyncio.sleep(0.1)
            assert await client.certificate(IDENTITY) is not None
            events = [e.reason for e in await store.events(UNIT, kind="ComputeUnit")]
        finally:
            stop.set()
            await controller
            await client.aclose()
            await store.close()
        assert "IdentityIssued" in events


async def _identity_recorded(store: EtcdStore) -> bool:
    """The unit's IdentityCertificate condition is True (set once the BMC holds the cert)."""
    try:
        unit = await store.get(ComputeUnit, UNIT)
    except NotFound:
        return False
    condition = find_condition(unit.status.conditions, "IdentityCertificate")
    return condition is not None and condition.status == "True"

"""The RMC as ``racklet up`` would start it: from a rack's config and state dir."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx

from racklet.config import (
    ApiConfig,
    BmcConfig,
    ControllerConfig,
    RackConfig,
    RackSettings,
    UnitConfig,
)
from racklet.net import client_context
from racklet.pki import RackCA, write_crl
from racklet.rmc import RMC_USER, prepare_rmc, rmc_dir, serve_rmc
from tests.rmc.conftest import BMC_PASSWORD, Rack, free_port


def _config(state_dir: Path, rack: Rack) -> RackConfig:
    return RackConfig(
        stateDir=str(state_dir),
        rack=RackSettings(units=len(rack.bmc_urls)),
        api=ApiConfig(url="https://127.0.0.1:1", caBundle=str(rack.ca), token="unused"),
        controller=ControllerConfig(apiPort=1, machinePort=2),
        units=[
            UnitConfig(
                name=name,
                slot=slot,
                bmc=BmcConfig(url=url, username="admin", password=BMC_PASSWORD),
                agentPort=0,
            )
            for slot, (name, url) in enumerate(rack.bmc_urls.items(), start=1)
        ],
    )


async def test_serve_rmc_aggregates_every_bmc_of_the_config(rack: Rack, tmp_path: Path) -> None:
    config = _config(tmp_path, rack)  # the fixture's CA lives in tmp_path/pki, as in a state dir
    directory = rmc_dir(config)
    password = prepare_rmc(directory, RackCA.load(tmp_path / "pki"))
    write_crl(RackCA.load(tmp_path / "pki"), tmp_path / "pki")  # as `racklet up` does
    assert prepare_rmc(directory, RackCA.load(tmp_path / "pki")) == password, "prepared once"
    for secret in ("server.key", "accounts.json", "admin.password"):
        assert stat.S_IMODE((directory / secret).stat().st_mode) == 0o600

    running = await serve_rmc(config, port=free_port())
    try:
        async with httpx.AsyncClient(
            base_url=running.url, verify=client_context(rack.ca), auth=(RMC_USER, password)
        ) as client:
            systems = (await client.get("/redfish/v1/Systems")).json()
    finally:
        await running.stop()
    assert [m["@odata.id"] for m in systems["Members"]] == [
        f"/redfish/v1/Systems/{u}_{u}" for u in rack.bmc_urls
    ]


def test_the_rmc_command_without_a_rack_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "racklet.rmc", "--state-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("racklet rmc: error:"), done.stderr

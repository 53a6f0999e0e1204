"""``racklet pki status|renew|revoke`` on a state dir."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from racklet.config import (
    ApiConfig,
    BmcConfig,
    ControllerConfig,
    RackConfig,
    RackSettings,
    UnitConfig,
    save,
)
from racklet.pki import RackCA, inventory, revoke, write_crl
from tests.bmc.conftest import ADMIN, UNIT
from tests.bmc.resources.certificates.test_certificates import running
from tests.cli.conftest import UNITS, run_main, write_config


def _rack(tmp_path: Path) -> tuple[Path, RackCA]:
    ca = RackCA.create(tmp_path / "pki")
    (tmp_path / "controller").mkdir()
    ca.issue("racklet-controller").write(tmp_path / "controller", "server")
    for name in UNITS:
        d = tmp_path / "bmc" / name
        d.mkdir(parents=True)
        ca.issue(name, server=False, client=True, days=7).write(d, "identity")
    return write_config(tmp_path, 1), ca


def test_status_lists_every_identity_and_flags_expiring(tmp_path: Path) -> None:
    config, _ = _rack(tmp_path)
    result = run_main("--config", str(config), "pki", "status")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "IDENTITY",
        "SUBJECT",
        "USAGE",
        "NOT",
        "AFTER",
        "DAYS",
        "LEFT",
        "STATE",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.split()[0].endswith(".crt")}
    assert set(rows) == {"pki/ca.crt", "controller/server.crt"} | {
        f"bmc/{u}/identity.crt" for u in UNITS
    }
    assert rows["bmc/unit-1/identity.crt"][1:3] == ["unit-1", "client"]
    # A fresh week-long identity is renewed automatically: not "expiring" until renewal is late.
    assert rows["bmc/unit-1/identity.crt"][-1] == "ok"
    assert rows["controller/server.crt"][-1] == "ok"
    assert not any("identity needs" in x or "identities need" in x for x in lines)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=5)
    states = {info.path.name: info.state(later) for info in inventory(tmp_path)}
    assert states["identity.crt"] == "EXPIRING" and states["server.crt"] == "ok"


def test_revoke_then_status_and_bad_input(tmp_path: Path) -> None:
    config, _ = _rack(tmp_path)
    target = tmp_path / "bmc" / "unit-2" / "identity.crt"
    result = run_main("--config", str(config), "pki", "revoke", str(target))
    assert result.code == 0, result.err and (tmp_path / "pki" / "crl.pem").exists()
    status = run_main("--config", str(config), "pki", "status")
    row = next(line for line in status.out.splitlines() if "unit-2" in line)
    assert row.split()[-1] == "REVOKED"
    missing = run_main("--config", str(config), "pki", "revoke", str(tmp_path / "nope.crt"))
    assert missing.code == 1 and missing.err.count("\n") == 1 and "cannot read" in missing.err


def test_renew_named_identity(tmp_path: Path) -> None:
    config, _ = _rack(tmp_path)
    target = tmp_path / "controller" / "server.crt"
    before = target.read_bytes()
    result = run_main("--config", str(config), "pki", "renew", str(target))
    assert result.code == 0, result.err
    assert "renewed controller/server.crt" in result.out and target.read_bytes() != before
    nothing = run_main("--config", str(config), "pki", "renew")
    assert "nothing to renew" in nothing.out


async def test_status_reads_the_crl_for_identities_the_bmcs_hold(tmp_path: Path) -> None:
    """A unit identity reported by its BMC and revoked in the CRL is REVOKED, not ok, and
    counts as needing attention (as ``openssl verify -crl_check`` would say)."""
    async with running(tmp_path) as bench:
        config = RackConfig(
            stateDir=str(tmp_path),
            rack=RackSettings(units=1),
            api=ApiConfig(url="https://127.0.0.1:1", caBundle=str(bench.ca_path), token="t"),
            controller=ControllerConfig(apiPort=1, machinePort=2),
            units=[
                UnitConfig(
                    name=UNIT,
                    slot=1,
                    bmc=BmcConfig(url=bench.url, username=ADMIN[0], password=ADMIN[1]),
                    agentPort=3,
                )
            ],
        )
        path = save(config)
        write_crl(bench.ca, tmp_path / "pki")
        before = await asyncio.to_thread(run_main, "--config", str(path), "pki", "status")
        assert _held_row(before.out, "identity")[-1] == "ok"
        revoke(bench.ca, tmp_path / "pki", (bench.state_dir / "identity.crt").read_bytes())
        after = await asyncio.to_thread(run_main, "--config", str(path), "pki", "status")
    assert after.code == 0, after.err
    assert _held_row(after.out, "identity")[-1] == "REVOKED"
    assert _held_row(after.out, "https")[-1] == "ok"
    assert "CRL pki/crl.pem: 1 revoked" in after.out
    assert "1 BMC-held row(s) need attention" in after.out


def _held_row(out: str, label: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:2] == [UNIT, label])

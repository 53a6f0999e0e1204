"""``racklet pki status|renew|revoke`` on a state dir."""

from __future__ import annotations

from pathlib import Path

from racklet.pki import RackCA
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
    assert rows["bmc/unit-1/identity.crt"][-1] == "EXPIRING"
    assert rows["controller/server.crt"][-1] == "ok"
    assert "3 identities need attention" in lines[-1]


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

"""Under CI=true a skip fails the run, unless the test says why CI may skip it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SKIPPING = """\
import pytest

def test_needs_etcd():
    pytest.skip("etcd is not installed")

@pytest.mark.skipif(True, reason="the DMTF CSDL schemas are not here")
def test_needs_schemas():
    pass

def test_needs_kvm():
    pytest.skip("no KVM on this host")

@pytest.mark.ci_may_skip("CI has no Raspberry Pi")
def test_needs_a_pi():
    pytest.skip("no Raspberry Pi attached")

@pytest.mark.xfail(reason="known bug")
def test_known_bug():
    assert False

def test_runs():
    assert True
"""


def _run(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_under_ci_a_skip_fails_unless_allowed(tmp_path: Path, ci: str) -> None:
    code, out = _run(tmp_path, ci)
    assert code == 1, out
    assert "FAILED test_skipping.py::test_needs_etcd" in out
    assert "skipped under CI=true: etcd is not installed" in out
    assert "ERROR test_skipping.py::test_needs_schemas" in out  # skipped in setup: an error
    assert "SKIPPED [1] test_skipping.py" in out and "no KVM on this host" in out
    assert "no Raspberry Pi attached" in out  # marked ci_may_skip: still a skip
    assert "XFAIL test_skipping.py::test_known_bug" in out
    assert "1 failed, 1 passed, 2 skipped, 1 xfailed, 1 error" in out


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    code, out = _run(tmp_path, ci)
    assert code == 0, out
    assert "1 passed, 4 skipped, 1 xfailed" in out

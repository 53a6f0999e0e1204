"""The import contracts catch a new upward or cross-side import, not only the ones seen so far.

Each case copies ``src/racklet`` to a scratch directory, adds one import the docs forbid, and
runs ``lint-imports`` with the project's contracts against the copy: it must fail and name the
contract. The untouched copy must pass (so a failure is the added import, not the setup).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tmp_path: Path, module: str | None, line: str | None) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "racklet", src / "racklet", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if module is not None and line is not None:
        target = src / Path(*module.split(".")) / "__init__.py"
        target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "pyproject.toml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_contracts_hold_on_the_code_as_it_is(tmp_path: Path) -> None:
    result = _lint(tmp_path, None, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("racklet.controller", "import racklet.bmc", "The management side never imports"),
        ("racklet.twin", "import racklet.rmc", "The twin imports no firmware"),
        ("racklet.hw", "import racklet.boot", "Hardware side layers"),
        ("racklet.bmc", "import racklet.hardware_side", "Hardware side layers"),
        ("racklet.store", "import racklet.gitops", "Management side layers"),
        ("racklet.node", "import racklet.store", "The hardware side never imports"),
        ("racklet.bmc._resources.chassis", "import racklet.bmc._resources.systems", "BMC resource"),
        ("racklet.bmc._state", "import racklet.bmc._resources.tasks", "BMC state and HTTP"),
        ("racklet.rmc", "import racklet.bmc._state.certificates", "The RMC uses the BMC's"),
    ],
)
def test_a_forbidden_import_fails_the_contracts(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    result = _lint(tmp_path, module, line)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout

"""A ``racklet`` command imports what it uses, not every subcommand's implementation.

Every command pays for the CLI's imports before its first line of work (the docs tests run
about 300 of them); ``python -m bench cli_start`` measures the CPU, this pins the cause.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from racklet.cli.main import main
status = main(sys.argv[1:])
print(json.dumps([status, sorted(sys.modules)]))
"""

HEAVY = ("uvicorn", "fastapi", "racklet.controller", "racklet.boot", "racklet.bmc", "asyncio")
"""A server, the control plane, the boot chain, the BMC: what no rack client command needs."""


def _imported(*words: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *words],
        capture_output=True,
        text=True,
        check=True,
        env={"RACKLET_CONFIG": "/nonexistent/racklet.yaml", "PATH": "/usr/bin:/bin"},
    )
    status, modules = json.loads(done.stdout.splitlines()[-1])
    return status, set(modules)


@pytest.mark.parametrize(
    "words",
    [
        ("get", "units"),
        ("--config", "/nonexistent/racklet.yaml", "get", "vms", "-o", "wide"),
        ("wait", "vm/hello", "--for", "delete"),
        ("logs", "microvm/hello"),
    ],
)
def test_a_client_command_does_not_import_the_server_side(words: tuple[str, ...]) -> None:
    status, modules = _imported(*words)
    assert status == 1  # no rack: the one-line error, after every import the command needs
    assert "racklet.cli._client" in modules
    assert not {m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)}


def test_a_subcommand_parser_beside_its_implementation_is_still_reached() -> None:
    status, modules = _imported("scale", "microvmset/web", "--replicas", "-1")
    assert status == 2
    assert "racklet.cli._scale" in modules
    assert "racklet.cli._image" not in modules

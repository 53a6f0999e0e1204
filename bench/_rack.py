"""Start a real ``racklet up`` in a state dir, as a student would (shared by the benchmarks)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import yaml


def start_rack(
    state: Path,
    units: int,
    speed: float,
    extra: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``extra``: further ``racklet up`` options (e.g. ``--payload-bytes``); ``env``: the
    rack's environment (e.g. ``PYTHONPATH`` to another tree, to compare with it)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "racklet.cli",
            "up",
            "--state-dir",
            str(state),
            "--units",
            str(units),
            "--speed",
            str(speed),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def rack_api(state: Path, timeout: float) -> httpx.Client:
    """A client of the rack's API as its ``racklet.yaml`` names it (URL, CA, admin token),
    waiting up to ``timeout`` seconds for ``racklet up`` to write it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            config = yaml.safe_load((state / "racklet.yaml").read_text())
            return httpx.Client(
                base_url=config["api"]["url"],
                verify=config["api"]["caBundle"],
                headers={"Authorization": f"Bearer {config['api']['token']}"},
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            if time.monotonic() > deadline:
                raise RuntimeError("racklet up wrote no usable racklet.yaml") from None
            time.sleep(0.1)

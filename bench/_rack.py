"""Start a real ``racklet up`` in a state dir, as a student would (shared by the benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


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

"""Start a real ``racklet up`` in a state dir, as a student would (shared by the benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_rack(state: Path, units: int, speed: float) -> subprocess.Popen[bytes]:
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

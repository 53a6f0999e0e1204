"""``racklet top`` on a running rack, driven in a pseudo-terminal and read off the screen."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from tests.e2e.conftest import RunningRack, phase

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def test_top_renders_a_running_rack(rack: RunningRack) -> None:
    rack.wait_for(
        lambda units: all(phase(units, name) == "Running" for name in units), "every unit to run"
    )
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 120, 0, 0))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "racklet.cli",
            "--config",
            str(rack.config_path),
            "top",
            "--interval",
            "0.5",
        ],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=dict(os.environ, TERM="xterm-256color"),
        close_fds=True,
    )
    os.close(terminal)
    wanted = [
        "unit-1",
        "unit-5",
        "Running",
        "rack-fan-1",
        "zone rack",
        "Front display",
        "Busbar",
        "of 100 W",
        "rack-1",
    ]
    screen = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(w in screen for w in wanted):
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    screen += ANSI.sub("", os.read(controller, 65536).decode(errors="replace"))
                except OSError:
                    break
        assert [w for w in wanted if w not in screen] == [], screen[-4000:]
        assert "Traceback" not in screen
        assert re.search(r"unit-1\s+│\s+1\s+│\s+Running\s+│\s+\d+\.\d+ W", screen), screen[-4000:]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)

"""Child processes that end with the process that started them.

``racklet up`` starts the two sides and the unit agent starts QEMU; neither may leave an
orphan behind when its parent dies, even by SIGKILL. Linux arms that in the child between fork
and exec (``PR_SET_PDEATHSIG``); other systems have no such signal and get no hook.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A pre-exec hook: the kernel sends the child ``sig`` when this process ends (the signal
    follows the forking thread). None where the kernel has no such signal (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return hook


SUPERVISOR_ENV = "RACKLET_SUPERVISOR_PID"
"""Set by ``racklet up`` in each controller's environment: where to send :data:`CRASH_SIGNAL`."""
CRASH_SIGNAL = signal.SIGUSR2
"""Sent by a controller to its supervisor to be killed (SIGKILL) and restarted."""


def supervisor_crash() -> Callable[[], None] | None:
    """How this process asks the supervisor that started it to crash it, or None when no
    supervisor will restart it (not started by ``racklet up``, or that parent is gone)."""
    text = os.environ.get(SUPERVISOR_ENV, "")
    if not text.isdigit() or int(text) != os.getppid():
        return None
    pid = int(text)
    return lambda: os.kill(pid, CRASH_SIGNAL)

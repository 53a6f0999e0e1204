"""``racklet up``: prepare the state dir, start both sides as processes, stop them cleanly.

The parent is only a supervisor: it holds a lock on the state dir (one rack per dir), starts
the hardware side (``python -m racklet.twin``) and the management side
(``python -m racklet.controller``), waits until the API answers, prints where everything is,
and on Ctrl-C or SIGTERM stops both (SIGTERM, then SIGKILL after a grace period). If either
child dies, the other is stopped and ``up`` exits non-zero, pointing at the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

from racklet.cli._prepare import check_writable, prepare, wipe_for_factory_reset
from racklet.config import RackConfig
from racklet.errors import RackletError
from racklet.net import client_context

READY_TIMEOUT = 90.0
STOP_GRACE = 15.0
PID_FILE = "up.pid"
RESET_SIGNAL = signal.SIGUSR1


class UpError(RackletError):
    """The rack could not be started or died while running."""


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    check_writable(state_dir)
    handle = open(state_dir / "up.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpError(f"a rack is already running from {state_dir}") from None
        yield
    finally:
        handle.close()


class _Supervisor:
    def __init__(self, config: RackConfig) -> None:
        self.config = config
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def spawn(self, name: str, module: str) -> None:
        log_path = self.config.layout.logs / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log_file)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", module, "--state-dir", self.config.state_dir],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the parent only; it stops the children
        )

    def dead(self) -> str | None:
        for name, child in self.children.items():
            if child.poll() is not None:
                return name
        return None

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for handle in self._logs:
            handle.close()

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.config.layout.logs / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(tail)


def api_ready(config: RackConfig) -> bool:
    try:
        response = httpx.get(
            f"{config.api.url}/api/v1/computeunits",
            headers={"Authorization": f"Bearer {config.api.token}"},
            verify=client_context(config.api.ca_bundle),
            timeout=2.0,
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200


def up(
    state_dir: Path,
    *,
    units: int,
    speed: float,
    profile: str,
    psu_rated_watts: float,
    payload_bytes: int,
    store: str = "sqlite",
) -> int:
    stopping: list[int] = []
    resets: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        (resets if signum == RESET_SIGNAL else stopping).append(signum)

    handled = (signal.SIGINT, signal.SIGTERM, RESET_SIGNAL)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    pid_file = state_dir / PID_FILE
    try:
        with _state_lock(state_dir):

            def provision() -> RackConfig:
                return prepare(
                    state_dir,
                    units=units,
                    speed=speed,
                    profile=profile,
                    psu_rated_watts=psu_rated_watts,
                    payload_bytes=payload_bytes,
                    store=store,
                )

            supervisor = _Supervisor(provision())
            pid_file.write_text(str(os.getpid()))
            try:
                while True:
                    _run(supervisor, stopping, resets)
                    if stopping or not resets:
                        return 0
                    resets.clear()
                    # Factory reset: stop both sides, forget every secret, provision anew.
                    supervisor.stop()
                    wipe_for_factory_reset(supervisor.config.layout)
                    supervisor = _Supervisor(provision())
                    print("racklet: factory reset: new CA, identities and TUF root", flush=True)
            finally:
                supervisor.stop()
                pid_file.unlink(missing_ok=True)
                print("racklet: rack stopped", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(supervisor: _Supervisor, stopping: list[int], resets: list[int]) -> None:
    """Start both sides, announce them, and supervise until a stop or a reset is asked."""
    config = supervisor.config
    supervisor.spawn("twin", "racklet.twin")
    supervisor.spawn("controller", "racklet.controller")
    deadline = time.monotonic() + READY_TIMEOUT
    while not api_ready(config):
        if stopping:
            return
        if name := supervisor.dead():
            raise UpError(
                f"the {name} process exited during start-up; see "
                f"{config.layout.logs / (name + '.log')}:\n{supervisor.log_tail(name)}"
            )
        if time.monotonic() > deadline:
            raise UpError(f"the API did not answer within {READY_TIMEOUT:.0f} s")
        time.sleep(0.2)
    print(
        f"racklet: {config.rack.name} is up with {config.rack.units} units "
        f"(speed {config.rack.speed:g})\n"
        f"  API and dashboard: {config.api.url}/\n"
        f"  config:            {config.layout.config}\n"
        f"  logs:              {config.layout.logs}\n"
        f"Try: racklet --config {config.layout.config} get units   (Ctrl-C stops the rack)",
        flush=True,
    )
    while not stopping and not resets:
        if name := supervisor.dead():
            raise UpError(
                f"the {name} process died; see {config.layout.logs / (name + '.log')}:\n"
                f"{supervisor.log_tail(name)}"
            )
        time.sleep(0.2)

"""``racklet up``: prepare the state dir, start both sides as processes, stop them cleanly.

The parent is only a supervisor: it holds a lock on the state dir (one rack per dir), starts
the hardware side (``python -m racklet.hardware_side``) and the management side
(``python -m racklet.controller``), waits until the API answers, prints where everything is,
and on Ctrl-C or SIGTERM stops both (SIGTERM, then SIGKILL after a grace period).

The hardware side outlives the management side, as on a real rack: when a controller dies the
twin runs on (its units stay powered and booted) and the supervisor restarts the controller
after a back-off that doubles with each quick death; the new one adopts the running units
from observation (Redfish and heartbeats), power-cycling none. Only a dead twin, or a
controller that keeps dying within seconds of each start, ends the run non-zero, pointing at
the log. With ``--controllers N`` (etcd only) the others carry on meanwhile; the supervisor
prints which controller leads, and again on every change of leader.

A controller may ask to be crashed (a ``ControllerCrash`` fault): it sends the supervisor
:data:`CRASH_SIGNAL`, and the supervisor kills the leading controller with SIGKILL — a crash
from outside, mid-whatever it was doing — and restarts it like any dead controller. Only the
supervisor's own children are told where to send it (``RACKLET_SUPERVISOR_PID``).

Children end with the supervisor however it ends: each is started with the kernel's parent-
death signal (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` of ``up`` leaves no orphan twin,
and no orphan controller writing the store beside a new one.
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

import httpx

from racklet.children import CRASH_SIGNAL, SUPERVISOR_ENV, die_with_parent
from racklet.cli._prepare import check_writable, prepare, wipe_for_factory_reset
from racklet.config import (
    FACTORY_RESET_SIGNAL,
    SUPERVISOR_PID_FILE,
    RackConfig,
    open_lock,
    write_atomic,
)
from racklet.errors import RackletError
from racklet.net import client_context

READY_TIMEOUT = 90.0
STOP_GRACE = 15.0
MAX_RESTARTS = 5  # quick deaths of one controller in a row: beyond that it is broken
STABLE_SECONDS = 60.0  # a controller that ran this long died of something new: count anew
RESTART_DELAY = 0.5  # before the first restart; doubles with each quick death...
MAX_RESTART_DELAY = 30.0  # ...up to this
LEADER_POLL = 1.0
PID_FILE = SUPERVISOR_PID_FILE
RESET_SIGNAL = FACTORY_RESET_SIGNAL


class UpError(RackletError):
    """The rack could not be started or died while running."""


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    check_writable(state_dir)
    handle = open_lock(state_dir / "up.lock")
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
        self.started: dict[str, float] = {}
        self._on_fork = die_with_parent(signal.SIGTERM)

    def spawn(
        self, name: str, module: str, config_dir: str | None = None, *, crashable: bool = False
    ) -> None:
        """``crashable``: the child may ask this supervisor to crash it (a controller)."""
        log_path = self.config.layout.logs / f"{name}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # logs name units, addresses and errors: the rack's user only
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop(SUPERVISOR_ENV, None)
        if crashable:
            env[SUPERVISOR_ENV] = str(os.getpid())
        with os.fdopen(fd, "ab") as log_file:  # the child has its own copy once started
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", module, "--state-dir", config_dir or self.config.state_dir],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the parent only; it stops the children
                preexec_fn=self._on_fork,  # safe here: up runs no other thread
            )
        self.started[name] = time.monotonic()

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

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.config.layout.logs / f"{name}.log"
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(tail)


def api_ready(config: RackConfig, url: str | None = None) -> bool:
    try:
        response = httpx.get(
            f"{url or config.api.url}/api/v1/computeunits",
            headers={"Authorization": f"Bearer {config.api.token}"},
            verify=client_context(config.api.ca_bundle),
            timeout=2.0,
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200


def _login_line(config: RackConfig) -> str:
    """A one-time dashboard login URL (a single-use code valid 5 minutes, as Jupyter prints
    one): the admin token itself never goes into a URL. Empty if the API would not make one."""
    try:
        response = httpx.post(
            f"{config.api.url}/ui/v1/login-codes",
            headers={"Authorization": f"Bearer {config.api.token}"},
            verify=client_context(config.api.ca_bundle),
            timeout=5.0,
        )
        path = str(response.json()["path"]) if response.status_code == 201 else ""
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return ""
    return f"  log in (one use, 5 min): {config.api.url}{path}\n" if path else ""


def _rmc_line(config: RackConfig) -> str:
    """Where the rack's RMC answers Redfish, and where its credentials are (never printed)."""
    if config.rmc is None:
        return ""
    return (
        f"  RMC (Redfish):     {config.rmc.url}/redfish/v1 "
        f"(user and password: racklet.yaml, rmc:)\n"
    )


def controllers_of(config: RackConfig) -> dict[str, str]:
    """Each controller's process name and API URL; the first is the one racklet.yaml names."""
    urls = {"controller": config.api.url}
    for index, peer in enumerate(config.peer_controllers, start=2):
        urls[f"controller-{index}"] = f"https://127.0.0.1:{peer.api_port}"
    return urls


def leading(config: RackConfig, url: str) -> bool | None:
    """What a controller's /metrics says about leading; None while it does not answer."""
    try:
        text = httpx.get(
            f"{url}/metrics", verify=client_context(config.api.ca_bundle), timeout=2.0
        ).text
    except httpx.TransportError:
        return None
    for line in text.splitlines():
        if line.startswith("racklet_controller_leader "):
            return float(line.split()[1]) == 1.0
    return None


def find_leader(config: RackConfig) -> str | None:
    """The name of the controller that says it leads (the first, if several briefly do)."""
    for name, url in controllers_of(config).items():
        if leading(config, url):
            return name
    return None


def up(
    state_dir: Path,
    *,
    units: int,
    speed: float,
    profile: str,
    psu_rated_watts: float,
    payload_bytes: int,
    store: str = "sqlite",
    controllers: int = 1,
    reassign_ports: bool = False,
    uplink_bandwidth_bps: float = 1e9,
    port_bandwidth_bps: float = 1e9,
) -> int:
    stopping: list[int] = []
    resets: list[int] = []
    crashes: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        queues: dict[int, list[int]] = {RESET_SIGNAL: resets, CRASH_SIGNAL: crashes}
        queues.get(signum, stopping).append(signum)

    handled = (signal.SIGINT, signal.SIGTERM, RESET_SIGNAL, CRASH_SIGNAL)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    pid_file = state_dir / PID_FILE
    try:
        with _state_lock(state_dir):

            def provision(reassign: bool = False) -> RackConfig:
                return prepare(
                    state_dir,
                    units=units,
                    speed=speed,
                    profile=profile,
                    psu_rated_watts=psu_rated_watts,
                    payload_bytes=payload_bytes,
                    store=store,
                    controllers=controllers,
                    reassign_ports=reassign,
                    uplink_bandwidth_bps=uplink_bandwidth_bps,
                    port_bandwidth_bps=port_bandwidth_bps,
                )

            supervisor = _Supervisor(provision(reassign_ports))
            write_atomic(pid_file, str(os.getpid()))
            try:
                while True:
                    _run(supervisor, stopping, resets, crashes)
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


def _spawn_controller(supervisor: _Supervisor, name: str) -> None:
    layout = supervisor.config.layout
    config_dir = None if name == "controller" else str(layout.root / name)
    supervisor.spawn(name, "racklet.controller", config_dir, crashable=True)


def _crash(supervisor: _Supervisor, names: list[str]) -> None:
    """Kill the leading controller with SIGKILL, as a ``ControllerCrash`` fault asked."""
    name = names[0] if len(names) == 1 else find_leader(supervisor.config)
    child = supervisor.children.get(name) if name is not None else None
    if child is None or child.poll() is not None:
        return  # no leader now, or it is already dead: the fault's controller will ask again
    child.kill()
    print(f"racklet: {name} (pid {child.pid}) killed on request: a ControllerCrash fault",
          flush=True)  # fmt: skip


def _run(
    supervisor: _Supervisor, stopping: list[int], resets: list[int], crashes: list[int]
) -> None:
    """Start both sides, announce them, and supervise until a stop or a reset is asked."""
    config = supervisor.config
    urls = controllers_of(config)
    supervisor.spawn("twin", "racklet.hardware_side")
    for controller in urls:
        _spawn_controller(supervisor, controller)
    deadline = time.monotonic() + READY_TIMEOUT
    while not all(api_ready(config, url) for url in urls.values()):
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
    leader = _await_leader(config, deadline) if len(urls) > 1 else None
    print(
        f"racklet: {config.rack.name} is up with {config.rack.units} units "
        f"(speed {config.rack.speed:g})\n"
        f"  API and dashboard: {config.api.url}/\n"
        f"{_login_line(config)}"
        f"{_controller_lines(config, leader)}"
        f"  config:            {config.layout.config}\n"
        f"  logs:              {config.layout.logs}\n"
        f"{_rmc_line(config)}"
        f"Try: racklet --config {config.layout.config} get units   (Ctrl-C stops the rack)",
        flush=True,
    )
    restarts = _Restarts(supervisor, list(urls))
    # A new term is a new leading process, even one restarted under the same name.
    term = (leader, supervisor.children[leader].pid) if leader else None
    next_poll = time.monotonic() + LEADER_POLL
    while not stopping and not resets:
        if crashes:
            crashes.clear()
            _crash(supervisor, list(urls))
        restarts.check()
        if len(urls) > 1 and time.monotonic() >= next_poll:
            next_poll = time.monotonic() + LEADER_POLL
            now = find_leader(config)
            if now is not None and (now, supervisor.children[now].pid) != term:
                term = (now, supervisor.children[now].pid)
                print(f"racklet: {now} now leads (pid {term[1]})", flush=True)
        time.sleep(0.2)


def _await_leader(config: RackConfig, deadline: float) -> str | None:
    """The first leader, once one is elected (within a lease TTL or two)."""
    while time.monotonic() < deadline:
        if (leader := find_leader(config)) is not None:
            return leader
        time.sleep(0.2)
    return None


def _controller_lines(config: RackConfig, leader: str | None) -> str:
    urls = controllers_of(config)
    if len(urls) == 1:
        return ""
    lines = []
    for index, (name, url) in enumerate(urls.items(), start=1):
        role = "leader" if name == leader else "standby"
        where = config.layout.config if index == 1 else config.layout.root / name / "racklet.yaml"
        lines.append(f"  {name + ':':<19}{url}/ ({role}; --config {where})\n")
    return "".join(lines)


class _Restarts:
    """Restarts dead controllers with back-off while the twin (the hardware) runs on.

    A dead twin ends the run: without the hardware there is nothing to manage. A controller
    that dies is started again after :data:`RESTART_DELAY`, doubled with each quick death in a
    row (up to :data:`MAX_RESTART_DELAY`); one that had run :data:`STABLE_SECONDS` starts a
    new count. After :data:`MAX_RESTARTS` quick deaths in a row it is broken, and the run ends.
    """

    def __init__(self, supervisor: _Supervisor, controllers: list[str]) -> None:
        self.supervisor = supervisor
        self.quick_deaths = dict.fromkeys(controllers, 0)
        self.due: dict[str, float] = {}
        """Dead controllers and when each is started again."""

    def check(self) -> None:
        supervisor, now = self.supervisor, time.monotonic()
        for name, child in supervisor.children.items():
            if child.poll() is None or name in self.due:
                continue
            if name not in self.quick_deaths:
                raise UpError(self._died(name))
            self._schedule(name, child.returncode, now)
        for name, when in list(self.due.items()):
            if now >= when:
                del self.due[name]
                _spawn_controller(supervisor, name)

    def _schedule(self, name: str, status: int | None, now: float) -> None:
        if now - self.supervisor.started[name] >= STABLE_SECONDS:
            self.quick_deaths[name] = 0
        if self.quick_deaths[name] >= MAX_RESTARTS:
            raise UpError(
                f"{self._died(name)}\n(it died {MAX_RESTARTS + 1} times in a row, each within "
                f"{STABLE_SECONDS:.0f} s of its start: not restarting it again)"
            )
        delay = min(RESTART_DELAY * 2 ** self.quick_deaths[name], MAX_RESTART_DELAY)
        self.quick_deaths[name] += 1
        self.due[name] = now + delay
        alive = [
            n for n in self.quick_deaths if n != name and self.supervisor.children[n].poll() is None
        ]
        carry = f"{', '.join(alive)} carries on" if alive else "the units run on"
        log_path = self.supervisor.config.layout.logs / f"{name}.log"
        print(
            f"racklet: {name} exited with status {status}; {carry}; "
            f"restarting {name} in {delay:g} s (see {log_path})",
            flush=True,
        )

    def _died(self, name: str) -> str:
        log_path = self.supervisor.config.layout.logs / f"{name}.log"
        return f"the {name} process died; see {log_path}:\n{self.supervisor.log_tail(name)}"

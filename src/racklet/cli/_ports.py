"""Which loopback ports a rack listens on: the ones it had, or fresh ones for what is new.

A rack keeps its addresses: BMC URLs end up in Git (``racklet init gitops``), in users' shell
history and in Redfish tools, so ``racklet up`` reuses every port recorded in the existing
racklet.yaml. A recorded port that another process now holds is an error naming the port, its
role and (on Linux) the holder, never a silent move; ``--reassign-ports`` is the explicit way to
give the rack new addresses. Roles that are new (a unit added with ``--units``, a second
controller) get fresh ports from the kernel. Not here: starting anything on those ports.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from racklet.config import RackConfig
from racklet.errors import ConfigError

REASSIGN_HINT = "run 'racklet up --reassign-ports' to give the rack new addresses"


def recorded(config: RackConfig) -> dict[str, int]:
    """Every port the config names, by role (``api``, ``bmc:unit-1``, ``machine:controller-2``)."""
    ports = {"api": config.controller.api_port, "machine": config.controller.machine_port}
    if config.controller.bulk_port is not None:
        ports["bulk"] = config.controller.bulk_port
    for unit in config.units:
        if (port := urlsplit(unit.bmc.url).port) is not None:
            ports[f"bmc:{unit.name}"] = port
        ports[f"agent:{unit.name}"] = unit.agent_port
        if unit.bmc_port is not None:
            ports[f"bmcport:{unit.name}"] = unit.bmc_port
        for role, port in unit.switch_ports.items():
            ports[f"switch:{unit.name}:{role}"] = port
    if config.rmc is not None and (port := urlsplit(config.rmc.url).port) is not None:
        ports["rmc"] = port
    if config.control is not None and (port := urlsplit(config.control.url).port) is not None:
        ports["control"] = port
    for index, peer in enumerate(config.peer_controllers, start=2):
        ports[f"api:controller-{index}"] = peer.api_port
        ports[f"machine:controller-{index}"] = peer.machine_port
    return ports


def assign(roles: list[str], previous: dict[str, int], source: Path) -> dict[str, int]:
    """A port per role: ``previous`` where recorded (it must be free), else a fresh one."""
    kept = {role: previous[role] for role in roles if role in previous}
    for role, port in kept.items():
        if not is_free(port):
            who = holder(port)
            held = f"held by {who}" if who else "in use by another process"
            raise ConfigError(
                f"port {port} ({describe(role)}), recorded in {source}, is {held}; "
                f"stop that or {REASSIGN_HINT}"
            )
    new = [role for role in roles if role not in kept]
    fresh = free_ports(len(new), avoid=set(kept.values()))
    return {**kept, **dict(zip(new, fresh, strict=True))}


def describe(role: str) -> str:
    what, _, owner = role.partition(":")
    names = {
        "api": "the API",
        "machine": "the machine listener",
        "bmc": "the BMC",
        "agent": "the OS agent",
        "rmc": "the RMC",
        "control": "the hardware side's control endpoint",
        "bmcport": "the BMC's own listener (behind its switch port)",
        "switch": "the switch port (unit:listener)",
    }
    return f"{names.get(what, what)} of {owner}" if owner else names.get(what, what)


def is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now (TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, avoid: set[int] | None = None) -> list[int]:
    """Ports the kernel hands out now; held together so they differ from each other."""
    avoid = avoid or set()
    sockets: list[socket.socket] = []
    chosen: list[int] = []
    try:
        while len(chosen) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)  # held even when avoided, so the kernel moves on
            port = int(sock.getsockname()[1])
            if port not in avoid:
                chosen.append(port)
        return chosen
    finally:
        for sock in sockets:
            sock.close()


def holder(port: int) -> str | None:
    """``pid N (command)`` of a process with a TCP socket bound to ``port``, where Linux's
    /proc tells (only our own user's processes are visible); None otherwise."""
    inodes = _socket_inodes(port)
    if not inodes:
        return None
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return f"pid {entry.name} ({_command(entry)})"
        except OSError:
            continue
    return None


def _socket_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16) if len(fields) > 9 else -1
            if local_port == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _command(entry: Path) -> str:
    try:
        argv = (entry / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in argv if part)
    return " ".join(text.split())[:80] or "?"  # one line, whatever the arguments hold

"""Helpers shared by the boot benchmarks: a rack CA, CPU seconds from /proc, curl clients."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from racklet.pki import RackCA, write_crl

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Tls:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path) -> Tls:
    """A fresh rack CA, a server identity for 127.0.0.1 and a unit's client identity."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = RackCA.create(directory, rack="bench")
    server_key, server_cert = ca.issue("controller", role="controller").write(directory, "server")
    client_key, client_cert = ca.issue(
        "slot-1", role="unit/slot-1", server=False, client=True
    ).write(directory, "client")
    write_crl(ca, directory)  # empty: for the servers that follow the CRL (crl.pem)
    return Tls(directory / "ca.crt", server_cert, server_key, client_cert, client_key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (fields 14 and 15 of /proc/PID/stat), in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(x) for x in text)
    return found


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def curl_args(tls: Tls, url: str, *, output: str = "/dev/null", size: bool = True) -> list[str]:
    """A mutual-TLS curl command; with ``size`` it prints the bytes it downloaded."""
    return [
        "curl",
        "-sS",
        "--fail",
        "--cacert",
        str(tls.ca),
        "--cert",
        str(tls.client_cert),
        "--key",
        str(tls.client_key),
        "-o",
        output,
        *(["-w", "%{size_download}\n"] if size else []),
        url,
    ]


def parallel_curl(tls: Tls, urls: list[str]) -> tuple[float, int]:
    """Start one curl per URL at once; return (wall seconds until all finished, bytes)."""
    start = time.monotonic()
    procs = [
        subprocess.Popen(curl_args(tls, url), stdout=subprocess.PIPE, text=True) for url in urls
    ]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"curl exited {proc.returncode}")
        total += int(out.strip() or 0)
    return time.monotonic() - start, total


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_sigterm(server: _Startable) -> None:
    """A benchmark's server process: start, print ``ready`` for the parent, stop on SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await server.start()
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()

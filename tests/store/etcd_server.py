"""A real etcd (Debian's ``etcd-server``) on loopback with a temporary data dir, for tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
START_TIMEOUT = 30.0


def available() -> bool:
    return Path(ETCD).exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """One etcd member; ``kill`` and ``start`` again keep its data dir and ports."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port, self.peer_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = data_dir.parent / f"{data_dir.name}.log"

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    ETCD,
                    "--name=test",
                    f"--data-dir={self.data_dir}",
                    f"--listen-client-urls={self.url}",
                    f"--advertise-client-urls={self.url}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=test={peer}",
                    "--log-level=error",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited: {self._log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).json().get("health") == "true":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("etcd did not become healthy")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def running_etcd(data_dir: Path) -> Iterator[EtcdServer]:
    """The body of an ``etcd`` fixture: a real etcd on loopback, or the test is skipped."""
    if not available():
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    server = EtcdServer(data_dir)
    server.start()
    yield server
    server.stop()

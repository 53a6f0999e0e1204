"""A real controller API in a process of its own, with a loop-lag probe beside it.

``python -m tests.controller.api_process STATE PORT`` serves the API (SQLite store in
STATE, TLS with ``STATE/api.crt`` and ``api.key``, token :data:`TOKEN`) on 127.0.0.1:PORT on
uvloop, as the controller runs, and prints ``ready``. On SIGUSR1 it prints one JSON line,
the probe's record since the last one (summary, and the worst sample's window), and starts
a new record; SIGTERM stops it. A separate process, so that the fuzzing client's work and
its garbage collections (over a heap of generated cases) are not charged to the server's
loop. Used by ``tests/controller/test_api_fuzz.py`` and ``bench/loop_lag_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, GitSource, ObjectMeta, Rack, RackSpec
from racklet.audit import AuditLog
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.net import AppServer, run_loop, server_context
from racklet.pki import RackCA
from racklet.store import SqliteStore
from tests.lag_probe import LagProbe

TOKEN = "fuzz-t0ken"


def _record(probe: LagProbe) -> None:
    record: dict[str, Any] = {"summary": probe.summary()}
    if probe.blocked:
        record["worst"] = probe.worst()
    print(json.dumps(record), flush=True)
    probe.reset()


async def serve(state: Path, port: int) -> None:
    store = SqliteStore(state / "store.db", history=100)
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psu_rated_watts=60)))
    for n in range(1, 5):
        spec = ComputeUnitSpec(slot=n, bmc=BmcRef(url=f"https://127.0.0.1:{n}"))
        await store.create(ComputeUnit(metadata=ObjectMeta(name=f"unit-{n}"), spec=spec))
    source = {"metadata": {"name": "main"}, "spec": {"localPath": "/srv/rack.git"}}
    await store.create(GitSource.model_validate(source))
    # Audited as the controller is: the fuzz also drives the audit middleware and GET /audit.
    audit = AuditLog(state / "controller" / "audit.log")
    app = create_api_app(
        store, token=TOKEN, metrics=ControllerMetrics(), enqueue=lambda k, n: None,
        rack_name="rack-1", audit=audit,
    )  # fmt: skip
    context = server_context(state / "api.crt", state / "api.key")
    server = AppServer(app, port=port, ssl_context=context, name="api")
    await server.start()
    probe = LagProbe()
    probe.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, _record, probe)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await probe.stop()
    await server.stop()
    await audit.aclose()
    await store.close()


class ApiProcess:
    """The parent's handle: start it, read the probe's records, stop it."""

    def __init__(self, state: Path, port: int) -> None:
        ca = RackCA.create(state / "pki")
        ca.issue("racklet-controller").write(state, "api")
        self.url = f"https://127.0.0.1:{port}"
        self.ca = state / "pki" / "ca.crt"
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.controller.api_process", str(state), str(port)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("the API process did not start")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def record(self) -> dict[str, Any]:
        """The probe's record since the last call (and a fresh one begins)."""
        assert self._proc.stdout is not None
        self._proc.send_signal(signal.SIGUSR1)
        return dict(json.loads(self._proc.stdout.readline()))

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


if __name__ == "__main__":
    run_loop(serve(Path(sys.argv[1]), int(sys.argv[2])))

"""A real controller API (the FastAPI app over a MemoryStore, TLS on loopback) for CLI tests.

The server runs on its own event loop in a thread, because the CLI under test is synchronous
and runs in the test's thread, exactly as it does against a rack started by ``racklet up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta, Rack, RackSpec
from racklet.audit import AuditLog
from racklet.cli.main import main
from racklet.config import (
    ApiConfig,
    BmcConfig,
    ControllerConfig,
    RackConfig,
    RackSettings,
    UnitConfig,
    save,
)
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.net import AppServer, server_context
from racklet.pki import RackCA
from racklet.store import MemoryStore

T = TypeVar("T")
TOKEN = "cli-test-token"
UNITS = ("unit-1", "unit-2", "unit-3")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class LiveApi:
    config_path: Path
    store: MemoryStore
    loop: asyncio.AbstractEventLoop
    audit: AuditLog | None = None
    """The API's audit log, ``<state>/controller/audit.log``."""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a store call on the server's loop (the store is not thread-safe)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def cli(self, *args: str) -> Result:
        return run_main("--config", str(self.config_path), *args)


def run_main(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(store: MemoryStore) -> None:
    await store.create(Rack(metadata=ObjectMeta(name="rack-1"), spec=RackSpec(psuRatedWatts=60)))
    for slot, name in enumerate(UNITS, start=1):
        await store.create(
            ComputeUnit(
                metadata=ObjectMeta(name=name, labels={"tier": "edu" if slot < 3 else "lab"}),
                spec=ComputeUnitSpec(slot=slot, bmc=BmcRef(url=f"https://127.0.0.1:{slot}")),
            )
        )


def write_config(state: Path, port: int) -> Path:
    config = RackConfig(
        stateDir=str(state),
        rack=RackSettings(units=len(UNITS)),
        api=ApiConfig(
            url=f"https://127.0.0.1:{port}", caBundle=str(state / "pki" / "ca.crt"), token=TOKEN
        ),
        controller=ControllerConfig(apiPort=port, machinePort=port),
        units=[
            UnitConfig(
                name=name,
                slot=slot,
                bmc=BmcConfig(url=f"https://127.0.0.1:{slot}", username="admin", password="p"),
                agentPort=slot,
            )
            for slot, name in enumerate(UNITS, start=1)
        ],
    )
    return save(config)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    ca = RackCA.create(tmp_path / "pki")
    key, crt = ca.issue("racklet-controller", role="controller").write(tmp_path, "server")
    port = _free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="cli-test-api", daemon=True)
    thread.start()
    store = MemoryStore()
    audit = AuditLog(tmp_path / "controller" / "audit.log")

    async def start() -> AppServer:
        await _seed(store)
        app = create_api_app(
            store,
            token=TOKEN,
            metrics=ControllerMetrics(),
            enqueue=lambda kind, name: None,
            rack_name="rack-1",
            audit=audit,
        )
        server = AppServer(app, port=port, ssl_context=server_context(crt, key), name="api")
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield LiveApi(write_config(tmp_path, port), store, loop, audit)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        audit.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

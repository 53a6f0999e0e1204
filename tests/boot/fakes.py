"""Test doubles for the boot path: a unit host, a BMC end of the link, a boot server rig.

The fake BMC speaks the real link protocol (``racklet.link.serve_link``) over a
``socket.socketpair()``; the rig serves the real boot app over real mutual TLS on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from racklet.bmc._state.ab import AbState
from racklet.bmc.errors import BmcError
from racklet.boot import Peer, PublishedRelease, TufRepository, build_default_payload
from racklet.boot.server import create_boot_app
from racklet.hw import Activity, Clock, UnitLinkPort
from racklet.link import serve_link
from racklet.net import AppServer, client_context, peer_common_name, server_context
from racklet.pki import Identity, RackCA

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(predicate: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll ``predicate`` until true, failing after a bounded (wall-clock) deadline."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class FastClock:
    """Simulated time at ``speed`` × real time (the twin's clock contract)."""

    def __init__(self, speed: float = 20.0) -> None:
        self.speed = speed
        self._origin = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


@dataclass
class FakeBmc:
    """The BMC end of the backplane link: hands out trust and identity, records the rest.

    The A/B operations go to the BMC's real :class:`AbState` (in ``state_dir``);
    ``on_restart`` stands in for the reset line a real BMC pulses on ``restart``.
    """

    trust: dict[str, Any]
    identity: dict[str, Any]
    state_dir: Path
    requests: list[dict[str, Any]] = field(default_factory=list)
    hang_on: set[str] = field(default_factory=set)
    on_restart: Callable[[], None] | None = None
    clock: FastClock = field(default_factory=FastClock)
    ab: AbState = field(init=False)

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ab = AbState(self.state_dir, self.clock)

    def ops(self, op: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("op") == op]

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]:
        async def record(request: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(request)
            return {}

        async def trust(request: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(request)
            if "trust" in self.hang_on:
                await asyncio.Event().wait()  # a hung BMC: never answers
            return dict(self.trust)

        async def identity(request: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(request)
            return dict(self.identity)

        async def ab(request: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(request)
            op = request["op"]
            if op == "ab":
                return self.ab.read(bool(request.get("consume", False)))
            if op == "tryboot":
                return self.ab.set_tryboot(request)
            if op == "tryboot-clear":
                return self.ab.clear_tryboot()
            return self.ab.commit(request)

        async def restart(request: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(request)
            if self.on_restart is None:
                raise BmcError("no reset line in this rig")
            self.on_restart()
            return {}

        return {
            "trust": trust,
            "identity": identity,
            "progress": record,
            "failed": record,
            "ab": ab,
            "tryboot": ab,
            "tryboot-clear": ab,
            "commit": ab,
            "restart": restart,
        }


class FakeLinkPort:
    """Unit end of the link: each ``connect`` is a socket pair served by the fake BMC."""

    def __init__(self, bmc: FakeBmc) -> None:
        self.bmc = bmc
        self._tasks: set[asyncio.Task[None]] = set()
        self._unit_socks: set[socket.socket] = set()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        unit_sock, bmc_sock = socket.socketpair()
        self._unit_socks.add(unit_sock)
        try:
            bmc_reader, bmc_writer = await asyncio.open_connection(sock=bmc_sock)
        except BaseException:
            bmc_sock.close()
            raise
        task = asyncio.create_task(serve_link(bmc_reader, bmc_writer, self.bmc.handlers()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.open_connection(sock=unit_sock)

    def sever(self) -> None:
        """The unit lost power: its ends of every link are gone."""
        for sock in self._unit_socks:
            sock.close()
        self._unit_socks.clear()

    async def close(self) -> None:
        self.sever()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class FakeHost:
    """A unit as its firmware sees it (implements ``racklet.hw.UnitHost``)."""

    def __init__(self, storage: Path, bmc: FakeBmc, *, speed: float = 20.0) -> None:
        self.fast_clock = FastClock(speed)
        self.fake_link = FakeLinkPort(bmc)
        self.clock: Clock = self.fast_clock
        self.link: UnitLinkPort = self.fake_link
        self.storage = storage
        self.agent_port = free_port()
        self.lines: list[str] = []
        self.activities: list[Activity] = []
        self.temperature = 41.5
        self.size = (4, 4096)
        self.load = 0.25
        self.shutdown = False
        self.carrier = True
        storage.mkdir(parents=True, exist_ok=True)

    def console(self, line: str) -> None:
        self.lines.append(line)

    def set_activity(self, activity: Activity) -> None:
        self.activities.append(activity)

    def temperature_celsius(self) -> float:
        return self.temperature

    def cpu_load(self) -> float:
        return self.load

    def set_cpu_load(self, fraction: float) -> None:
        self.load = fraction

    def shutdown_requested(self) -> bool:
        return self.shutdown

    def link_up(self) -> bool:
        return self.carrier

    def peer_address(self, unit: str, host: str, port: int) -> tuple[str, int]:
        return host, port  # no switch between the fake units: they connect straight

    def capacity(self) -> tuple[int, int]:
        return self.size

    @property
    def console_text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Heartbeat:
    peer: str | None
    body: dict[str, Any]


class BootRig:
    """A rack CA, a TUF repository with a published payload and a mutual-TLS machine listener
    serving it. ``overrides`` maps a request path to an ASGI app that answers instead (an
    attacker in the middle, or a compromised mirror)."""

    def __init__(self, root: Path, *, unit: str = "unit-1", payload_size: int = 65536) -> None:
        self.root = root
        self.unit = unit
        self.ca = RackCA.create(root / "pki")
        self.ca_path = root / "pki" / "ca.crt"
        self.boot_dir = root / "boot"
        self.tuf = TufRepository.create(self.boot_dir)
        self.repo = self.tuf.repo_dir
        self.payload = build_default_payload(payload_size)
        self.release: PublishedRelease = self.tuf.publish(
            "stable", "racklet-os", "0.1.0", {"payload.bin": self.payload}
        )
        self.unit_identity: Identity = self.ca.issue(
            unit, role=f"unit/{unit}", server=True, client=True
        )
        self.port = free_port()
        self.heartbeats: list[Heartbeat] = []
        self.heartbeat_status = 204
        self.heartbeat_reply: dict[str, Any] | None = None
        """A JSON body for heartbeat replies (a controller handing out a stress job)."""
        self.overrides: dict[str, ASGIApp] = {}
        self.peers: list[Peer] = []
        """What the boot server answers as the payload's peers (``/boot/v1/peers/``)."""
        self.peer_questions: list[tuple[str, str]] = []
        self.targets_url: str | None = None
        """The bulk-target server's URL handed to units in the trust bundle, if one runs."""
        self._server: AppServer | None = None

    @property
    def payload_path(self) -> str:
        """The URL path of the current payload target (hash-prefixed)."""
        file = self.release.files[0]
        prefix, _, base = file.target_path.rpartition("/")
        return f"/boot/v1/targets/{prefix}/{file.sha256}.{base}"

    @property
    def payload_file(self) -> Path:
        return self.repo / self.payload_path.removeprefix("/boot/v1/")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def trust(self) -> dict[str, Any]:
        trust = {
            "bootServer": self.url,
            "tufRoot": self.tuf.root_bytes().decode(),
            "caBundle": self.ca.cert_pem.decode(),
        }
        if self.targets_url is not None:
            trust["targetsUrl"] = self.targets_url
        return trust

    def identity(self, unit: str | None = None) -> dict[str, Any]:
        """The unit's identity as its BMC hands it over (another unit of the rack: ``unit``)."""
        issued = self.unit_identity
        if unit is not None and unit != self.unit:
            issued = self.ca.issue(unit, role=f"unit/{unit}", server=True, client=True)
        return {
            "name": unit or self.unit,
            "key": issued.key_pem.decode(),
            "cert": issued.cert_pem.decode(),
        }

    def bmc(self, name: str = "bmc", unit: str | None = None) -> FakeBmc:
        return FakeBmc(self.trust(), self.identity(unit), self.root / name)

    async def _find_peers(self, unit: str, sha256: str) -> list[Peer]:
        self.peer_questions.append((unit, sha256))
        return list(self.peers)

    def client_identity_files(self, name: str) -> tuple[Path, Path]:
        """A client certificate for ``name`` on disk (for test clients, not for units)."""
        key, cert = self.ca.issue(name, role=f"unit/{name}", server=False, client=True).write(
            self.root, name
        )
        return cert, key

    def _app(self) -> ASGIApp:
        async def heartbeat(request: Request) -> Response:
            body = await request.json()
            self.heartbeats.append(Heartbeat(peer_common_name(request.scope), body))
            if self.heartbeat_reply is not None:
                return JSONResponse(self.heartbeat_reply, status_code=self.heartbeat_status)
            return Response(status_code=self.heartbeat_status)

        inner = Starlette(
            routes=[
                Mount("/boot/v1", app=create_boot_app(self.repo, self._find_peers)),
                Route("/machine/v1/heartbeat", heartbeat, methods=["POST"]),
            ]
        )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            override = self.overrides.get(str(scope.get("path")))
            if override is not None:
                await override(scope, receive, send)
                return
            await inner(scope, receive, send)

        return app

    async def start(self) -> None:
        server_key, server_crt = self.ca.issue("racklet-controller", role="controller").write(
            self.root, "server"
        )
        context = server_context(server_crt, server_key, ca=self.ca_path, require_client_cert=True)
        self._server = AppServer(self._app(), port=self.port, ssl_context=context, name="machine")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    def client(self, name: str | None = "unit-1") -> httpx.AsyncClient:
        """An HTTPS client trusting the rack CA, optionally with a client certificate."""
        if name is None:
            return httpx.AsyncClient(verify=client_context(self.ca_path))
        cert, key = self.client_identity_files(name)
        return httpx.AsyncClient(verify=client_context(self.ca_path, cert, key))


def refuse_direct_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``os.open`` refuse ``O_DIRECT`` with EINVAL, as a file system without direct I/O
    (some FUSE ones, tmpfs before Linux 6.6) does; every other open goes through."""
    real_open = os.open

    def no_direct(path: object, flags: int, *args: int, **kwargs: object) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)

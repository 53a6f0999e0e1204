"""Guessing a BMC password from one address: what throttling costs the guesser, and what the
guessing costs everyone else.

One real BMC service (twin board, TLS, rack-CA certificates, client certificates accepted)
runs on its own event loop in a thread. For ``--seconds`` a guesser on 127.0.0.2 keeps
``--connections`` wrong logins for ``admin`` in flight; meanwhile the controller (its
client certificate) reads the system every 100 ms, and an operator on 127.0.0.1 logs in with
the right password every second. Two runs: throttling off (no back-off, no lockout, as if the
BMC only had scrypt) and the defaults (docs/security.md). Loopback only.

Printed per run: the guesses the BMC actually checked per second, the ones refused at once
(503), the controller's GET and the operator's login latency (p50/p99) and failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.bmc.login import BackoffPolicy, LockoutPolicy
from racklet.hw import Activity, UnitHost
from racklet.net import AppServer, client_context, server_context
from racklet.pki import RackCA
from racklet.twin import RackDescription, SimClock, TwinRack

UNIT = "unit-1"
PASSWORD = "bench-password-not-secret"
OFF = BackoffPolicy(source_threshold=10**9)


@dataclass
class Run:
    checked: int = 0
    refused: int = 0
    other: int = 0
    controller_ms: list[float] | None = None
    controller_failed: int = 0
    operator_ms: list[float] | None = None
    operator_failed: int = 0


async def _idle_os(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


@contextlib.contextmanager
def _bmc(work: Path, backoff: BackoffPolicy, lockout: bool) -> Iterator[tuple[str, BmcService]]:
    """A BMC on its own loop in a thread; yields its URL."""
    ready, stop = threading.Event(), threading.Event()
    found: dict[str, object] = {}

    async def serve() -> None:
        rack = TwinRack(
            RackDescription(units=1),
            SimClock(),
            _idle_os,
            storage_root=work / "units",
            agent_ports={},
        )
        await rack.start()
        service = BmcService(
            rack.board(UNIT),
            BmcSettings(
                unit=UNIT, state_dir=work / "bmc", firmware_version="bench", login_backoff=backoff
            ),
        )
        if not lockout:
            service._accounts.throttle.lockout = LockoutPolicy(threshold=0)
        await service.start()
        port = _free_port()
        server = AppServer(
            service.app,
            port=port,
            ssl_context=server_context(
                work / "bmc" / "server.crt", work / "bmc" / "server.key", ca=work / "pki" / "ca.crt"
            ),
            name="bmc",
        )
        await server.start()
        found.update(url=f"https://127.0.0.1:{port}", service=service)
        ready.set()
        await asyncio.to_thread(stop.wait)
        await server.stop()
        await service.stop()
        await rack.stop()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(60)
    try:
        yield str(found["url"]), found["service"]  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(60)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def _attack(url: str, work: Path, seconds: float, connections: int) -> Run:
    ca = work / "pki" / "ca.crt"
    run = Run(controller_ms=[], operator_ms=[])
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    guesser = httpx.AsyncClient(
        base_url=url,
        timeout=60,
        limits=limits,
        transport=httpx.AsyncHTTPTransport(
            verify=client_context(ca), local_address="127.0.0.2", limits=limits
        ),
    )
    controller = httpx.AsyncClient(
        base_url=url,
        timeout=10,
        verify=client_context(ca, work / "controller.crt", work / "controller.key"),
    )
    operator = httpx.AsyncClient(base_url=url, timeout=60, verify=client_context(ca))
    login = "/redfish/v1/SessionService/Sessions"

    async def guess() -> None:
        while time.monotonic() < deadline:
            answer = await guesser.post(login, json={"UserName": "admin", "Password": "guess"})
            if answer.status_code == 401:
                run.checked += 1
            elif answer.status_code == 503:
                run.refused += 1
                await asyncio.sleep(0.01)  # a rude guesser: it ignores Retry-After
            else:
                run.other += 1

    async def read() -> None:
        assert run.controller_ms is not None
        while time.monotonic() < deadline:
            start = time.perf_counter()
            answer = await controller.get(f"/redfish/v1/Systems/{UNIT}")
            run.controller_ms.append((time.perf_counter() - start) * 1000)
            run.controller_failed += answer.status_code != 200
            await asyncio.sleep(0.1)

    async def operate() -> None:
        assert run.operator_ms is not None
        while time.monotonic() < deadline:
            start = time.perf_counter()
            answer = await operator.post(login, json={"UserName": "operator", "Password": PASSWORD})
            run.operator_ms.append((time.perf_counter() - start) * 1000)
            run.operator_failed += answer.status_code != 201
            await asyncio.sleep(1.0)

    try:
        await asyncio.gather(*(guess() for _ in range(connections)), read(), operate())
    finally:
        for client in (guesser, controller, operator):
            await client.aclose()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench login_guessing")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    args, _ = parser.parse_known_args(argv)
    logging.getLogger("racklet").setLevel(logging.ERROR)  # one warning per failed login
    print(f"login_guessing: {args.connections} guessing connections for {args.seconds:.0f} s")
    print(
        f"{'run':<12}{'checked/s':>10}{'503/s':>8}{'ctl p50':>9}{'ctl p99':>9}"
        f"{'ctl fail':>9}{'op p50':>9}{'op p99':>9}{'op fail':>8}"
    )
    for name, backoff, lockout in (
        ("unthrottled", OFF, False),
        ("throttled", BackoffPolicy(), True),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            ca = RackCA.create(work / "pki")
            (work / "bmc").mkdir()
            ca.issue(f"{UNIT}-bmc", role=f"bmc/{UNIT}").write(work / "bmc", "server")
            ca.issue("racklet-controller", role="controller", server=False, client=True).write(
                work, "controller"
            )
            write_accounts(work / "bmc" / "accounts.json", "admin", PASSWORD)
            write_accounts(work / "bmc" / "accounts.json", "operator", PASSWORD, "Operator")
            with _bmc(work, backoff, lockout) as (url, _):
                run = asyncio.run(_attack(url, work, args.seconds, args.connections))
        ctl, op = run.controller_ms or [], run.operator_ms or []
        print(
            f"{name:<12}{run.checked / args.seconds:>10.2f}{run.refused / args.seconds:>8.1f}"
            f"{_pct(ctl, 50):>8.1f}ms{_pct(ctl, 99):>7.1f}ms{run.controller_failed:>9}"
            f"{_pct(op, 50):>7.0f}ms{_pct(op, 99):>7.0f}ms{run.operator_failed:>8}"
        )
    return 0

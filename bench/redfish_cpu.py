"""CPU per Redfish GET inside the BMC's own process, without TLS, sockets or wrk.

``redfish_get`` measures what a client sees over TLS; on a shared, loaded machine its
requests per second swing by 2-3× between runs. This one runs the real
:class:`racklet.bmc.BmcService` on a twin board and drives its ASGI app in process
(``httpx.ASGITransport``, one session token), counting the process's CPU time per request
(``time.process_time``), which other processes' load barely moves. The client's own work
is in the figure too, the same for every build, so compare builds, not absolute values.

Run as ``python -m bench redfish_cpu [--requests N] [--rounds R]``; it prints the median and
the minimum over the rounds for each path, through httpx (``client+app``) and with the ASGI
app called directly (``app``: the BMC's own work per GET, no client in the figure).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from racklet.bmc import BmcService, BmcSettings, write_accounts
from racklet.hw import Activity, UnitHost
from racklet.twin import RackDescription, SimClock, TwinRack

UNIT = "unit-1"
_USER, _PASSWORD = "bench", "bench-password-not-secret"
PATHS = (
    f"/redfish/v1/Systems/{UNIT}",
    f"/redfish/v1/Chassis/{UNIT}",
    f"/redfish/v1/Chassis/{UNIT}/Sensors/power",
    "/redfish/v1/Managers/bmc",
)


async def _idle_os(host: UnitHost) -> None:
    host.set_activity(Activity.RUNNING)
    await asyncio.Event().wait()


async def _app_get(app: Any, path: str, token: bytes) -> None:
    """One GET straight into the ASGI app (as uvicorn would call it, minus the socket)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bmc"), (b"x-auth-token", token)],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 443),
        "extensions": {},
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    assert status == [200], (path, status)


async def _measure(requests: int, rounds: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        write_accounts(root / "accounts.json", _USER, _PASSWORD)
        rack = TwinRack(
            RackDescription(units=1), SimClock(speed=1), _idle_os, storage_root=root / "units"
        )
        await rack.start()
        service = BmcService(
            rack.board(UNIT),
            BmcSettings(unit=UNIT, state_dir=root, firmware_version="racklet-bmc bench"),
        )
        await service.start()
        try:
            transport = httpx.ASGITransport(app=service.app)
            async with httpx.AsyncClient(transport=transport, base_url="https://bmc") as http:
                login = await http.post(
                    "/redfish/v1/SessionService/Sessions",
                    json={"UserName": _USER, "Password": _PASSWORD},
                )
                headers = {"X-Auth-Token": login.headers["X-Auth-Token"]}
                token = headers["X-Auth-Token"].encode()
                found: dict[str, list[float]] = {path: [] for path in PATHS}
                found.update({f"app {path}": [] for path in PATHS})
                for path in PATHS:  # warm-up: caches, first-use imports
                    for _ in range(100):
                        assert (await http.get(path, headers=headers)).status_code == 200
                for _ in range(rounds):
                    for path in PATHS:
                        start = time.process_time()
                        for _ in range(requests):
                            await http.get(path, headers=headers)
                        found[path].append((time.process_time() - start) / requests * 1e6)
                        start = time.process_time()
                        for _ in range(requests):
                            await _app_get(service.app, path, token)
                        found[f"app {path}"].append((time.process_time() - start) / requests * 1e6)
                return found
        finally:
            await service.stop()
            await rack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench redfish_cpu")
    parser.add_argument("--requests", type=int, default=1000, help="GETs per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    found = asyncio.run(_measure(args.requests, args.rounds))
    print(f"redfish_cpu: in-process GET, {args.requests} per path x {args.rounds} rounds")
    print(f"{'path (client+app; app alone)':52} {'median us':>10} {'min us':>8}")
    for path, values in found.items():
        print(f"{path:52} {statistics.median(values):10.0f} {min(values):8.0f}")
    return 0

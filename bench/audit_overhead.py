"""What the audit log and role tokens cost an API request.

The controller's real API app (``create_api_app``) over the in-memory store, driven in process
through httpx's ASGI transport, so the store's fsync does not hide the cost: PATCHes of a
unit's labels, one at a time, in four variants, each in alternating rounds: no audit with the
racklet.yaml admin token (the path before audit and tokens), audit with that token, audit
with an operator ApiToken (one store read per request), and GETs with that token (not
audited, but authenticated). Each round's time includes waiting until its audit lines are on
disk, and CPU time counts the writer thread too, so the cost deferred to the thread is not
hidden. Reports the median wall and CPU microseconds per request of each variant.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from racklet.api import BmcRef, ComputeUnit, ComputeUnitSpec, ObjectMeta
from racklet.audit import AuditLog
from racklet.controller import ControllerMetrics
from racklet.controller._http import create_api_app
from racklet.store import MemoryStore

ADMIN = "bench-admin-token"


async def _round(
    client: httpx.AsyncClient, token: str, ops: int, method: str, audit: AuditLog
) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(ops):
        if method == "PATCH":
            body = {"metadata": {"labels": {"n": str(n)}}}
            response = await client.patch("/api/v1/computeunits/unit-1", json=body, headers=headers)
        else:
            response = await client.get("/api/v1/computeunits/unit-1", headers=headers)
        assert response.status_code == 200, response.text
    await asyncio.to_thread(audit.flush)  # the lines this round queued are on disk
    wall = (time.perf_counter() - started) / ops * 1e6
    return wall, (time.process_time() - cpu) / ops * 1e6


async def run(ops: int, rounds: int, directory: Path) -> dict[str, tuple[float, float]]:
    store = MemoryStore()
    await store.create(
        ComputeUnit(
            metadata=ObjectMeta(name="unit-1"),
            spec=ComputeUnitSpec(slot=1, bmc=BmcRef(url="https://127.0.0.1:1")),
        )
    )
    audit = AuditLog(directory / "audit.log")

    def app(with_audit: bool) -> httpx.AsyncClient:
        api = create_api_app(
            store,
            token=ADMIN,
            metrics=ControllerMetrics(),
            enqueue=lambda kind, name: None,
            rack_name="rack-1",
            audit=audit if with_audit else None,
        )
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="https://b")

    plain, audited = app(False), app(True)
    made = await audited.post(
        "/api/v1/tokens",
        json={"name": "bench", "role": "operator", "units": ["unit-1"]},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    operator = made.json()["token"]
    variants = {
        "PATCH, no audit, racklet.yaml token": (plain, ADMIN, "PATCH"),
        "PATCH, audited, racklet.yaml token": (audited, ADMIN, "PATCH"),
        "PATCH, audited, operator ApiToken": (audited, operator, "PATCH"),
        "GET, operator ApiToken": (audited, operator, "GET"),
    }
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (client, token, method) in variants.items():
            wall, cpu = await _round(client, token, ops, method, audit)
            walls[name].append(wall)
            cpus[name].append(cpu)
    lines = audit.written
    await audit.aclose()
    for client in (plain, audited):
        await client.aclose()
    result = {
        name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in variants
    }
    result["audit lines written"] = (float(lines), 0.0)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench audit_overhead")
    parser.add_argument("--ops", type=int, default=500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="racklet-audit-bench-") as tmp:
        result = asyncio.run(run(args.ops, args.rounds, Path(tmp)))
    print(f"{'variant':40} {'wall µs/req':>12} {'CPU µs/req':>12}   (medians of rounds)")
    for name, (wall, cpu) in result.items():
        if name == "audit lines written":
            print(f"{name:40} {wall:12.0f}")
        else:
            print(f"{name:40} {wall:12.1f} {cpu:12.1f}")


if __name__ == "__main__":
    main()

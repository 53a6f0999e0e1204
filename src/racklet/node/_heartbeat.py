"""Heartbeats to the controller over mutual TLS, every interval of simulated time.

A failed heartbeat is counted, logged and retried with exponential back-off (capped); it
never stops the OS. A VM whose phase changed (``Workloads.report_due``) is reported at once,
not at the next interval: the controller sees a moved VM Starting and Running as soon as it
is (the interval after that early beat starts again; a failing channel keeps its back-off).
The controller may ask for a heartbeat at once too (``POST /heartbeat``, its identity only;
:func:`beat_now_route`): when it assigns this unit a VM, the assignment arrives in that
reply, not one interval later. It asks per assignment, never holds a connection open.
The controller derives ``Running``/``Unreachable`` from their freshness.
On an HA rack each heartbeat goes to every controller: they keep heartbeats in memory, so a
follower that takes over already knows which units are up.
"""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from racklet.boot import BootedPayload
from racklet.hw import UnitHost
from racklet.log import ContextLogger
from racklet.net import peer_identity
from racklet.node._metrics import NodeMetrics
from racklet.node._stress import StressRunner
from racklet.node._workloads import Workloads

HEARTBEAT_PATH = "/machine/v1/heartbeat"
BEAT_NOW_PATH = "/heartbeat"
"""The agent's route where the controller asks for a heartbeat at once."""
MAX_BACKOFF_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0


class HeartbeatSender:
    """Owns one HTTP client; :meth:`run` loops until cancelled."""

    def __init__(
        self,
        host: UnitHost,
        booted: BootedPayload,
        metrics: NodeMetrics,
        ssl_context: ssl.SSLContext,
        logger: ContextLogger,
        stress: StressRunner | None = None,
        workloads: Workloads | None = None,
        *,
        peer_url: str | None = None,
    ) -> None:
        self._workloads = workloads
        self._peer_url = peer_url
        self._dropped = [
            {"unit": unit, "reason": reason[:300]} for unit, reason in booted.dropped_peers[:16]
        ]
        """Peers the boot dropped: sent until a controller took a heartbeat with them."""
        self._host = host
        self._booted = booted
        self._metrics = metrics
        self._ssl = ssl_context
        self._logger = logger
        self._stress = stress
        self.urls = [f"{url}{HEARTBEAT_PATH}" for url in booted.trust.machine_urls]
        self.url = self.urls[0]
        self._failing: set[str] = set()
        self._capacity = host.capacity()
        """The unit's size, for the MicroVM scheduler (read once: a board does not grow)."""

    def body(self) -> dict[str, object]:
        cores, memory_mib = self._capacity
        return {
            "unit": self._booted.unit,
            "agentUrl": f"https://127.0.0.1:{self._host.agent_port}",
            "osVersion": self._booted.manifest.version,
            # The payload it runs and serves to its rack's other units (racklet.node._p2p).
            "payloadSha256": self._booted.manifest.payload_sha256,
            **({"peerUrl": self._peer_url} if self._peer_url is not None else {}),
            **({"droppedPeers": self._dropped} if self._dropped else {}),
            "uptimeSeconds": round(self._metrics.uptime(), 3),
            "temperatureCelsius": round(self._host.temperature_celsius(), 2),
            "cpuLoad": round(self._host.cpu_load(), 4),
            "stressJob": self._stress.last_job if self._stress is not None else None,
            # The controller judges silence by it (two missed intervals: Unreachable).
            "heartbeatIntervalSeconds": self._booted.agent.heartbeat_interval_seconds,
            "cores": cores,
            "memoryMiB": memory_mib,
            **({"microvms": self._workloads.reports()} if self._workloads is not None else {}),
        }

    def next_delay(self, failures: int) -> float:
        interval = self._booted.agent.heartbeat_interval_seconds
        if failures == 0:
            return interval
        backoff = interval * 2.0 ** min(failures - 1, 16)
        return min(backoff, max(MAX_BACKOFF_SECONDS, interval))

    async def send(self, client: httpx.AsyncClient) -> bool:
        """One heartbeat to every controller; True when at least one took it."""
        if not self._host.link_up():
            self._logger.warning("heartbeat skipped: no Ethernet link")
            return False
        body = self.body()
        results = await asyncio.gather(*(self._send_one(client, url, body) for url in self.urls))
        if any(results) and "droppedPeers" in body:
            self._dropped = []  # on record: the controller made an event of each
        return any(results)

    async def _send_one(self, client: httpx.AsyncClient, url: str, body: dict[str, object]) -> bool:
        problem = None
        started = time.monotonic()  # wall clock: a network's latency does not scale with --speed
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            problem = f"heartbeat failed: {' '.join(str(exc).split()) or exc!r}"
        else:
            if response.status_code >= 300:
                problem = f"heartbeat refused: HTTP {response.status_code}"
        if problem is None:
            self._metrics.round_trip(url, time.monotonic() - started)
            await self._take_job(response)
            self._take_assignments(response)
            if url in self._failing:
                self._failing.discard(url)
                self._logger.info(f"heartbeats to {url} go through again")
            return True
        # One controller of several being down is logged once, not every interval.
        if len(self.urls) == 1 or url not in self._failing:
            self._logger.warning(problem if len(self.urls) == 1 else f"{problem} ({url})")
        self._failing.add(url)
        return False

    async def _take_job(self, response: httpx.Response) -> None:
        """A stress job in the controller's reply (``details.stressJob``), if any."""
        if self._stress is None:
            return
        try:
            details = response.json().get("details") or {}
        except (ValueError, AttributeError):
            return
        if isinstance(details, dict) and "stressJob" in details:
            await self._stress.offer(details["stressJob"])

    def _take_assignments(self, response: httpx.Response) -> None:
        """The reply names the VMs this unit should run (a controller that runs no
        scheduler answers without the field: nothing changes)."""
        if self._workloads is None:
            return
        try:
            details = response.json().get("details") or {}
            assigned, ready = details.get("microvms"), details.get("vmImages")
        except (ValueError, AttributeError):
            return
        if isinstance(assigned, list):
            self._workloads.apply([a for a in assigned if isinstance(a, dict)])
        if isinstance(ready, list):  # images to hold ready, in case a VM moves here
            self._workloads.prefetch([t for t in ready if isinstance(t, str)])

    async def run(self) -> None:
        failures = 0
        timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS)
        due = self._workloads.report_due if self._workloads is not None else None
        async with httpx.AsyncClient(verify=self._ssl, timeout=timeout) as client:
            while True:
                if due is not None:
                    due.clear()  # what changed from here on is in this body or the next
                ok = await self.send(client)
                self._metrics.count_heartbeat(ok)
                failures = 0 if ok else failures + 1
                await self._pause(self.next_delay(failures), due if ok else None)

    async def _pause(self, delay: float, due: asyncio.Event | None) -> None:
        """Sleep ``delay`` seconds of the unit's clock, or until ``due`` is set."""
        sleep = asyncio.ensure_future(self._host.clock.sleep(delay))
        if due is None:
            await sleep
            return
        early = asyncio.ensure_future(due.wait())
        try:
            await asyncio.wait((sleep, early), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleep, early):
                task.cancel()
            await asyncio.gather(sleep, early, return_exceptions=True)


def beat_now_route(due: asyncio.Event, controller: str) -> Route:
    """``POST /heartbeat``: the controller (SPIFFE ID ``controller``, nobody else) asks for
    a heartbeat now; ``due`` is what the heartbeat loop waits on between beats."""

    async def beat_now(request: Request) -> JSONResponse:
        identity = peer_identity(request.scope)
        if identity != controller:
            message = f"only {controller} asks for heartbeats, not {identity or 'anonymous'}"
            return JSONResponse({"message": message}, status_code=403)
        due.set()
        return JSONResponse({"message": "a heartbeat goes out now"}, status_code=202)

    return Route(BEAT_NOW_PATH, beat_now, methods=["POST"])

"""Heartbeats to the controller over mutual TLS, every interval of simulated time.

A failed heartbeat is counted, logged and retried with exponential back-off (capped); it
never stops the OS. The controller derives ``Running``/``Unreachable`` from their freshness.
"""

from __future__ import annotations

import ssl

import httpx

from racklet.boot import BootedPayload
from racklet.hw import UnitHost
from racklet.log import ContextLogger
from racklet.node._metrics import NodeMetrics

HEARTBEAT_PATH = "/machine/v1/heartbeat"
MAX_BACKOFF_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0


class Heartbeat:
    """Owns one HTTP client; :meth:`run` loops until cancelled."""

    def __init__(
        self,
        host: UnitHost,
        booted: BootedPayload,
        metrics: NodeMetrics,
        ssl_context: ssl.SSLContext,
        logger: ContextLogger,
    ) -> None:
        self._host = host
        self._booted = booted
        self._metrics = metrics
        self._ssl = ssl_context
        self._logger = logger
        self.url = f"{booted.trust.boot_server}{HEARTBEAT_PATH}"

    def body(self) -> dict[str, object]:
        return {
            "unit": self._booted.unit,
            "agentUrl": f"https://127.0.0.1:{self._host.agent_port}",
            "osVersion": self._booted.manifest.version,
            "uptimeSeconds": round(self._metrics.uptime(), 3),
            "temperatureCelsius": round(self._host.temperature_celsius(), 2),
            "cpuLoad": round(self._host.cpu_load(), 4),
        }

    def next_delay(self, failures: int) -> float:
        interval = self._booted.agent.heartbeat_interval_seconds
        if failures == 0:
            return interval
        backoff = interval * 2.0 ** min(failures - 1, 16)
        return min(backoff, max(MAX_BACKOFF_SECONDS, interval))

    async def send(self, client: httpx.AsyncClient) -> bool:
        if not self._host.link_up():
            self._logger.warning("heartbeat skipped: no Ethernet link")
            return False
        try:
            response = await client.post(self.url, json=self.body())
        except httpx.HTTPError as exc:
            self._logger.warning(f"heartbeat failed: {' '.join(str(exc).split()) or exc!r}")
            return False
        if response.status_code >= 300:
            self._logger.warning(f"heartbeat refused: HTTP {response.status_code}")
            return False
        return True

    async def run(self) -> None:
        failures = 0
        timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS)
        async with httpx.AsyncClient(verify=self._ssl, timeout=timeout) as client:
            while True:
                ok = await self.send(client)
                self._metrics.count_heartbeat(ok)
                failures = 0 if ok else failures + 1
                await self._host.clock.sleep(self.next_delay(failures))

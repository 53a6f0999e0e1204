"""The OS agent's OpenMetrics: read from the unit at scrape time, one registry per agent.

A custom collector (not global gauges) so many agents share one process (the twin runs every
unit) without clashing, and every scrape shows the unit as it is now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.hw import UnitHost

RESULTS = ("ok", "error")


class NodeMetrics(Collector):
    """The unit's temperature, load, uptime, heartbeat outcomes and OS version."""

    def __init__(self, host: UnitHost, unit: str, version: str, started: float) -> None:
        self.vms: Callable[[], list[dict[str, object]]] = list
        """The agent's VM reports (set once its workloads exist), for per-VM metrics."""
        self._host = host
        self._unit = unit
        self._version = version
        self._started = started
        self.heartbeats: dict[str, int] = dict.fromkeys(RESULTS, 0)

    def uptime(self) -> float:
        return max(0.0, self._host.clock.monotonic() - self._started)

    def count_heartbeat(self, ok: bool) -> None:
        self.heartbeats["ok" if ok else "error"] += 1

    def collect(self) -> Iterator[Metric]:
        unit = [self._unit]
        temperature = GaugeMetricFamily(
            "racklet_unit_temperature_celsius", "SoC temperature of the unit.", labels=["unit"]
        )
        temperature.add_metric(unit, self._host.temperature_celsius())
        yield temperature
        load = GaugeMetricFamily(
            "racklet_node_cpu_load", "CPU utilisation, 0 to 1.", labels=["unit"]
        )
        load.add_metric(unit, self._host.cpu_load())
        yield load
        uptime = GaugeMetricFamily(
            "racklet_node_uptime_seconds", "Seconds since the OS started.", labels=["unit"]
        )
        uptime.add_metric(unit, self.uptime())
        yield uptime
        beats = CounterMetricFamily(
            "racklet_node_heartbeats",
            "Heartbeats sent to the controller, by result.",
            labels=["unit", "result"],
        )
        for result, count in self.heartbeats.items():
            beats.add_metric([self._unit, result], count)
        yield beats
        yield from self._vm_metrics()
        info = InfoMetricFamily("racklet_node", "The unit's OS.", labels=["unit"])
        info.add_metric(unit, {"version": self._version})
        yield info

    def _vm_metrics(self) -> Iterator[Metric]:
        reports = self.vms()
        cpu = CounterMetricFamily(
            "racklet_vm_cpu_seconds",
            "CPU time of each MicroVM's QEMU process.",
            labels=["unit", "vm"],
        )
        phase = GaugeMetricFamily(
            "racklet_vm_phase",
            "1 for each MicroVM's current phase.",
            labels=["unit", "vm", "phase"],
        )
        for report in reports:
            name = str(report["name"])
            cpu_seconds = report.get("cpuSeconds")
            if isinstance(cpu_seconds, int | float):
                cpu.add_metric([self._unit, name], float(cpu_seconds))
            phase.add_metric([self._unit, name, str(report["phase"])], 1.0)
        yield cpu
        yield phase


def metrics_registry(metrics: NodeMetrics) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


def create_agent_app(registry: CollectorRegistry) -> Starlette:
    """The agent's read-only HTTP API: ``GET /metrics`` in OpenMetrics text format."""

    async def serve_metrics(request: Request) -> Response:
        body = generate_latest(registry)  # type: ignore[no-untyped-call]
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", serve_metrics, methods=["GET"])])

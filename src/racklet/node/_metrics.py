"""The OS agent's OpenMetrics: read from the unit at scrape time, one registry per agent.

A custom collector (not global gauges) so many agents share one process (the twin runs every
unit) without clashing, and every scrape shows the unit as it is now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.hw import UnitHost
from racklet.metrics import metrics_response

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
        self.round_trips: dict[str, float] = {}

    def round_trip(self, url: str, seconds: float) -> None:
        """The last successful heartbeat's round trip to ``url``: the network as the unit
        sees it (its switch port, the uplink, the controller's answer), in wall seconds."""
        self.round_trips[url] = seconds

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
        rtt = GaugeMetricFamily(
            "racklet_node_heartbeat_round_trip_seconds",
            "Wall-clock round trip of the last heartbeat each controller answered.",
            labels=["unit", "url"],
        )
        for url, seconds in self.round_trips.items():
            rtt.add_metric([self._unit, url], seconds)
        yield rtt
        yield from self._vm_metrics()
        info = GaugeMetricFamily(
            "racklet_node_info", "The unit's OS; always 1.", labels=["unit", "version"]
        )
        info.add_metric([self._unit, self._version], 1.0)
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


def create_agent_app(registry: CollectorRegistry, routes: Sequence[Route] = ()) -> Starlette:
    """The agent's read-only HTTP API: ``GET /metrics``, OpenMetrics or the text format, and
    ``routes`` (the MicroVM consoles, :mod:`._console`)."""

    async def serve_metrics(request: Request) -> Response:
        return metrics_response(registry, request)

    return Starlette(routes=[Route("/metrics", serve_metrics, methods=["GET"]), *routes])

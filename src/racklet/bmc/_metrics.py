"""``/metrics``: the unit's power, energy and temperature, in base units, as OpenMetrics or
the Prometheus text format (whichever the scraper accepts, :mod:`racklet.metrics`).

A collector on a registry owned by this service reads the BMC's last sample at scrape
time, so nothing is copied between the sampler and the exposition.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._state.context import BmcContext
from racklet.bmc._state.fans import fan_metrics
from racklet.metrics import metrics_response


class _UnitCollector(Collector):
    def __init__(self, ctx: BmcContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterable[Metric]:
        ctx, meter = self._ctx, self._ctx.meter
        labels = [ctx.unit]

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["unit"])
            if value is not None:
                family.add_metric(labels, value)
            return family

        reading = meter.reading if meter.monitor_ok else None
        yield gauge(
            "racklet_unit_power_watts", "Unit input power.", reading.watts if reading else None
        )
        yield gauge("racklet_unit_volts", "Unit input voltage.", reading.volts if reading else None)
        yield gauge(
            "racklet_unit_amperes", "Unit input current.", reading.amperes if reading else None
        )
        yield gauge(
            "racklet_unit_temperature_celsius",
            "SoC temperature.",
            meter.celsius if meter.temperature_ok else None,
        )
        yield gauge(
            "racklet_unit_powered",
            "1 if the unit's DC/DC is enabled.",
            1.0 if ctx.board.power_switch.is_on() else 0.0,
        )
        energy = CounterMetricFamily(
            "racklet_unit_energy_joules", "Energy drawn by the unit.", labels=["unit"]
        )
        energy.add_metric(labels, meter.energy_joules, created=meter.energy_created)
        yield energy
        yield from fan_metrics(ctx.unit, ctx.board.fans)
        speed = GaugeMetricFamily(
            "racklet_twin_speed",
            "Seconds of the board's clock per wall-clock second: 1 on hardware, the twin's "
            "--speed in a twin. Divide a rate() of a counter by it (docs/energy.md).",
            labels=["unit"],
        )
        speed.add_metric(labels, float(getattr(ctx.board.clock, "speed", 1.0)))
        yield speed


def routes(ctx: BmcContext) -> list[Route]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_UnitCollector(ctx))

    async def metrics(request: Request) -> Response:
        return metrics_response(registry, request)

    return [Route("/metrics", metrics, methods=["GET"])]

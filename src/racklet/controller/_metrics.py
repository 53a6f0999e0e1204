"""The controller's OpenMetrics: per-unit and busbar power, energy, temperature, phase.

Values are a snapshot the reconcilers hand over after each run, exported by a collector on a
registry of our own (never the process-global one), so a test can run two controllers.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest

from racklet.api import PHASES, ComputeUnitStatus, Rack

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._units: dict[str, ComputeUnitStatus] = {}
        self._rack: Rack | None = None
        self.registry.register(self)  # type: ignore[arg-type]
        self.reconciles = Counter(
            "racklet_controller_reconcile",
            "Reconcile runs by result (success, error, conflict).",
            ["result"],
            registry=self.registry,
        )

    # -- fed by the reconcilers and the runtime ---------------------------------------------

    def unit(self, name: str, status: ComputeUnitStatus) -> None:
        self._units[name] = status.model_copy(deep=True)

    def rack(self, rack: Rack) -> None:
        self._rack = rack.model_copy(deep=True)

    def reconcile_result(self, result: str) -> None:
        self.reconciles.labels(result=result).inc()

    def render(self) -> bytes:
        body: bytes = generate_latest(self.registry)  # type: ignore[no-untyped-call]
        return body

    # -- the collector ----------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        power = GaugeMetricFamily(
            "racklet_unit_power_watts", "Power drawn by each unit.", labels=["unit"], unit="watts"
        )
        energy = CounterMetricFamily(
            "racklet_unit_energy_joules", "Energy used by each unit.", labels=["unit"],
            unit="joules",
        )  # fmt: skip
        temperature = GaugeMetricFamily(
            "racklet_unit_temperature_celsius", "Temperature of each unit.", labels=["unit"],
            unit="celsius",
        )  # fmt: skip
        phase = GaugeMetricFamily(
            "racklet_unit_phase", "1 for the unit's current lifecycle phase.",
            labels=["unit", "phase"],
        )  # fmt: skip
        for name, status in sorted(self._units.items()):
            if status.power_watts is not None:
                power.add_metric([name], status.power_watts)
            if status.energy_joules is not None:
                energy.add_metric([name], status.energy_joules)
            if status.temperature_celsius is not None:
                temperature.add_metric([name], status.temperature_celsius)
            for candidate in PHASES:
                phase.add_metric([name, candidate], 1.0 if candidate == status.phase else 0.0)
        yield from (power, energy, temperature, phase)

        busbar_power = GaugeMetricFamily(
            "racklet_busbar_power_watts", "Power drawn from the busbar.", unit="watts"
        )
        busbar_energy = CounterMetricFamily(
            "racklet_busbar_energy_joules", "Energy drawn from the busbar.", unit="joules"
        )
        rated = GaugeMetricFamily(
            "racklet_busbar_rated_watts", "Rated power of the rack's PSU.", unit="watts"
        )
        if self._rack is not None:
            busbar_power.add_metric([], self._rack.status.power_watts)
            busbar_energy.add_metric([], self._rack.status.energy_joules)
            rated.add_metric([], self._rack.spec.psu_rated_watts)
        yield from (busbar_power, busbar_energy, rated)

"""The controller's OpenMetrics: per-unit and busbar power, energy, temperature, phase.

Values are a snapshot the reconcilers hand over after each run, exported by a collector on a
registry of our own (never the process-global one), so a test can run two controllers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from racklet.api import PHASES, ComputeUnitStatus, Rack
from racklet.metrics import OPENMETRICS, exposition


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
        self.durations = Histogram(
            "racklet_controller_reconcile_duration_seconds",
            "Time one reconcile run took, by kind.",
            ["kind"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.errors = Counter(
            "racklet_controller_reconcile_errors",
            "Failed reconcile runs by kind and reason (Conflict, Temporary, Permanent, or the "
            "exception's type).",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.loops = Counter(
            "racklet_controller_loop_runs",
            "Rounds of each periodic chore (tuf-refresh, pki-maintenance, unit-certificates) "
            "by result (ok, failed).",
            ["loop", "result"],
            registry=self.registry,
        )
        self.loop_durations = Histogram(
            "racklet_controller_loop_duration_seconds",
            "Time one round of a periodic chore took.",
            ["loop"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self._depth: Callable[[], int] = lambda: 0
        self._leader: Callable[[], bool] = lambda: True

    # -- fed by the reconcilers and the runtime ---------------------------------------------

    def unit(self, name: str, status: ComputeUnitStatus) -> None:
        self._units[name] = status.model_copy(deep=True)

    def rack(self, rack: Rack) -> None:
        self._rack = rack.model_copy(deep=True)

    def reconcile_result(self, result: str) -> None:
        self.reconciles.labels(result=result).inc()

    def reconcile_finished(self, kind: str, seconds: float, error: str | None) -> None:
        self.durations.labels(kind=kind).observe(seconds)
        if error is not None:
            self.errors.labels(kind=kind, reason=error).inc()

    def loop_finished(self, loop: str, seconds: float, ok: bool) -> None:
        self.loops.labels(loop=loop, result="ok" if ok else "failed").inc()
        self.loop_durations.labels(loop=loop).observe(seconds)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self._depth = depth

    def watch_leader(self, leading: Callable[[], bool]) -> None:
        self._leader = leading

    def render(self, accept: str = OPENMETRICS) -> bytes:
        """The exposition for a scraper sending ``Accept: accept`` (OpenMetrics by default)."""
        return exposition(self.registry, accept)[0]

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
        load = GaugeMetricFamily(
            "racklet_unit_cpu_load", "Share of each unit's cores its OS keeps busy, 0 to 1.",
            labels=["unit"],
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
            if status.cpu_load is not None:
                load.add_metric([name], status.cpu_load)
            for candidate in PHASES:
                phase.add_metric([name, candidate], 1.0 if candidate == status.phase else 0.0)
        yield from (power, energy, temperature, load, phase)

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
        depth = GaugeMetricFamily(
            "racklet_controller_queue_depth", "Objects queued, waiting for a reconcile slot."
        )
        depth.add_metric([], float(self._depth()))
        yield depth
        leader = GaugeMetricFamily(
            "racklet_controller_leader",
            "1 while this controller leads (runs the reconcilers), 0 while it follows.",
        )
        leader.add_metric([], 1.0 if self._leader() else 0.0)
        yield leader

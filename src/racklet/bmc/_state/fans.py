"""The BMC's fan policy: PWM duty from the SoC temperature, and stall detection by tachometer.

In the spirit of OpenBMC's phosphor-pid-control, but as a plain proportional band: below
``low_celsius`` the fans idle at ``min_percent``; above, duty rises linearly to
``max_percent`` at ``high_celsius`` (Raspberry Pi's own Pi 5 fan curve spans the same
50-75 °C). A fan never stops entirely, so a tachometer reading 0 always means trouble. If the
temperature cannot be read the policy fails safe at full speed, as phosphor-pid-control does.

A fan that reads below ``STALL_RPM`` after being driven for ``stall_seconds`` is stalled: the
policy publishes a SensorEvent ``ReadingBelowLowerCriticalThreshold`` once, and
``SensorReadingNormalRange`` when it turns again. The policy runs on ``board.clock``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from racklet.bmc._state.events import SENSOR_EVENT, EventBus
from racklet.hw import BmcBoard, Fan
from racklet.log import ContextLogger

STALL_RPM = 300.0
"""Lower critical threshold of every fan's tachometer (RPM): below it while driven, stalled."""


def stalled_now(fan: Fan) -> bool:
    """Driven but not turning: what the tachometer says at this instant."""
    return fan.duty_percent() > 0 and fan.rpm() < STALL_RPM


@dataclass(frozen=True)
class FanCurve:
    """Duty (%) as a function of temperature (°C): a proportional band between two points."""

    low_celsius: float = 50.0
    high_celsius: float = 75.0
    min_percent: float = 30.0
    max_percent: float = 100.0

    def __post_init__(self) -> None:
        if not self.low_celsius < self.high_celsius:
            raise ValueError("low_celsius must be below high_celsius")
        if not 0 < self.min_percent <= self.max_percent <= 100:
            raise ValueError("need 0 < min_percent <= max_percent <= 100")

    def duty(self, celsius: float | None) -> float:
        """The duty for ``celsius``; full speed when the temperature is unknown."""
        if celsius is None:
            return self.max_percent
        share = (celsius - self.low_celsius) / (self.high_celsius - self.low_celsius)
        share = min(1.0, max(0.0, share))
        return self.min_percent + (self.max_percent - self.min_percent) * share


class FanPolicy:
    """Drives every fan of one board from its temperature and watches their tachometers."""

    def __init__(
        self,
        board: BmcBoard,
        events: EventBus,
        log: ContextLogger,
        fans_path: str,
        curve: FanCurve | None = None,
        stall_seconds: float = 3.0,
    ) -> None:
        self.curve = curve or FanCurve()
        self.stall_seconds = stall_seconds
        self.stalled: set[str] = set()
        """Names of the fans the policy has declared stalled (and raised an event for)."""
        self._board = board
        self._events = events
        self._log = log
        self._fans_path = fans_path
        self._driven_since: dict[str, float] = {}

    def step(self) -> None:
        """Read the temperature once, set every fan's duty, then check every tachometer."""
        try:
            celsius: float | None = self._board.temperature.read_celsius()
        except OSError as exc:
            self._log.warning(f"fan policy: temperature unreadable ({exc}); fans at full speed")
            celsius = None
        duty = self.curve.duty(celsius)
        now = self._board.clock.monotonic()
        for fan in self._board.fans:
            try:
                fan.set_duty_percent(duty)
            except (OSError, ValueError) as exc:
                self._log.warning(f"fan {fan.name}: cannot set duty {duty:.0f} %: {exc}")
            self._watch(fan, now)

    def _watch(self, fan: Fan, now: float) -> None:
        if fan.duty_percent() <= 0:
            self._driven_since.pop(fan.name, None)
            return
        since = self._driven_since.setdefault(fan.name, now)
        stalled = stalled_now(fan) and now - since >= self.stall_seconds
        if stalled == (fan.name in self.stalled):
            return
        origin = f"{self._fans_path}/{fan.name}"
        rpm = fan.rpm()
        if stalled:
            self.stalled.add(fan.name)
            self._log.warning(
                f"fan {fan.name} stalled: {rpm:.0f} RPM at {fan.duty_percent():.0f} %"
            )
            self._events.publish(
                f"{SENSOR_EVENT}.ReadingBelowLowerCriticalThreshold",
                f"Sensor '{fan.name}' reading of {rpm:g} (RPM) is below the {STALL_RPM:g} "
                "lower critical threshold.",
                (fan.name, f"{rpm:g}", "RPM", f"{STALL_RPM:g}"),
                "Critical",
                origin,
            )
        else:
            self.stalled.discard(fan.name)
            self._log.info(f"fan {fan.name} turns again: {rpm:.0f} RPM")
            self._events.publish(
                f"{SENSOR_EVENT}.SensorReadingNormalRange",
                f"Sensor '{fan.name}' reading of {rpm:g} (RPM) is within normal operating range.",
                (fan.name, f"{rpm:g}", "RPM"),
                "OK",
                origin,
            )

    async def run(self, period: float) -> None:
        while True:
            self.step()
            await self._board.clock.sleep(period)


def fan_metrics(unit: str, fans: Sequence[Fan]) -> Iterable[Metric]:
    """``racklet_unit_fan_rpm`` and ``racklet_unit_fan_duty_ratio`` (0 to 1), one per fan."""
    rpm = GaugeMetricFamily(
        "racklet_unit_fan_rpm", "Fan speed from its tachometer (RPM).", labels=["unit", "fan"]
    )
    duty = GaugeMetricFamily(
        "racklet_unit_fan_duty_ratio", "PWM duty the BMC drives the fan at.", labels=["unit", "fan"]
    )
    for fan in fans:
        rpm.add_metric([unit, fan.name], fan.rpm())
        duty.add_metric([unit, fan.name], fan.duty_percent() / 100.0)
    return [rpm, duty]

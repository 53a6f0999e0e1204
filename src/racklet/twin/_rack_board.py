"""The RMC's board in the twin: the rack fans, the slot temperature inputs, the busbar monitor.

Rack fans are :class:`TwinFan` rotors fed from the busbar (their draw follows the fan affinity
law, power ∝ speed³) whose air passes through every tray: a unit's thermal model sees
``RACK_AIRFLOW_SHARE`` × the fans' mean airflow on top of its own board fan, and the same air
carries the heat of the units below up to each unit's inlet (:func:`rack_airflow_ratio`: the
rack's airflow over the nominal its profile's ``inlet_rise_c_per_w`` was figured at). One
airflow for both: a slower fan makes every unit warmer. Until something drives its PWM a rack
fan runs flat out, as a 4-wire PWM fan does with its PWM input left open. Each slot has a
temperature input wired to the RMC (``slot-N``, the heat sink of the unit in it); its fault
hook makes it lost (reads raise ``OSError``) or invalid (reads NaN). The busbar carries its own
PAC1921 on the RMC's I2C bus with a 2 mΩ shunt, and the fans' feed another (100 mΩ), read by
the real driver (``racklet.hw.drivers.Pac1921``), so the RMC measures the rack's and the
fans' draw as hardware would.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable

from racklet.hw import Clock, Fan, RackBoard, TemperatureSensor
from racklet.hw.drivers import Pac1921
from racklet.hw.drivers import pac1921 as pac1921_driver
from racklet.twin._board import _pow2_at_most
from racklet.twin._busbar import Busbar
from racklet.twin._chips import Pac1921Model
from racklet.twin._fan import TwinFan
from racklet.twin._i2c import TwinSMBus
from racklet.twin._unit import TwinUnit

RACK_FANS = 2
RACK_FAN_RPM = 2200.0
"""Noctua NF-A8 5V PWM datasheet: 2200 RPM at full duty (80 mm, 5 V)."""
RACK_FAN_WATTS = 0.75
"""NF-A8 5V PWM datasheet: 0.15 A at 5 V."""
RACK_FAN_TIME_CONSTANT = 3.0
"""Estimate: an 80 mm rotor takes a few seconds to reach speed (slower than a 30 mm one)."""
STILL_AIR = 0.1
"""Estimate: with the fans stopped, convection still moves a tenth of the nominal air."""
RACK_AIRFLOW_SHARE = 0.6
"""Estimate: the rack's fans at full speed cool a tray 60 % as well as the fan on its board."""
FAN_SENSE_OHMS = 0.1
"""100 mΩ on the fans' feed: 1 A full scale at gain 1, the gain set for the fans' rating."""
BUSBAR_SENSE_OHMS = 0.002
"""2 mΩ: 50 A full scale at gain 1; the gain is chosen for the PSU's rating, as on a board."""


def rack_fans() -> list[TwinFan]:
    """The rack's fans, at full duty until driven (Intel's 4-wire PWM fan specification: an
    open PWM input runs the fan at full speed, so a rack without an RMC is not left hot)."""
    fans = [
        TwinFan(f"rack-fan-{n}", RACK_FAN_RPM, RACK_FAN_TIME_CONSTANT, RACK_FAN_WATTS)
        for n in range(1, RACK_FANS + 1)
    ]
    for fan in fans:
        fan.set_duty_percent(100.0)
    return fans


def rack_airflow_ratio(fans: list[TwinFan]) -> float:
    """The air through the rack over its nominal (the fans at full speed, ~10 CFM through
    the trays: the figure the profiles' ``inlet_rise_c_per_w`` is at), never below
    :data:`STILL_AIR`. Half the air, twice the inlet rise: ΔT = P / (ρ · Q · c_p)."""
    if not fans:
        return STILL_AIR
    return max(STILL_AIR, sum(min(1.0, fan.airflow) for fan in fans) / len(fans))


def rack_airflow(fans: list[TwinFan]) -> float:
    """What the rack fans add to every tray's airflow (0 to ``RACK_AIRFLOW_SHARE``)."""
    if not fans:
        return 0.0
    return RACK_AIRFLOW_SHARE * sum(fan.airflow for fan in fans) / len(fans)


class SensorFailure(enum.StrEnum):
    LOST = "lost"
    """The sensor does not answer: every read raises ``OSError``."""
    NAN = "nan"
    """The sensor answers garbage: reads are NaN."""


SLOT_SENSOR_LSB = 0.1
"""The slot inputs read in 0.1 °C steps, with about one step of noise (estimate, as the SoC's)."""


class SlotSensor:
    """The temperature input of one slot, wired to the RMC. It reads with a step of noise,
    as a live converter does (a reading that never moves is a stuck one: the RMC's stale
    check relies on that), and the fault engine's ``slot`` sensor tap
    (``unit.sensor_taps["slot"]``: stuck, drift, NaN, absent) filters it."""

    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit
        self._rng = random.Random(f"slot/{unit.name}")
        self.failure: SensorFailure | None = None
        """Fault hook: set to make the sensor lost or invalid, None to mend it."""

    def read_celsius(self) -> float:
        if self.failure is SensorFailure.LOST:
            raise OSError(f"temperature input of slot {self._unit.slot} does not answer")
        if self.failure is SensorFailure.NAN:
            return math.nan
        value = self._unit.temperature + self._rng.gauss(0.0, SLOT_SENSOR_LSB)
        tap = self._unit.sensor_taps.get("slot")
        if tap is not None:
            value = tap(value)
        if not math.isfinite(value):
            return value
        return round(round(value / SLOT_SENSOR_LSB) * SLOT_SENSOR_LSB, 1)


def _monitor(
    bus: TwinSMBus,
    address: int,
    volts: float,
    amps: Callable[[], float],
    ohms: float,
    max_watts: float,
) -> Pac1921:
    """A PAC1921 at ``address`` on ``bus`` over a shunt of ``ohms``, gains set for ``max_watts``."""
    bus.attach(address, Pac1921Model(lambda: (volts, amps()), rsense_ohms=ohms))
    headroom_amps = 1.1 * max_watts / volts
    return Pac1921(
        bus,
        address,
        rsense_ohms=ohms,
        di_gain=_pow2_at_most(
            pac1921_driver.VSENSE_FULL_SCALE_VOLTS / ohms / headroom_amps,
            (1, 2, 4, 8, 16, 32, 64, 128),
        ),
        dv_gain=_pow2_at_most(
            pac1921_driver.VBUS_FULL_SCALE_VOLTS / (1.2 * volts), (1, 2, 4, 8, 16, 32)
        ),
    )


class BusbarSocket:
    """The RMC's I2C bus: the busbar's PAC1921 (0x4C), fed by the busbar's true draw, and
    one on the rack fans' feed (0x4D, ``FAN_SENSE_OHMS``), fed by the fans' draw."""

    def __init__(self, busbar: Busbar, fans: list[TwinFan]) -> None:
        self.bus = TwinSMBus()
        volts = busbar.volts
        self.driver = _monitor(
            self.bus,
            pac1921_driver.DEFAULT_ADDRESS,
            volts,
            lambda: busbar.power_watts / volts,
            BUSBAR_SENSE_OHMS,
            busbar.rated_watts,
        )
        self.fan_driver = _monitor(
            self.bus,
            pac1921_driver.DEFAULT_ADDRESS + 1,
            volts,
            lambda: sum(fan.power_watts for fan in fans) / volts,
            FAN_SENSE_OHMS,
            sum(fan.rated_watts for fan in fans) or 1.0,
        )


def build_rack_board(
    rack: str,
    clock: Clock,
    busbar: Busbar,
    fans: list[TwinFan],
    sensors: dict[str, SlotSensor],
) -> RackBoard:
    socket = BusbarSocket(busbar, fans)
    hal_fans: list[Fan] = list(fans)
    temperatures: dict[str, TemperatureSensor] = dict(sensors)
    return RackBoard(
        rack=rack,
        clock=clock,
        busbar_monitor=socket.driver,
        fan_monitor=socket.fan_driver,
        psu_rated_watts=busbar.rated_watts,
        fans=hal_fans,
        temperatures=temperatures,
        part_number="RKL-RACK-TWIN",
        serial_number=f"TWIN-{rack}",
    )

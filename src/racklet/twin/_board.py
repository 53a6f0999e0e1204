"""A BMC board realized over one twin unit: lines, sensors, console, link, power monitor.

The power monitor is the real driver (``racklet.hw.drivers``) talking to a register model of
its chip over this board's own :class:`TwinSMBus`; pulling the unit detaches the chip, so the
driver sees the NACK it would see on hardware.
"""

from __future__ import annotations

from racklet.hw import BmcBoard, BoardIdentity, BootSource, Clock, PowerMonitor
from racklet.hw.drivers import Ina219, Pac1921
from racklet.hw.drivers import ina219 as ina219_driver
from racklet.hw.drivers import pac1921 as pac1921_driver
from racklet.twin._chips import Ina219Model, InputNoise, Pac1921Model, nearest_code
from racklet.twin._i2c import I2cDevice, TwinSMBus
from racklet.twin._unit import TwinUnit


class _PowerSwitch:
    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    def is_on(self) -> bool:
        return self._unit.powered

    def set(self, on: bool) -> None:
        if on:
            self._unit.power_on()
        else:
            self._unit.power_off()


class _ResetLine:
    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    def pulse(self) -> None:
        self._unit.reset()


class _ShutdownLine:
    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    def pulse(self) -> None:
        self._unit.request_shutdown()


class _BootSelect:
    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    def get(self) -> BootSource:
        return self._unit.boot_source

    def set(self, source: BootSource) -> None:
        self._unit.boot_source = BootSource(source)


class _Temperature:
    """The SoC's sensor: the true temperature plus its noise, in steps of its LSB."""

    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit
        profile = unit.profile
        self._lsb = profile.temperature_lsb_celsius
        self._noise = InputNoise(profile.temperature_noise_lsb, unit.sensor_rng)

    def read_celsius(self) -> float:
        codes = nearest_code(self._noise.on(self._unit.temperature / self._lsb))
        value = round(codes * self._lsb, 3)
        tap = self._unit.sensor_taps.get("temperature")  # a sensor fault (stuck, NaN, drift)
        return tap(value) if tap is not None else value


class _LocateLed:
    """The tray's locate LED: a latch the BMC sets; the twin only remembers it."""

    def __init__(self) -> None:
        self._lit = False

    def is_lit(self) -> bool:
        return self._lit

    def set(self, lit: bool) -> None:
        self._lit = bool(lit)


class _Presence:
    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    def is_present(self) -> bool:
        return self._unit.present


class _PowerLimiter:
    """The unit firmware's power cap, as the BMC sets it (the HAL's ``PowerLimiter``)."""

    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    def floor_watts(self) -> float:
        return self._unit.floor_watts

    def ceiling_watts(self) -> float:
        return self._unit.full_load_watts

    def limit_watts(self) -> float | None:
        return self._unit.power_limit_watts

    def set_limit_watts(self, watts: float | None) -> None:
        if watts is not None and watts < self.floor_watts():
            raise ValueError(f"a cap of {watts:g} W is below the floor {self.floor_watts():.2f} W")
        self._unit.power_limit_watts = watts

    def under_voltage(self) -> bool:
        return self._unit.under_voltage and self._unit.activity is not None


class _Uart:
    def __init__(self, unit: TwinUnit) -> None:
        self._unit = unit

    async def read(self) -> bytes:
        return await self._unit.console_buffer.read()


def _pow2_at_most(limit: float, choices: tuple[int, ...]) -> int:
    fitting = [gain for gain in choices if gain <= limit]
    return max(fitting) if fitting else choices[0]


class MonitorSocket:
    """The unit's power-monitor chip on the board's bus: attached while the unit is present."""

    def __init__(self, unit: TwinUnit, volts: float) -> None:
        self.bus = TwinSMBus()
        profile = unit.profile

        def source() -> tuple[float, float]:
            tap = unit.sensor_taps.get("power")
            watts = unit.power_watts if tap is None else tap(unit.power_watts)
            return volts, watts / volts

        self.chip: I2cDevice
        headroom_amps = 1.1 * profile.max_power_watts / volts
        noise = InputNoise(profile.monitor_noise_lsb, unit.sensor_rng)
        if profile.monitor == "ina219":
            self.address = ina219_driver.DEFAULT_ADDRESS
            self.chip = Ina219Model(source, shunt_ohms=profile.sense_ohms, noise=noise)
            self.driver: PowerMonitor = Ina219(
                self.bus, self.address, profile.sense_ohms, max_expected_amps=headroom_amps
            )
        else:
            self.address = pac1921_driver.DEFAULT_ADDRESS
            self.chip = Pac1921Model(source, rsense_ohms=profile.sense_ohms, noise=noise)
            di_gain = _pow2_at_most(
                pac1921_driver.VSENSE_FULL_SCALE_VOLTS / profile.sense_ohms / headroom_amps,
                (1, 2, 4, 8, 16, 32, 64, 128),
            )
            dv_gain = _pow2_at_most(
                pac1921_driver.VBUS_FULL_SCALE_VOLTS / (1.2 * volts), (1, 2, 4, 8, 16, 32)
            )
            self.driver = Pac1921(
                self.bus,
                self.address,
                rsense_ohms=profile.sense_ohms,
                di_gain=di_gain,
                dv_gain=dv_gain,
            )
        self.insert()

    def insert(self) -> None:
        """A unit slides in: its chip powers up at reset values and answers again."""
        reset = getattr(self.chip, "reset", None)
        if callable(reset):
            reset()
        self.bus.attach(self.address, self.chip)

    def pull(self) -> None:
        self.bus.detach(self.address)


# What each profile's tray says about itself (the unit's processor and memory: the boards
# Racklet's profiles model, in their common configuration; the EEPROM bootloader is the
# release rpi-eeprom ships as `default`: firmware-2711/default/pieeprom-2026-05-17.bin and
# firmware-2712/default/pieeprom-2026-09-25.bin in github.com/raspberrypi/rpi-eeprom; the
# part number is Raspberry Pi Ltd's order code of that configuration: SC0194 for the 4 GB
# Pi 4 Model B, SC1112 for the 8 GB Pi 5, as distributors list them).
_MAKES = {
    "raspberry-pi-4": (
        "Raspberry Pi Ltd",
        "Raspberry Pi 4 Model B",
        "BCM2711 Cortex-A72",
        4,
        4096,
        "2026-05-17",
        "SC0194",
    ),
    "raspberry-pi-5": (
        "Raspberry Pi Ltd",
        "Raspberry Pi 5",
        "BCM2712 Cortex-A76",
        4,
        8192,
        "2026-09-25",
        "SC1112",
    ),
}


def _identity(unit: TwinUnit) -> BoardIdentity:
    """The tray's identity: the profile's make, serial and MACs drawn from the rack's seed
    (locally administered MACs, so they can never clash with a real vendor's)."""
    maker, model, cpu, cores, memory, bootloader, part = _MAKES.get(
        unit.profile.name, ("Racklet", unit.profile.name, "unknown", 1, 1024, None, None)
    )
    seed = unit.serial_seed

    def mac(last: int) -> str:
        octets = [0x02, *((seed >> shift) & 0xFF for shift in (32, 24, 16, 8)), last]
        return ":".join(f"{octet:02x}" for octet in octets)

    return BoardIdentity(
        manufacturer=maker,
        model=model,
        serial_number=f"{seed:012x}",
        unit_mac=mac(seed & 0xFE),
        bmc_mac=mac((seed & 0xFE) | 1),
        processor_model=cpu,
        processor_cores=cores,
        memory_mib=memory,
        bootloader_version=bootloader,
        part_number=part,
    )


def build_board(unit: TwinUnit, clock: Clock, monitor: MonitorSocket) -> BmcBoard:
    return BmcBoard(
        unit=unit.name,
        clock=clock,
        power_switch=_PowerSwitch(unit),
        reset=_ResetLine(unit),
        shutdown_request=_ShutdownLine(unit),
        boot_select=_BootSelect(unit),
        power_monitor=monitor.driver,
        temperature=_Temperature(unit),
        presence=_Presence(unit),
        uart=_Uart(unit),
        link=unit.backplane,
        max_power_watts=unit.profile.max_power_watts,
        fans=[unit.fan],
        locate_led=_LocateLed(),
        identity=_identity(unit),
        power_limiter=_PowerLimiter(unit),
    )

"""The hardware abstraction: one narrow interface per electrical function of a BMC board.

A backend must implement every protocol below; the ``twin`` backend models them and the
``linux`` backend drives gpiod lines, an ``smbus2.SMBus`` and a serial port. Code above the HAL
(the BMC service, the bootstrap client) sees only these protocols, so it cannot tell which
backend it runs on. Methods are synchronous where real hardware answers in microseconds (GPIO,
I2C) and asynchronous where they wait on a byte stream (UART, backplane link).
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class SMBus(Protocol):
    """The subset of ``smbus2.SMBus`` the drivers use.

    Word transfers are little-endian on the wire, as SMBus defines them: chips that send the
    high byte first (PAC1921, INA219) need their driver to swap. An absent device NACKs:
    ``OSError`` with ``errno.EREMOTEIO`` (121), as the Linux i2c-dev driver reports it.
    """

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_word_data(self, i2c_addr: int, register: int) -> int: ...
    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...
    def close(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds and sleeps; the twin's runs at ``--speed``, hardware's at 1."""

    def monotonic(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class PowerSwitch(Protocol):
    """The unit's DC/DC enable."""

    def is_on(self) -> bool: ...
    def set(self, on: bool) -> None: ...


class ControlLine(Protocol):
    """An active-low line the BMC pulses: the unit's reset, or its shutdown request (GPIO3)."""

    def pulse(self) -> None: ...


class BootSource(enum.StrEnum):
    SD_CARD = "SDCard"
    USB = "Usb"
    NETWORK = "UefiHttp"


class BootSourceSelect(Protocol):
    """Which medium the unit's boot ROM tries first."""

    def get(self) -> BootSource: ...
    def set(self, source: BootSource) -> None: ...


@dataclass(frozen=True)
class PowerReading:
    volts: float
    amperes: float
    watts: float


class PowerMonitor(Protocol):
    """A driver for the unit's power monitor chip (PAC1921, INA219, ...)."""

    def read(self) -> PowerReading: ...


class PowerLimiter(Protocol):
    """A per-unit power cap the unit's firmware honours by lowering its clocks (as a Pi's
    firmware throttles). It can hold the draw down to ``floor_watts`` (the lowest clock with
    every core busy), not below: a cap under the floor is the caller's error."""

    def floor_watts(self) -> float: ...
    def ceiling_watts(self) -> float:
        """The most the unit draws uncapped (every core busy at full clock)."""
        ...

    def limit_watts(self) -> float | None:
        """The cap in force, None when uncapped."""
        ...

    def set_limit_watts(self, watts: float | None) -> None:
        """Set (or with None lift) the cap; ``ValueError`` below the floor."""
        ...

    def under_voltage(self) -> bool:
        """Whether the unit's firmware throttles to its floor because the supply sags (a Pi
        below 4.63 V), whatever the cap: its demand is then hidden from its meter."""
        ...


class TemperatureSensor(Protocol):
    def read_celsius(self) -> float: ...


class Fan(Protocol):
    """A 4-wire fan on the BMC board: a PWM output and a tachometer input.

    ``rpm()`` is what the tachometer counts, not what was asked for: a stuck rotor reads 0
    however hard it is driven, which is how a BMC tells a dead fan from an idle one.
    """

    name: str
    rated_rpm: float
    """Speed at 100 % duty, from the fan's datasheet (Redfish ``RatedSpeedRPM``)."""

    def set_duty_percent(self, percent: float) -> None:
        """Drive the PWM output at ``percent`` (0 to 100); ``ValueError`` outside that."""
        ...

    def duty_percent(self) -> float: ...
    def rpm(self) -> float: ...


class Indicator(Protocol):
    """An LED the BMC or RMC drives (the unit's locate LED): a GPIO output latch."""

    def is_lit(self) -> bool: ...
    def set(self, lit: bool) -> None: ...


class PresenceDetect(Protocol):
    """Whether a unit sits in the slot (a grounded pin on the tray)."""

    def is_present(self) -> bool: ...


class Uart(Protocol):
    """The unit's serial console as seen by the BMC: bytes the unit printed, in order."""

    async def read(self) -> bytes:
        """The next chunk of console output; waits until there is some."""
        ...


LinkHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class BackplaneLink(Protocol):
    """BMC end of the unit's backplane byte stream (USB CDC serial on hardware)."""

    async def serve(self, handler: LinkHandler) -> None:
        """Call ``handler`` for every connection the unit opens; runs until cancelled."""
        ...


class UnitLinkPort(Protocol):
    """Unit end of the backplane byte stream: what the bootstrap client opens."""

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


class Activity(enum.StrEnum):
    """What the unit's CPU is doing, as far as its power draw is concerned."""

    FIRMWARE = "firmware"  # boot ROM and bootstrap: fetching and verifying the payload
    BOOTING = "booting"  # the booted payload's OS coming up
    RUNNING = "running"  # the OS is up; draw follows cpu load
    HALTED = "halted"  # shut down, still powered


class UnitHost(Protocol):
    """A compute unit as its own firmware and OS see it.

    The bootstrap client and the OS agent run against this; the twin implements it for a
    simulated unit, and on a real Raspberry Pi it is the initramfs's view of the board.
    """

    clock: Clock
    link: UnitLinkPort
    storage: Path
    """The unit's own disk (the SD card); survives power cycles, not a factory wipe."""
    agent_port: int
    """Port the OS agent listens on (the unit's network address is 127.0.0.1 in the twin)."""

    def console(self, line: str) -> None:
        """Print one line on the unit's UART (its BMC captures it)."""
        ...

    def set_activity(self, activity: Activity) -> None:
        """Tell the power model what the CPU is doing; real hardware ignores it."""
        ...

    def temperature_celsius(self) -> float:
        """The SoC temperature, as ``/sys/class/thermal/thermal_zone0`` reports it."""
        ...

    def cpu_load(self) -> float:
        """CPU utilisation, 0.0 to 1.0."""
        ...

    def set_cpu_load(self, fraction: float) -> None:
        """Keep ``fraction`` (0.0 to 1.0) of the cores busy (a stress job): on hardware, busy
        workers on that share of the cores; in the twin, the load that drives its power."""
        ...

    def shutdown_requested(self) -> bool:
        """Whether the BMC pulsed the shutdown-request line since the OS started."""
        ...

    def link_up(self) -> bool:
        """Whether the unit's Ethernet port has carrier (its switch port is up and enabled)."""
        ...

    def peer_address(self, unit: str, host: str, port: int) -> tuple[str, int]:
        """Where to connect to reach ``host:port``, served by the rack's ``unit``: on hardware
        the address itself (the switch forwards frames); in the twin, the switch's relay over
        both units' ports, so that traffic is shaped and cut as theirs. Blocking (a download
        thread calls it); raises ``OSError`` when there is no path."""
        ...

    def capacity(self) -> tuple[int, int]:
        """The unit's CPU cores and memory in MiB, what its MicroVMs may be given: the
        board's (the twin's profile), or on hardware :func:`measured_capacity`."""
        ...


@dataclass(frozen=True)
class BoardIdentity:
    """What a tray says about itself (on hardware: the BMC board's EEPROM and the unit's OTP):
    who made the unit, what it is, its serial number, MAC addresses, processor and memory."""

    manufacturer: str
    model: str
    serial_number: str
    unit_mac: str
    """The unit's own Ethernet MAC (``aa:bb:cc:dd:ee:ff``)."""
    bmc_mac: str
    """The BMC's management Ethernet MAC."""
    processor_model: str
    processor_cores: int
    memory_mib: int
    bootloader_version: str | None = None
    """The unit's boot firmware release (a Pi's EEPROM bootloader, as ``vcgencmd
    bootloader_version`` dates it): what it runs before any OS, Redfish ``BiosVersion``."""
    part_number: str | None = None
    """The maker's order code of the unit's board (Raspberry Pi Ltd's ``SC0194`` for a 4 GB
    Pi 4 Model B), Redfish ``PartNumber``; None where the maker publishes none."""


@dataclass
class BmcBoard:
    """Everything a BMC can touch on its board, from one backend."""

    unit: str
    clock: Clock
    power_switch: PowerSwitch
    reset: ControlLine
    shutdown_request: ControlLine
    boot_select: BootSourceSelect
    power_monitor: PowerMonitor
    temperature: TemperatureSensor
    presence: PresenceDetect
    uart: Uart
    link: BackplaneLink
    max_power_watts: float
    fans: list[Fan] = field(default_factory=list)
    """The board's fans; a board without any (fanless tray) has an empty list."""
    locate_led: Indicator | None = None
    """The tray's locate LED (Redfish ``LocationIndicatorActive``), if the board has one."""
    identity: BoardIdentity | None = None
    """What the tray says about itself, if the board can read it."""
    power_limiter: PowerLimiter | None = None
    """The unit's power cap (Redfish ``Controls/PowerLimit``), if its firmware has one."""


@dataclass
class RackBoard:
    """Everything the RMC can touch: the rack's own fans, the temperatures its cooling zones
    read and the busbar's power monitor (one backend, as for :class:`BmcBoard`)."""

    rack: str
    clock: Clock
    busbar_monitor: PowerMonitor
    """The monitor on the busbar feed: every unit's and every rack fan's draw together."""
    psu_rated_watts: float
    fans: list[Fan] = field(default_factory=list)
    temperatures: dict[str, TemperatureSensor] = field(default_factory=dict)
    """Named inputs of the cooling zones (``slot-1``...); a lost one raises ``OSError``."""
    fan_monitor: PowerMonitor | None = None
    """A monitor on the rack fans' own feed, if the board has one (their energy)."""
    manufacturer: str = "Racklet"
    model: str = "Racklet scale-model rack"
    part_number: str = ""
    serial_number: str = ""
    """The enclosure's identity as its board's FRU data gives it (Redfish ``Chassis/rack``)."""


def measured_capacity(meminfo: Path = Path("/proc/meminfo")) -> tuple[int, int]:
    """This host's cores (``os.cpu_count``) and memory (``MemTotal`` of ``/proc/meminfo``,
    in MiB): a real unit's :meth:`UnitHost.capacity`."""
    cores = os.cpu_count() or 1
    for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("MemTotal:"):
            return cores, int(line.split()[1]) // 1024
    raise OSError(f"{meminfo} has no MemTotal line")

"""Register-accurate models of the power-monitor chips, fed by a unit's true electrical state.

Each model reads ``(volts, amperes)`` from a callable when the host reads a result register,
converts with the datasheet's full-scale ranges and LSBs, truncates to whole codes (toward
zero), saturates at full scale and puts the bytes on the wire high byte first. Register maps
and reset values are those the drivers' module docstrings cite (``racklet.hw.drivers``).
What is not modelled: conversion timing, averaging and noise, accumulators, analog outputs,
alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

Electrical = Callable[[], tuple[float, float]]
"""Returns the true (bus volts, amperes) through the sense resistor right now."""


def _code(value: float) -> int:
    """Whole ADC codes, truncated toward zero (rounded first to shed float noise)."""
    return int(round(value, 6))


class Pac1921Model:
    """A PAC1921: 8-bit registers behind an auto-incrementing pointer."""

    PRODUCT_ID = 0x5B
    MANUFACTURER_ID = 0x5D
    REVISION = 0x03
    _WRITABLE = (0x00, 0x01, 0x02)
    _RESET: ClassVar[dict[int, int]] = {
        0x01: 0x0C,
        0xFD: PRODUCT_ID,
        0xFE: MANUFACTURER_ID,
        0xFF: REVISION,
    }

    def __init__(self, source: Electrical, rsense_ohms: float = 0.01) -> None:
        self._source = source
        self.rsense_ohms = rsense_ohms
        self.registers = bytearray(256)
        self.reset()

    def reset(self) -> None:
        """Power-on reset: configuration to defaults, results to zero."""
        self.registers[:] = bytes(256)
        for register, value in self._RESET.items():
            self.registers[register] = value

    @property
    def integrating(self) -> bool:
        """INTEGRATE state: READ/INT overridden (RIOV) and INTEN set; the pin is tied low."""
        int_cfg = self.registers[0x01]
        asleep = bool(self.registers[0x02] & 0x04)
        return bool(int_cfg & 0x02) and bool(int_cfg & 0x01) and not asleep

    def _store(self, register: int, code: int) -> None:
        word = code << 6
        self.registers[register] = word >> 8
        self.registers[register + 1] = word & 0xFF

    def _convert(self) -> None:
        volts, amperes = self._source()
        gain = self.registers[0x00]
        di_gain = 1 << ((gain >> 3) & 0x07)
        dv_gain = 1 << min(gain & 0x07, 5)
        vbus_ratio = max(0.0, volts) / (32.0 / dv_gain)
        vsense_ratio = max(0.0, amperes * self.rsense_ohms) / (0.1 / di_gain)
        overflow = 0
        codes = []
        for ratio, flag in (
            (vbus_ratio, 0x02),
            (vsense_ratio, 0x04),
            (vbus_ratio * vsense_ratio, 0x01),
        ):
            code = _code(1023 * ratio)
            if code > 1023:
                code, overflow = 1023, overflow | flag
            codes.append(code)
        self._store(0x10, codes[0])
        self._store(0x12, codes[1])
        self._store(0x1D, codes[2])
        self.registers[0x1C] = overflow

    def write(self, register: int, data: bytes) -> None:
        for offset, value in enumerate(data):
            target = (register + offset) & 0xFF
            if target in self._WRITABLE:
                self.registers[target] = value

    def read(self, register: int, length: int) -> bytes:
        if self.integrating:
            self._convert()
        return bytes(self.registers[(register + i) & 0xFF] for i in range(length))


class Ina219Model:
    """An INA219: six 16-bit registers, high byte first, calibration gating current/power."""

    CONFIG_RESET = 0x399F

    def __init__(self, source: Electrical, shunt_ohms: float = 0.1) -> None:
        self._source = source
        self.shunt_ohms = shunt_ohms
        self.registers = [0] * 6
        self.reset()

    def reset(self) -> None:
        self.registers = [self.CONFIG_RESET, 0, 0, 0, 0, 0]

    def write(self, register: int, data: bytes) -> None:
        if len(data) < 2 or register > 5:
            return  # a pointer-only write, or a register that does not exist
        value = (data[0] << 8) | data[1]
        if register == 0:
            if value & 0x8000:
                self.reset()
            else:
                self.registers[0] = value
        elif register == 5:
            self.registers[5] = value & 0xFFFE

    def _convert(self) -> None:
        config = self.registers[0]
        if config & 0x07 == 0:
            return  # power-down mode: registers hold their last values
        volts, amperes = self._source()
        shunt_limit = 4000 << ((config >> 11) & 0x03)
        shunt = max(-shunt_limit, min(shunt_limit, _code(amperes * self.shunt_ohms / 10e-6)))
        bus_limit = 8000 if config & 0x2000 else 4000
        bus = max(0, min(bus_limit, _code(volts / 0.004)))
        calibration = self.registers[5]
        current = int(shunt * calibration / 4096)
        power = int(abs(current) * bus / 5000)
        overflow = 0
        if not -32768 <= current <= 32767 or power > 0xFFFF:
            overflow = 1
            current = max(-32768, min(32767, current))
            power = min(power, 0xFFFF)
        self.registers[1] = shunt & 0xFFFF
        self.registers[2] = (bus << 3) | 0x02 | overflow
        self.registers[3] = power
        self.registers[4] = current & 0xFFFF

    def read(self, register: int, length: int) -> bytes:
        if register > 5:
            return bytes(length)
        self._convert()
        value = self.registers[register]
        wire = bytes([value >> 8, value & 0xFF])
        return bytes(wire[i % 2] for i in range(length))

"""Register-accurate models of the power-monitor chips, fed by a unit's true electrical state.

Each model reads ``(volts, amperes)`` from a callable when the host reads a result register,
adds the input noise of a real converter (Gaussian, ``noise_lsb`` codes standard deviation,
from a seeded generator so a rack is reproducible), converts with the datasheet's full-scale
ranges and LSBs to the nearest whole code (an ideal converter's transitions sit half an LSB
either side of each code, so noise averages out instead of biasing the reading low),
saturates at full scale and puts the bytes on the wire high byte first. Register maps and
reset values are those the drivers' module docstrings cite (``racklet.hw.drivers``).
What is not modelled: conversion timing, averaging, accumulators, analog outputs, alerts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import ClassVar

Electrical = Callable[[], tuple[float, float]]
"""Returns the true (bus volts, amperes) through the sense resistor right now."""


def nearest_code(value: float) -> int:
    """The nearest whole ADC code (half a code rounds away from zero)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


class InputNoise:
    """Gaussian noise at a converter's input, in codes; silent when ``lsb`` is 0."""

    def __init__(self, lsb: float = 0.0, rng: random.Random | None = None) -> None:
        self.lsb = lsb
        self._rng = rng or random.Random(0)

    def __call__(self) -> float:
        return self._rng.gauss(0.0, self.lsb) if self.lsb > 0 else 0.0

    def on(self, value: float, codes_per_unit: float = 1.0) -> float:
        """``value`` with noise (``codes_per_unit`` codes make 1.0); a dead input stays 0: the
        converter is unipolar and its offset is trimmed below a code, so an unpowered unit
        reads exactly zero rather than a positive bias of clipped noise."""
        if value <= 0.0:
            return 0.0
        return max(0.0, value + self() / codes_per_unit)

    def bipolar(self, codes: float) -> float:
        """``codes`` with noise on a signed input (the INA219's shunt); zero stays zero."""
        return codes + self() if codes else 0.0


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

    def __init__(
        self, source: Electrical, rsense_ohms: float = 0.01, noise: InputNoise | None = None
    ) -> None:
        self._source = source
        self.rsense_ohms = rsense_ohms
        self.noise = noise or InputNoise()
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
        vbus_ratio = self.noise.on(max(0.0, volts) / (32.0 / dv_gain), 1023)
        vsense_ratio = self.noise.on(max(0.0, amperes * self.rsense_ohms) / (0.1 / di_gain), 1023)
        overflow = 0
        codes = []
        for ratio, flag in (
            (vbus_ratio, 0x02),
            (vsense_ratio, 0x04),
            (vbus_ratio * vsense_ratio, 0x01),
        ):
            code = nearest_code(1023 * ratio)
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

    def __init__(
        self, source: Electrical, shunt_ohms: float = 0.1, noise: InputNoise | None = None
    ) -> None:
        self._source = source
        self.shunt_ohms = shunt_ohms
        self.noise = noise or InputNoise()
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
        shunt_code = nearest_code(self.noise.bipolar(amperes * self.shunt_ohms / 10e-6))
        shunt = max(-shunt_limit, min(shunt_limit, shunt_code))
        bus_limit = 8000 if config & 0x2000 else 4000
        bus = max(0, min(bus_limit, nearest_code(self.noise.on(volts / 0.004))))
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

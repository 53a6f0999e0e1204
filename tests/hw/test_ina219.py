"""The INA219 driver against the twin's register model, checked byte by byte.

Expected values come from the datasheet's programming section (TI SBOS448, 8.5):
``Current_LSB = max_expected / 2^15``, ``Cal = trunc(0.04096 / (Current_LSB × Rshunt))``,
``Current = Shunt × Cal / 4096``, ``Power = Current × Bus / 5000``, shunt LSB 10 µV, bus LSB
4 mV in bits 15:3, power LSB 20 × Current_LSB; registers are sent high byte first.
"""

from __future__ import annotations

import math

import pytest

from racklet.hw.drivers import ChipAbsent, Ina219
from racklet.twin import Ina219Model, TwinSMBus

ADDRESS = 0x40
SHUNT = 0.1
MAX_AMPS = 3.2


class Supply:
    def __init__(self, volts: float, amperes: float) -> None:
        self.volts = volts
        self.amperes = amperes

    def __call__(self) -> tuple[float, float]:
        return self.volts, self.amperes


@pytest.fixture
def rig() -> tuple[TwinSMBus, Ina219Model, Supply]:
    supply = Supply(5.0, 1.0)
    bus = TwinSMBus()
    model = Ina219Model(supply, shunt_ohms=SHUNT)
    bus.attach(ADDRESS, model)
    return bus, model, supply


def _wire(bus: TwinSMBus, register: int) -> list[int]:
    return bus.read_i2c_block_data(ADDRESS, register, 2)


def test_current_and_power_read_zero_before_calibration(
    rig: tuple[TwinSMBus, Ina219Model, Supply],
) -> None:
    bus, _, _ = rig
    assert _wire(bus, 0x00) == [0x39, 0x9F]  # reset configuration
    assert _wire(bus, 0x05) == [0, 0]
    assert _wire(bus, 0x01) == [0x27, 0x10]  # shunt 0.1 V / 10 µV = 10000, needs no calibration
    assert _wire(bus, 0x04) == [0, 0]
    assert _wire(bus, 0x03) == [0, 0]


def test_calibration_goes_on_the_wire_high_byte_first(
    rig: tuple[TwinSMBus, Ina219Model, Supply],
) -> None:
    bus, model, _ = rig
    driver = Ina219(bus, shunt_ohms=SHUNT, max_expected_amps=MAX_AMPS)
    driver.configure()
    calibration = math.trunc(0.04096 / (MAX_AMPS / 2**15 * SHUNT))
    assert calibration == 4194
    assert model.registers[5] == calibration
    assert _wire(bus, 0x05) == [0x10, 0x62]


def test_known_state_gives_datasheet_bytes_and_watts(
    rig: tuple[TwinSMBus, Ina219Model, Supply],
) -> None:
    bus, _, _ = rig
    driver = Ina219(bus, shunt_ohms=SHUNT, max_expected_amps=MAX_AMPS)
    reading = driver.read()

    current_lsb = MAX_AMPS / 2**15
    shunt = round(1.0 * SHUNT / 10e-6)
    bus_code = round(5.0 / 0.004)
    current = math.trunc(shunt * 4194 / 4096)
    power = math.trunc(current * bus_code / 5000)
    assert (shunt, bus_code, current, power) == (10000, 1250, 10239, 2559)

    assert _wire(bus, 0x02) == [(bus_code << 3 | 0x02) >> 8, (bus_code << 3 | 0x02) & 0xFF]
    assert _wire(bus, 0x04) == [0x27, 0xFF]
    assert _wire(bus, 0x03) == [0x09, 0xFF]
    assert bus.read_word_data(ADDRESS, 0x04) == 0xFF27  # SMBus word: low byte first

    assert reading.volts == pytest.approx(5.0)
    assert reading.amperes == pytest.approx(current * current_lsb)
    assert reading.watts == pytest.approx(power * 20 * current_lsb)
    assert reading.watts == pytest.approx(4.998, abs=0.001)


def test_negative_current_is_twos_complement(rig: tuple[TwinSMBus, Ina219Model, Supply]) -> None:
    bus, _, supply = rig
    supply.amperes = -1.0
    driver = Ina219(bus, shunt_ohms=SHUNT, max_expected_amps=MAX_AMPS)
    reading = driver.read()
    assert _wire(bus, 0x01) == [0xD8, 0xF0]  # -10000
    assert reading.amperes == pytest.approx(-10239 * MAX_AMPS / 2**15)


def test_shunt_saturates_at_full_scale(rig: tuple[TwinSMBus, Ina219Model, Supply]) -> None:
    bus, _, supply = rig
    supply.amperes = 4.0  # 0.4 V across 0.1 Ω, beyond the ±320 mV range
    driver = Ina219(bus, shunt_ohms=SHUNT, max_expected_amps=MAX_AMPS)
    reading = driver.read()
    assert _wire(bus, 0x01) == [0x7D, 0x00]  # +32000
    assert driver.shunt_volts() == pytest.approx(0.32)
    assert reading.amperes == pytest.approx(math.trunc(32000 * 4194 / 4096) * MAX_AMPS / 2**15)


def test_absent_chip_nacks() -> None:
    with pytest.raises(ChipAbsent, match="INA219 at 0x40"):
        Ina219(TwinSMBus()).read()

"""The PAC1921 driver against the twin's register model, checked byte by byte.

Expected codes are computed here from the datasheet's transfer function (DS20005293):
``code = floor(1023 × value / full_scale)``, 10 bits left-aligned in bits 15:6, high byte
first; VSENSE full scale 100 mV / DI_GAIN, VBUS 32 V / DV_GAIN.
"""

from __future__ import annotations

import errno
import math

import pytest

from racklet.hw import PowerMonitor
from racklet.hw.drivers import ChipAbsent, Pac1921, WrongChip
from racklet.twin import Ina219Model, Pac1921Model, TwinSMBus

ADDRESS = 0x4C
RSENSE = 0.01


class Supply:
    """A settable true electrical state."""

    def __init__(self, volts: float, amperes: float) -> None:
        self.volts = volts
        self.amperes = amperes

    def __call__(self) -> tuple[float, float]:
        return self.volts, self.amperes


def _wire(code: int) -> list[int]:
    word = code << 6
    return [word >> 8, word & 0xFF]


@pytest.fixture
def rig() -> tuple[TwinSMBus, Pac1921Model, Supply]:
    supply = Supply(5.1, 1.0)
    bus = TwinSMBus()
    model = Pac1921Model(supply, rsense_ohms=RSENSE)
    bus.attach(ADDRESS, model)
    return bus, model, supply


def test_default_address_and_protocol() -> None:
    driver: PowerMonitor = Pac1921(TwinSMBus())
    assert isinstance(driver, Pac1921)
    assert driver.address == ADDRESS


def test_configure_programs_gain_and_starts_integration(
    rig: tuple[TwinSMBus, Pac1921Model, Supply],
) -> None:
    bus, model, _ = rig
    assert model.registers[0x01] == 0x0C  # reset value: post filters on, READ state
    assert not model.integrating
    Pac1921(bus, rsense_ohms=RSENSE, di_gain=4, dv_gain=4).configure()
    assert model.registers[0x00] == (2 << 3) | 2  # DI_GAIN 4x, DV_GAIN 4x
    assert model.registers[0x02] == 0xC0  # MXSL = VPOWER free-run
    assert model.registers[0x01] == 0x0C | 0x02 | 0x01  # RIOV + INTEN
    assert model.integrating


def test_results_are_zero_until_integration_starts(
    rig: tuple[TwinSMBus, Pac1921Model, Supply],
) -> None:
    bus, _, _ = rig
    assert bus.read_i2c_block_data(ADDRESS, 0x10, 2) == [0, 0]
    assert bus.read_i2c_block_data(ADDRESS, 0x1D, 2) == [0, 0]


def test_known_state_gives_datasheet_bytes_and_watts(
    rig: tuple[TwinSMBus, Pac1921Model, Supply],
) -> None:
    bus, _, _ = rig
    driver = Pac1921(bus, rsense_ohms=RSENSE, di_gain=4, dv_gain=4)
    driver.configure()

    vbus_fs = 32.0 / 4  # 8 V
    amps_fs = 0.1 / RSENSE / 4  # 2.5 A
    # The nearest code: an ideal converter's transitions sit half an LSB either side.
    vbus_code = math.floor(1023 * 5.1 / vbus_fs + 0.5)
    vsense_code = math.floor(1023 * 1.0 / amps_fs + 0.5)
    vpower_code = math.floor(1023 * (5.1 / vbus_fs) * (1.0 / amps_fs) + 0.5)
    assert (vbus_code, vsense_code, vpower_code) == (652, 409, 261)

    assert bus.read_i2c_block_data(ADDRESS, 0x10, 2) == _wire(vbus_code) == [0xA3, 0x00]
    assert bus.read_i2c_block_data(ADDRESS, 0x12, 2) == _wire(vsense_code) == [0x66, 0x40]
    assert bus.read_i2c_block_data(ADDRESS, 0x1D, 2) == _wire(vpower_code) == [0x41, 0x40]
    # An SMBus word read delivers the first wire byte as the low byte: swapped.
    assert bus.read_word_data(ADDRESS, 0x10) == 0x00A3

    reading = driver.read()
    assert reading.volts == pytest.approx(vbus_code / 1023 * vbus_fs)
    assert reading.amperes == pytest.approx(vsense_code / 1023 * amps_fs)
    assert reading.watts == pytest.approx(vpower_code / 1023 * vbus_fs * amps_fs)
    assert reading.watts == pytest.approx(5.103, abs=0.001)


def test_saturation_at_full_scale_sets_overflow(
    rig: tuple[TwinSMBus, Pac1921Model, Supply],
) -> None:
    bus, _, supply = rig
    driver = Pac1921(bus, rsense_ohms=RSENSE, di_gain=4, dv_gain=4)
    driver.configure()
    supply.amperes = 5.0  # twice the 2.5 A full scale
    assert bus.read_i2c_block_data(ADDRESS, 0x12, 2) == [0xFF, 0xC0]  # 1023 << 6
    assert driver.overflow() == 0x04 | 0x01  # VSOV and VPOV; VBUS is in range
    reading = driver.read()
    assert reading.amperes == pytest.approx(2.5)
    assert reading.watts == pytest.approx(2.5 * 8.0)


def test_absent_chip_nacks(rig: tuple[TwinSMBus, Pac1921Model, Supply]) -> None:
    bus, _, _ = rig
    with pytest.raises(OSError) as raw:
        bus.read_byte_data(0x4D, 0xFD)
    assert raw.value.errno == errno.EREMOTEIO
    with pytest.raises(ChipAbsent, match="0x4d does not answer"):
        Pac1921(bus, address=0x4D).read()


def test_wrong_chip_is_named(rig: tuple[TwinSMBus, Pac1921Model, Supply]) -> None:
    bus, _, supply = rig
    bus.attach(0x41, Ina219Model(supply))
    with pytest.raises(WrongChip, match="not a PAC1921"):
        Pac1921(bus, address=0x41).configure()


def test_reconfigures_after_the_chip_comes_back(
    rig: tuple[TwinSMBus, Pac1921Model, Supply],
) -> None:
    bus, model, _ = rig
    driver = Pac1921(bus, rsense_ohms=RSENSE, di_gain=4, dv_gain=4)
    assert driver.read().watts > 0
    bus.detach(ADDRESS)
    with pytest.raises(ChipAbsent):
        driver.read()
    model.reset()  # re-powered: back in the READ state, results zero
    bus.attach(ADDRESS, model)
    assert driver.read().watts == pytest.approx(261 / 1023 * 20.0)


def test_gain_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="di_gain"):
        Pac1921(TwinSMBus(), di_gain=3)
    with pytest.raises(ValueError, match="dv_gain"):
        Pac1921(TwinSMBus(), dv_gain=64)


def test_driver_errors_are_racklet_and_os_errors() -> None:
    from racklet.errors import RackletError

    with pytest.raises(OSError) as caught:
        Pac1921(TwinSMBus()).read()
    assert isinstance(caught.value, RackletError)
    assert caught.value.errno == errno.EREMOTEIO

"""Driver for the TI INA219 current/power monitor (a common alternative to the PAC1921).

Datasheet facts relied on (TI SBOS448, "INA219 Zerø-Drift, Bidirectional Current/Power
Monitor With I2C Interface", section 8.6 register maps and 8.5 programming):

- Address 0x40 with A0 = A1 = GND. All registers are 16 bits, sent high byte first.
- 00h Configuration, reset 399Fh: bit 15 RST, bit 13 BRNG (1 = 32 V range), bits 12:11 PG
  (shunt range ±40/80/160/320 mV), bits 10:7 BADC, 6:3 SADC, 2:0 MODE (111 = shunt and bus,
  continuous).
- 01h Shunt voltage: signed, LSB 10 µV (±32000 at ±320 mV with PG = /8).
- 02h Bus voltage: bits 15:3 BD12..BD0, LSB 4 mV (32 V range: full scale 8000 codes);
  bit 1 CNVR, bit 0 OVF (math overflow).
- 03h Power: LSB = 20 × Current_LSB. 04h Current: signed, LSB = Current_LSB.
- 05h Calibration, reset 0000h: ``Cal = trunc(0.04096 / (Current_LSB × Rshunt))`` with
  ``Current_LSB = max_expected_amps / 2^15``; bit 0 is not used. Current and power read 0
  until it is written.

Words are read with SMBus word transfers and byte-swapped (SMBus words are little-endian on
the wire). The INA219 has no ID register: presence is the ACK of its address, and the
configuration register must read back what was written.
"""

from __future__ import annotations

from racklet.hw._interfaces import PowerReading, SMBus
from racklet.hw.drivers._words import on_bus, signed16, swap16
from racklet.hw.drivers.errors import ChipAbsent, WrongChip

DEFAULT_ADDRESS = 0x40

REG_CONFIG = 0x00
REG_SHUNT = 0x01
REG_BUS = 0x02
REG_POWER = 0x03
REG_CURRENT = 0x04
REG_CALIBRATION = 0x05

CONFIG_RESET_VALUE = 0x399F
"""32 V bus range, ±320 mV shunt range, 12-bit conversions, shunt and bus continuous."""

BUS_LSB_VOLTS = 0.004
SHUNT_LSB_VOLTS = 10e-6
CALIBRATION_SCALE = 0.04096
POWER_LSB_FACTOR = 20


class Ina219:
    """One INA219, calibrated for ``max_expected_amps`` through ``shunt_ohms``."""

    chip = "INA219"

    def __init__(
        self,
        bus: SMBus,
        address: int = DEFAULT_ADDRESS,
        shunt_ohms: float = 0.1,
        max_expected_amps: float = 3.2,
    ) -> None:
        if shunt_ohms <= 0 or max_expected_amps <= 0:
            raise ValueError("shunt_ohms and max_expected_amps must be positive")
        self._bus = bus
        self.address = address
        self.shunt_ohms = shunt_ohms
        self.current_lsb = max_expected_amps / 32768
        self.calibration = int(CALIBRATION_SCALE / (self.current_lsb * shunt_ohms)) & 0xFFFE
        if self.calibration == 0:
            raise ValueError("shunt_ohms × max_expected_amps is too large to calibrate")
        self.power_lsb = POWER_LSB_FACTOR * self.current_lsb
        self._configured = False

    def _read_word(self, register: int) -> int:
        word = on_bus(
            self.chip, self.address, lambda: self._bus.read_word_data(self.address, register)
        )
        return swap16(word)

    def _write_word(self, register: int, value: int) -> None:
        on_bus(
            self.chip,
            self.address,
            lambda: self._bus.write_word_data(self.address, register, swap16(value)),
        )

    def configure(self) -> None:
        """Write the configuration and the calibration register, then check they stuck."""
        self._configured = False
        self._write_word(REG_CONFIG, CONFIG_RESET_VALUE)
        self._write_word(REG_CALIBRATION, self.calibration)
        config = self._read_word(REG_CONFIG)
        calibration = self._read_word(REG_CALIBRATION)
        if config != CONFIG_RESET_VALUE or calibration != self.calibration:
            raise WrongChip(
                f"device at 0x{self.address:02x} does not behave as an {self.chip}: "
                f"configuration reads 0x{config:04x}, calibration 0x{calibration:04x}"
            )
        self._configured = True

    def read(self) -> PowerReading:
        try:
            if not self._configured:
                self.configure()
            bus = self._read_word(REG_BUS)
            current = signed16(self._read_word(REG_CURRENT))
            power = self._read_word(REG_POWER)
        except ChipAbsent:
            self._configured = False
            raise
        return PowerReading(
            volts=(bus >> 3) * BUS_LSB_VOLTS,
            amperes=current * self.current_lsb,
            watts=power * self.power_lsb,
        )

    def shunt_volts(self) -> float:
        """The raw shunt voltage (needs no calibration)."""
        return signed16(self._read_word(REG_SHUNT)) * SHUNT_LSB_VOLTS

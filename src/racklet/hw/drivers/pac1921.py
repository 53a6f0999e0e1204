"""Driver for the Microchip PAC1921 high-side power monitor on Racklet's BMC board.

Datasheet facts relied on (Microchip DS20005293, "PAC1921 High-Side Power/Current Monitor with
Analog Output"; register layout cross-checked with the Linux IIO driver ``pac1921.c``):

- SMBus address 0x4C (the address of the Linux device-tree binding example and of the
  MikroE PAC1921 click; ADDR_SEL selects others).
- 00h GAIN_CFG (reset 00h): bit 7 I_RES, bit 6 V_RES (0 = 14-bit), bits 5:3 DI_GAIN
  (current gain 2^n, 1x..128x), bits 2:0 DV_GAIN (bus-voltage gain 2^n, 1x..32x).
- 01h INT_CFG (reset 0Ch): bits 7:4 SMPL (2^n samples), bit 3 VSFEN, bit 2 VBFEN (post
  filters), bit 1 RIOV (READ/INT pin overridden by bit 0), bit 0 INTEN (integrate when set).
- 02h CONTROL (reset 00h): bits 7:6 MXSL (11 = VPOWER free-run), bit 2 SLEEP.
- 10h-11h VBUS, 12h-13h VSENSE, 1Dh-1Eh VPOWER results: 10 bits, high byte first, the value
  left-aligned in bits 15:6. 1Ch OVERFLOW_STS: bit 2 VSOV, bit 1 VBOV, bit 0 VPOV.
- Full scale: VSENSE 100 mV / DI_GAIN, VBUS 32 V / DV_GAIN, the result scaled by 1023:
  ``I = code / 1023 * (0.1 V / Rsense) / DI_GAIN``, ``V = code / 1023 * 32 V / DV_GAIN``,
  ``P = code / 1023 * (0.1 V / Rsense) * 32 V / (DI_GAIN * DV_GAIN)``.
- FDh PRODUCT ID 5Bh, FEh MANUFACTURER ID 5Dh, FFh REVISION.
- Configuration is changed in the READ state (INTEN = 0), then INTEN set to integrate.

Results are read with an I2C block read (the chip auto-increments its register pointer), the
way the Linux driver reads them; SMBus word reads would arrive byte-swapped. This driver does
not use the analog OUT pin, the accumulators, or the READ/INT pin.
"""

from __future__ import annotations

from racklet.hw._interfaces import PowerReading, SMBus
from racklet.hw.drivers._words import on_bus
from racklet.hw.drivers.errors import ChipAbsent, HwError, WrongChip

DEFAULT_ADDRESS = 0x4C

REG_GAIN_CFG = 0x00
REG_INT_CFG = 0x01
REG_CONTROL = 0x02
REG_VBUS = 0x10
REG_VSENSE = 0x12
REG_OVERFLOW = 0x1C
REG_VPOWER = 0x1D
REG_PRODUCT_ID = 0xFD
REG_MANUFACTURER_ID = 0xFE
REG_REVISION = 0xFF

PRODUCT_ID = 0x5B
MANUFACTURER_ID = 0x5D

INT_CFG_VSFEN = 0x08
INT_CFG_VBFEN = 0x04
INT_CFG_RIOV = 0x02
INT_CFG_INTEN = 0x01
CONTROL_MXSL_VPOWER_FREE_RUN = 0xC0

RESULT_FULL_SCALE = 1023
VSENSE_FULL_SCALE_VOLTS = 0.1
VBUS_FULL_SCALE_VOLTS = 32.0

_DI_GAINS = (1, 2, 4, 8, 16, 32, 64, 128)
_DV_GAINS = (1, 2, 4, 8, 16, 32)


def result_code(high: int, low: int) -> int:
    """The 10-bit result held left-aligned in a big-endian register pair."""
    return ((high << 8) | low) >> 6


class Pac1921:
    """One PAC1921 on an SMBus, in VPOWER free-run mode.

    No bus traffic in the constructor: :meth:`configure` checks the chip's identity and
    programs it, and :meth:`read` configures on first use (and again after the chip vanished,
    e.g. a unit was pulled and re-inserted, since a re-powered chip is back at its reset
    values).
    """

    chip = "PAC1921"

    def __init__(
        self,
        bus: SMBus,
        address: int = DEFAULT_ADDRESS,
        rsense_ohms: float = 0.01,
        di_gain: int = 1,
        dv_gain: int = 1,
        samples: int = 1,
    ) -> None:
        if rsense_ohms <= 0:
            raise ValueError(f"rsense_ohms must be positive, got {rsense_ohms}")
        if di_gain not in _DI_GAINS:
            raise ValueError(f"di_gain must be one of {_DI_GAINS}, got {di_gain}")
        if dv_gain not in _DV_GAINS:
            raise ValueError(f"dv_gain must be one of {_DV_GAINS}, got {dv_gain}")
        if samples < 1 or samples > 2048 or samples & (samples - 1):
            raise ValueError(f"samples must be a power of two in 1..2048, got {samples}")
        self._bus = bus
        self.address = address
        self.rsense_ohms = rsense_ohms
        self.di_gain = di_gain
        self.dv_gain = dv_gain
        self.samples = samples
        self._configured = False

    @property
    def full_scale_amperes(self) -> float:
        return VSENSE_FULL_SCALE_VOLTS / self.rsense_ohms / self.di_gain

    @property
    def full_scale_volts(self) -> float:
        return VBUS_FULL_SCALE_VOLTS / self.dv_gain

    @property
    def full_scale_watts(self) -> float:
        return self.full_scale_amperes * self.full_scale_volts

    def _read_byte(self, register: int) -> int:
        return on_bus(
            self.chip, self.address, lambda: self._bus.read_byte_data(self.address, register)
        )

    def _write_byte(self, register: int, value: int) -> None:
        on_bus(
            self.chip,
            self.address,
            lambda: self._bus.write_byte_data(self.address, register, value),
        )

    def _read_result(self, register: int) -> int:
        data = on_bus(
            self.chip,
            self.address,
            lambda: self._bus.read_i2c_block_data(self.address, register, 2),
        )
        if len(data) != 2:
            raise HwError(f"{self.chip} at 0x{self.address:02x}: short read of {len(data)} bytes")
        return result_code(data[0], data[1])

    def configure(self) -> None:
        """Check the chip's ID registers, program gains and start free-run integration."""
        self._configured = False
        product = self._read_byte(REG_PRODUCT_ID)
        manufacturer = self._read_byte(REG_MANUFACTURER_ID)
        if (product, manufacturer) != (PRODUCT_ID, MANUFACTURER_ID):
            raise WrongChip(
                f"device at 0x{self.address:02x} is not a {self.chip}: product ID "
                f"0x{product:02x}, manufacturer ID 0x{manufacturer:02x} (expected "
                f"0x{PRODUCT_ID:02x}, 0x{MANUFACTURER_ID:02x})"
            )
        int_cfg = (
            (self.samples.bit_length() - 1) << 4 | INT_CFG_VSFEN | INT_CFG_VBFEN | INT_CFG_RIOV
        )
        self._write_byte(REG_INT_CFG, int_cfg)  # READ state while reconfiguring
        gain = (_DI_GAINS.index(self.di_gain) << 3) | _DV_GAINS.index(self.dv_gain)
        self._write_byte(REG_GAIN_CFG, gain)
        self._write_byte(REG_CONTROL, CONTROL_MXSL_VPOWER_FREE_RUN)
        self._write_byte(REG_INT_CFG, int_cfg | INT_CFG_INTEN)
        self._configured = True

    def read(self) -> PowerReading:
        """Bus volts, current and power, decoded with the configured full-scale ranges."""
        try:
            if not self._configured:
                self.configure()
            vbus = self._read_result(REG_VBUS)
            vsense = self._read_result(REG_VSENSE)
            vpower = self._read_result(REG_VPOWER)
        except ChipAbsent:
            self._configured = False
            raise
        return PowerReading(
            volts=vbus / RESULT_FULL_SCALE * self.full_scale_volts,
            amperes=vsense / RESULT_FULL_SCALE * self.full_scale_amperes,
            watts=vpower / RESULT_FULL_SCALE * self.full_scale_watts,
        )

    def overflow(self) -> int:
        """The OVERFLOW_STS bits (VSOV, VBOV, VPOV): a reading at full scale is clipped."""
        return self._read_byte(REG_OVERFLOW) & 0x07

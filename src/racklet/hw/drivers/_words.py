"""Byte-order helpers shared by the drivers, and NACK translation.

SMBus word transfers put the low byte first on the wire; PAC1921 and INA219 send the high
byte first. ``smbus2.SMBus.read_word_data`` therefore hands back the chip's value with its
bytes swapped, and a driver must swap it back (and swap before ``write_word_data``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from racklet.hw.drivers.errors import ChipAbsent, HwError

T = TypeVar("T")


def swap16(word: int) -> int:
    """Exchange the two bytes of a 16-bit word."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def signed16(value: int) -> int:
    """Two's-complement interpretation of a 16-bit register."""
    return value - 0x10000 if value & 0x8000 else value


def on_bus(chip: str, address: int, operation: Callable[[], T]) -> T:
    """Run one bus transfer, naming the chip when it fails."""
    try:
        return operation()
    except OSError as exc:
        if exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO):
            raise ChipAbsent(f"{chip} at 0x{address:02x} does not answer (NACK)") from exc
        raise HwError(f"{chip} at 0x{address:02x}: bus error: {exc}") from exc

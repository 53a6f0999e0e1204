"""The twin's I2C bus: SMBus transfers turned into the bytes a device sees on the wire.

A device model implements :class:`I2cDevice` at byte level (a register pointer write, then
data bytes in wire order), so byte order is the device's business exactly as on silicon:
``read_word_data`` returns the first wire byte as the low byte, as SMBus defines. An address
with no device attached NACKs with ``OSError(EREMOTEIO)``, as Linux i2c-dev reports it.
"""

from __future__ import annotations

import errno
import os
from typing import Protocol


class I2cDevice(Protocol):
    """A register-level model of one chip."""

    def write(self, register: int, data: bytes) -> None:
        """A write transaction: the register pointer byte, then ``data`` in wire order."""
        ...

    def read(self, register: int, length: int) -> bytes:
        """Set the pointer to ``register``, then read ``length`` bytes in wire order."""
        ...


def _nack(address: int) -> OSError:
    return OSError(errno.EREMOTEIO, f"{os.strerror(errno.EREMOTEIO)} (no ACK from 0x{address:02x})")


class TwinSMBus:
    """An SMBus (``smbus2.SMBus``-shaped) with device models attached by 7-bit address."""

    def __init__(self) -> None:
        self._devices: dict[int, I2cDevice] = {}
        self._closed = False

    def attach(self, address: int, device: I2cDevice) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"0x{address:02x} is not a usable 7-bit I2C address")
        self._devices[address] = device

    def detach(self, address: int) -> None:
        self._devices.pop(address, None)

    def _device(self, address: int) -> I2cDevice:
        if self._closed:
            raise OSError(errno.EBADF, "bus is closed")
        device = self._devices.get(address)
        if device is None:
            raise _nack(address)
        return device

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._device(i2c_addr).read(register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._device(i2c_addr).write(register, bytes([value & 0xFF]))

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        first, second = self._device(i2c_addr).read(register, 2)
        return first | (second << 8)

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._device(i2c_addr).write(register, bytes([value & 0xFF, (value >> 8) & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        if not 1 <= length <= 32:
            raise ValueError(f"I2C block length must be 1..32, got {length}")
        return list(self._device(i2c_addr).read(register, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None:
        if len(data) > 32:
            raise ValueError(f"I2C block length must be at most 32, got {len(data)}")
        self._device(i2c_addr).write(register, bytes(b & 0xFF for b in data))

    def close(self) -> None:
        self._closed = True

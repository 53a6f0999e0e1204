"""Chip drivers written once against :class:`racklet.hw.SMBus`: the twin's bus or smbus2."""

from racklet.hw.drivers.errors import ChipAbsent, HwError, WrongChip
from racklet.hw.drivers.ina219 import Ina219
from racklet.hw.drivers.pac1921 import Pac1921

__all__ = ["ChipAbsent", "HwError", "Ina219", "Pac1921", "WrongChip"]

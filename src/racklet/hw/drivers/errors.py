"""Errors of the chip drivers.

::

    RackletError, OSError
    └── HwError              a chip did not answer, or answered as another chip
        ├── ChipAbsent       the address NACKs (nothing there, or the slot is empty);
        │                    errno EREMOTEIO, as the bus reported it
        └── WrongChip        something answers, but its ID registers name another part

``HwError`` is also an ``OSError``: code that already treats a failing bus transfer as an
I/O error (``except OSError``) keeps working when it calls a driver instead of the bus.
"""

import errno

from racklet.errors import RackletError


class HwError(RackletError, OSError):
    """A hardware device misbehaved or could not be reached."""


class ChipAbsent(HwError):
    """No device acknowledged its address on the bus."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EREMOTEIO


class WrongChip(HwError):
    """The device at the address is not the chip the driver drives."""

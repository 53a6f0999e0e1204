"""Errors of the digital twin.

::

    RackletError
    └── TwinError           misuse of the twin: unknown unit or profile, bad description
"""

from racklet.errors import RackletError


class TwinError(RackletError):
    """The twin was asked for something it does not model."""

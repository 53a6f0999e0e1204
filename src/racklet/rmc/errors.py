"""Errors of the RMC service.

::

    RmcError (racklet.errors.RackletError)
    ├── RmcConfigError        the sources, accounts or cooling zones given to the RMC are unusable
    └── SatelliteUnreachable  a unit BMC did not answer (transport failure or timeout)

Error *responses* to Redfish clients are not exceptions of this tree: they are Redfish error
bodies (``racklet.rmc._messages``).
"""

from __future__ import annotations

from racklet.errors import RackletError


class RmcError(RackletError):
    """Base of every RMC error."""


class RmcConfigError(RmcError):
    """The RMC's configuration (sources, accounts file) cannot be used."""


class SatelliteUnreachable(RmcError):
    """A unit BMC did not answer the RMC."""

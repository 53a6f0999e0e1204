"""Errors of the Redfish client.

::

    RackletError
    └── RedfishClientError
        ├── RedfishUnreachable   transport: refused, timed out, TLS failure
        │   └── RedfishUntrusted the BMC's certificate refused at the handshake
        └── RedfishError         the service answered with an error status (``status``)
"""

from __future__ import annotations

from racklet.errors import RackletError


class RedfishClientError(RackletError):
    """Base of the Redfish client's errors."""


class RedfishUnreachable(RedfishClientError):
    """The BMC could not be reached (connection, TLS or timeout)."""


class RedfishUntrusted(RedfishUnreachable):
    """Something answered at the BMC's address with a certificate this client refuses: not
    from the rack CA, not the identity pinned for that BMC, revoked, or expired. Not an
    outage: a board that holds no identity of this rack, or one that is no longer trusted."""


class RedfishError(RedfishClientError):
    """The BMC answered with an HTTP error; ``message`` comes from its Redfish error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message

"""Errors of the BMC service.

::

    RackletError
    └── BmcError                  the BMC refused or could not do something
        ├── AccountsError         accounts.json missing, unreadable or malformed
        ├── StateError            a file of the BMC's state dir (trust, identity) is unusable
        ├── LoginThrottled        a source failed to log in too often: it must wait
        ├── ImageRejected         a pushed firmware image failed verification
        └── SlotBusy              a unit's slots cannot take a pushed image now (its state)

Redfish clients never see these types: the HTTP layer answers with Redfish error bodies
(:mod:`racklet.bmc._http.registry`, raised as its ``RedfishErrorReply``), and the backplane
link answers ``{"ok": false, "error": ...}``.
"""

from racklet.errors import RackletError


class BmcError(RackletError):
    """Base of every error the BMC service raises on purpose."""


class AccountsError(BmcError):
    """The BMC's accounts file is missing, unreadable or malformed."""


class StateError(BmcError):
    """A file in the BMC's state dir (trust bundle, held identity) is missing or malformed."""


class ImageRejected(BmcError):
    """An image verifier could not vouch for a pushed image; the message says why."""


class SlotBusy(BmcError):
    """A verified image cannot go to the unit's slots now (a trial runs, nothing is committed
    yet); the message says why. Nothing was written."""


class LoginThrottled(BmcError):
    """A source that keeps failing to log in must wait ``retry_after`` seconds (HTTP 503)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins from this source; retry in {retry_after} s")
        self.retry_after = retry_after

"""The BMC service (Redfish over HTTPS, OpenMetrics, the backplane link) of one unit.

It runs unchanged over the twin's board or a real one: everything it touches is a
``racklet.hw.BmcBoard``. See ``BmcService`` for what it starts and ``docs/architecture.md``
for the files of its state dir.
"""

from racklet.bmc._accounts import write_accounts
from racklet.bmc._service import BmcService, BmcSettings
from racklet.bmc.errors import AccountsError, BmcError, StateError

__all__ = [
    "AccountsError",
    "BmcError",
    "BmcService",
    "BmcSettings",
    "StateError",
    "write_accounts",
]

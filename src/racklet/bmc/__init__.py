"""The BMC service (Redfish over HTTPS, OpenMetrics, the backplane link) of one unit.

It runs unchanged over the twin's board or a real one: everything it touches is a
``racklet.hw.BmcBoard``. See ``BmcService`` for what it starts and ``docs/architecture.md``
for the files of its state dir. Inside, the Redfish resources are one package per family
(``_resources``), over the HTTP plumbing (``_http``) and the BMC's state (``_state``); see
``docs/bmc.md``, "How the code is laid out".
"""

from racklet.bmc._host import BmcHost
from racklet.bmc._service import BmcService, BmcSettings
from racklet.bmc._state.accounts import new_password, write_accounts
from racklet.bmc._state.bmc_slots import BmcFirmwareSlots, build_manifest, parse_manifest
from racklet.bmc._state.firmware import (
    BootSlot,
    ImageUpload,
    ImageVerifier,
    SlotProvider,
    StagedSlots,
    VerifiedImage,
    reject_all,
)
from racklet.bmc._state.unit_slots import UnitSlots
from racklet.bmc._tuf_verifier import TufImageVerifier
from racklet.bmc.errors import AccountsError, BmcError, ImageRejected, SlotBusy, StateError
from racklet.wire import FIRMWARE_CHANNEL, firmware_oem_parameters

__all__ = [
    "FIRMWARE_CHANNEL",
    "AccountsError",
    "BmcError",
    "BmcFirmwareSlots",
    "BmcHost",
    "BmcService",
    "BmcSettings",
    "BootSlot",
    "ImageRejected",
    "ImageUpload",
    "ImageVerifier",
    "SlotBusy",
    "SlotProvider",
    "StagedSlots",
    "StateError",
    "TufImageVerifier",
    "UnitSlots",
    "VerifiedImage",
    "build_manifest",
    "firmware_oem_parameters",
    "new_password",
    "parse_manifest",
    "reject_all",
    "write_accounts",
]

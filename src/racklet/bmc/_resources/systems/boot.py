"""The ComputerSystem ``Boot`` property: the boot-source override, applied to the board's
boot-source select.

Racklet has no TFTP (the network is hostile), so both network targets mean the boot ROM's
HTTPS boot.
"""

from __future__ import annotations

from typing import Annotated, Literal

from racklet.bmc._http.declared import WRITABLE, Declared
from racklet.bmc._state.context import BmcContext
from racklet.hw import BootSource

# Redfish boot targets -> the board's boot-source select.
TARGET_SOURCE = {
    "Pxe": BootSource.NETWORK,
    "UefiHttp": BootSource.NETWORK,
    "SDCard": BootSource.SD_CARD,
    "Usb": BootSource.USB,
}
Target = Literal["None", "Pxe", "UefiHttp", "SDCard", "Usb"]
Enabled = Literal["Disabled", "Continuous"]


class Boot(Declared):
    """What Redfish shows (and a PATCH may change) of the boot override."""

    BootSourceOverrideTarget: Annotated[Target, WRITABLE]
    BootSourceOverrideEnabled: Annotated[Enabled, WRITABLE]


class BootOverride:
    """The override as the BMC holds it; :meth:`apply` sets the board's boot select."""

    def __init__(self, ctx: BmcContext) -> None:
        self._ctx = ctx
        self.default = ctx.board.boot_select.get()
        self.target: Target = "None"
        self.enabled: Enabled = "Disabled"

    def apply(self, target: Target, enabled: Enabled) -> None:
        self.target, self.enabled = target, enabled
        active = enabled != "Disabled" and target != "None"
        self._ctx.board.boot_select.set(TARGET_SOURCE[target] if active else self.default)
        self._ctx.log.info(f"boot override {target} {enabled}")

    def declared(self) -> Boot:
        return Boot(BootSourceOverrideTarget=self.target, BootSourceOverrideEnabled=self.enabled)

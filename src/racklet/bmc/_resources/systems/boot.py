"""The ComputerSystem ``Boot`` property: the boot-source override, applied to the board's
boot-source select.

Racklet has no TFTP (the network is hostile), so both network targets mean the boot ROM's
HTTPS boot. ``Once`` is consumed by the next boot: when the unit next powers on, Redfish
shows ``Disabled`` again; the board's select line keeps the target until that boot reports
progress (its boot ROM has read the line by then) or the unit goes off, then returns to
the default.

``BootSourceOverrideMode`` is ``Legacy``, which the schema defines as "the system boots in
non-UEFI boot mode": a Pi's EEPROM bootloader (what Racklet serves as ``BiosVersion``) is
no UEFI firmware. A PATCH may write ``Legacy`` (tools send the mode with the target);
``UEFI`` is not in the list.
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
Enabled = Literal["Disabled", "Once", "Continuous"]


class Boot(Declared):
    """What Redfish shows (and a PATCH may change) of the boot override."""

    BootSourceOverrideTarget: Annotated[Target, WRITABLE]
    BootSourceOverrideEnabled: Annotated[Enabled, WRITABLE]
    BootSourceOverrideMode: Annotated[Literal["Legacy"], WRITABLE] = "Legacy"


class BootOverride:
    """The override as the BMC holds it; :meth:`apply` sets the board's boot select."""

    def __init__(self, ctx: BmcContext) -> None:
        self._ctx = ctx
        self.default = ctx.board.boot_select.get()
        self.target: Target = "None"
        self.enabled: Enabled = "Disabled"
        self._latched = False  # a Once override this boot is using: release the line later
        ctx.boot.watchers.append(self._boot_event)

    def apply(self, target: Target, enabled: Enabled) -> None:
        self.target, self.enabled = target, enabled
        self._latched = False
        active = enabled != "Disabled" and target != "None"
        self._ctx.board.boot_select.set(TARGET_SOURCE[target] if active else self.default)
        self._ctx.log.info(f"boot override {target} {enabled}")

    def _boot_event(self, what: str) -> None:
        if what == "powered_on" and self.enabled == "Once":
            self.enabled, self._latched = "Disabled", self.target != "None"
            self._ctx.log.info(f"boot override {self.target} Once used by this boot")
        elif what != "powered_on" and self._latched:
            self._latched = False
            self._ctx.board.boot_select.set(self.default)

    def declared(self) -> Boot:
        return Boot(BootSourceOverrideTarget=self.target, BootSourceOverrideEnabled=self.enabled)

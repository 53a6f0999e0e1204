"""``UpdateService/FirmwareInventory``: what firmware the BMC holds, as SoftwareInventory.

``bmc`` is the running BMC firmware, ``bmc-standby`` its other slot (when the BMC can update
itself), ``slot-a``/``slot-b`` the unit's boot slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from racklet.bmc._http.declared import Resource
from racklet.bmc._http.odata import link
from racklet.bmc._http.uris import FIRMWARE_INVENTORY as INVENTORY
from racklet.bmc._state.ab import AbRecord
from racklet.bmc._state.bmc_runtime import BmcFirmware
from racklet.bmc._state.context import MANAGER_ID, BmcContext
from racklet.bmc._state.firmware import BootSlot

BMC_FIRMWARE = MANAGER_ID
BMC_STANDBY = f"{MANAGER_ID}-standby"


class SoftwareInventory(Resource):
    redfish_type = "SoftwareInventory"

    Id: str
    Name: str
    Description: str
    SoftwareId: str | None = None
    Manufacturer: str | None = None
    Version: str | None = None
    LowestSupportedVersion: str | None = None
    Updateable: bool
    WriteProtected: bool
    Status: dict[str, str]
    RelatedItem: list[dict[str, str]]


def slot_id(slot: BootSlot) -> str:
    return f"slot-{slot.name.lower()}"


def slot_body(ctx: BmcContext, slot: BootSlot, installed: str | None = None) -> dict[str, Any]:
    """A unit boot slot; ``installed`` is the version the unit's A/B state records in it."""
    state = "Enabled" if slot.active else "StandbySpare"
    if not slot.present:
        state = "Absent"
    body = SoftwareInventory(
        Id=slot_id(slot),
        Name=f"Boot slot {slot.name} of {ctx.unit}",
        Description="active" if slot.active else "inactive",
        Manufacturer="Racklet",  # OS images are built and signed by the rack's release
        Version=slot.version or installed,
        Updateable=slot.updateable,
        WriteProtected=not slot.updateable,
        Status={"State": state, "Health": "OK"},
        RelatedItem=[link(ctx.system_path)],
    )
    return body.body(f"{INVENTORY}/{slot_id(slot)}")


def bmc_body(ctx: BmcContext, bmc: BmcFirmware | None) -> dict[str, Any]:
    """The running BMC firmware; with slots, which one and whether it is on trial."""
    slots = bmc.slots if bmc is not None else None
    description = "running"
    if slots is not None:
        trial = "on trial" if slots.trying else "committed"
        description = f"running, slot {slots.running}, {trial}"
    body = SoftwareInventory(
        Id=BMC_FIRMWARE,
        Name="BMC firmware",
        Description=description,
        SoftwareId="racklet-bmc",
        Manufacturer="Racklet",
        Version=ctx.firmware_version,
        Updateable=False,
        WriteProtected=True,
        Status={"State": "Enabled", "Health": "Warning" if slots and slots.trying else "OK"},
        RelatedItem=[link(ctx.manager_path)],
    )
    if slots is not None:
        # The committed version is the floor: while the running one is on trial they differ.
        body.LowestSupportedVersion = slots.committed_version
    return body.body(f"{INVENTORY}/{BMC_FIRMWARE}")


def standby_body(ctx: BmcContext, bmc: BmcFirmware) -> dict[str, Any]:
    """The BMC firmware slot not running: where a push writes, what a reset would try."""
    slots = bmc.slots
    slot = slots.standby
    version, failure = slots.version(slot), slots.failure(slot)
    state = "StandbySpare" if version is not None else "Absent"
    note = "committed fallback" if slot == slots.committed else "not committed"
    body = SoftwareInventory(
        Id=BMC_STANDBY,
        Name="BMC firmware, standby slot",
        Description=f"slot {slot}, {note}" + (f"; given up: {failure}" if failure else ""),
        SoftwareId="racklet-bmc",
        Manufacturer="Racklet",
        Updateable=slot != slots.committed,
        WriteProtected=slot == slots.committed,
        Status={"State": state, "Health": "Critical" if failure else "OK"},
        RelatedItem=[link(ctx.manager_path)],
    )
    body.Version = version  # null: the slot holds nothing
    body.LowestSupportedVersion = slots.committed_version
    return body.body(f"{INVENTORY}/{BMC_STANDBY}")


def installed_versions(record: AbRecord) -> dict[str, str]:
    """Slot name -> the version the unit's A/B state says is in it (committed or on trial)."""
    found = {}
    if record.committed is not None:
        found[record.committed.slot] = record.committed.version
    if record.trying is not None:
        found[record.trying.slot] = record.trying.version
    return found


def inventory(
    ctx: BmcContext,
    bmc: BmcFirmware | None,
    slots: Sequence[BootSlot],
    installed: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every inventory item by id."""
    items = {BMC_FIRMWARE: bmc_body(ctx, bmc)}
    if bmc is not None:
        items[BMC_STANDBY] = standby_body(ctx, bmc)
    for slot in slots:
        items[slot_id(slot)] = slot_body(ctx, slot, (installed or {}).get(slot.name))
    return items

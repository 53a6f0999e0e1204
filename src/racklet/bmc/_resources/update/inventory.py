"""``UpdateService/FirmwareInventory``: what firmware the BMC holds, as SoftwareInventory.

``bmc`` is the running BMC firmware (``Updateable`` when the BMC can update itself: a push
naming it writes the standby slot), ``bmc-standby`` its other slot (when the BMC can update
itself), ``slot-a``/``slot-b`` the unit's boot slots: ``Updateable`` when the BMC writes the
unit's slots (a push naming either writes the one not committed), the committed one
``WriteProtected``. Where the BMC keeps the unit's A/B
state, a boot slot says what that state holds: its version, ``Active`` for the slot the unit
runs from, ``Staged`` for a trial the next boot tries, Health ``Warning`` while the running
slot is on trial (not committed, as the BMC's own firmware shows it), and the rollback
floor as ``LowestSupportedVersion``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    Active: bool | None = None
    Staged: bool | None = None
    Status: dict[str, str]
    RelatedItem: list[dict[str, str]]


def slot_id(slot: BootSlot) -> str:
    return f"slot-{slot.name.lower()}"


@dataclass(frozen=True)
class AbSlots:
    """What the unit's A/B state says of its boot slots."""

    installed: dict[str, str] = field(default_factory=dict)
    """Slot name -> the version in it (committed, on trial, or left by the last commit)."""
    booted: str | None = None
    """The slot the unit runs from: the trial's once its boot took the flag, else the
    committed one."""
    trial: str | None = None
    committed: str | None = None
    floor: str | None = None
    """The rollback floor: no version below it is accepted."""


def slot_body(ctx: BmcContext, slot: BootSlot, ab: AbSlots | None = None) -> dict[str, Any]:
    """A unit boot slot, as the unit's A/B state (``ab``) or else the slot provider says."""
    active = slot.active if ab is None or ab.booted is None else ab.booted == slot.name
    version = slot.version or (ab.installed.get(slot.name) if ab is not None else None)
    state = "Enabled" if active else "StandbySpare"
    if not slot.present and version is None:
        state = "Absent"
    trial = ab is not None and ab.trial == slot.name
    description = "active" if active else "inactive"
    if ab is not None and ab.booted is not None:
        description = _slot_role(slot.name, ab, active, version)
    body = SoftwareInventory(
        Id=slot_id(slot),
        Name=f"Boot slot {slot.name} of {ctx.unit}",
        Description=description,
        Manufacturer="Racklet",  # OS images are built and signed by the rack's release
        Version=version,
        LowestSupportedVersion=ab.floor if ab is not None else None,
        Updateable=slot.updateable,
        # The slot the unit runs from (committed) is never written over: a push naming it
        # writes the other one and tries it, as ``bmc`` is written through ``bmc-standby``.
        WriteProtected=not slot.updateable or _committed(slot, ab),
        Active=active,
        Staged=trial and not active,
        Status={"State": state, "Health": "Warning" if trial and active else "OK"},
        RelatedItem=[link(ctx.system_path)],
    )
    return body.body(f"{INVENTORY}/{slot_id(slot)}")


def _committed(slot: BootSlot, ab: AbSlots | None) -> bool:
    if ab is None or ab.committed is None:
        return slot.active
    return ab.committed == slot.name


def _slot_role(name: str, ab: AbSlots, active: bool, version: str | None) -> str:
    if ab.trial == name:
        return "on trial, running" if active else "on trial at the next boot"
    if ab.committed == name:
        return "committed, running" if active else "committed, the fallback of the trial"
    return "previous version, inactive" if version is not None else "empty"


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
        # With two slots the Update Service replaces this firmware (a push naming ``bmc``
        # writes the standby slot, then a reset tries it); the running image itself is never
        # written over, so it is write-protected all the same.
        Updateable=slots is not None,
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


def ab_slots(record: AbRecord) -> AbSlots:
    """The boot slots as the unit's A/B state (``ab.json``) records them."""
    found = {}
    if record.fallback is not None:
        found[record.fallback.slot] = record.fallback.version
    if record.committed is not None:
        found[record.committed.slot] = record.committed.version
    trial = record.trying
    if trial is not None:
        found[trial.slot] = trial.version
    committed = record.committed.slot if record.committed is not None else None
    # The flag is taken by the boot that tries the slot: until then the committed one runs.
    booted = trial.slot if trial is not None and not record.tryboot else committed
    return AbSlots(
        installed=found,
        booted=booted,
        trial=trial.slot if trial is not None else None,
        committed=committed,
        floor=record.rollback_version,
    )


def inventory(
    ctx: BmcContext,
    bmc: BmcFirmware | None,
    slots: Sequence[BootSlot],
    ab: AbSlots | None = None,
) -> dict[str, dict[str, Any]]:
    """Every inventory item by id."""
    items = {BMC_FIRMWARE: bmc_body(ctx, bmc)}
    if bmc is not None:
        items[BMC_STANDBY] = standby_body(ctx, bmc)
    for slot in slots:
        items[slot_id(slot)] = slot_body(ctx, slot, ab)
    return items

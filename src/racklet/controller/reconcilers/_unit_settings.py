"""A unit's settings on its BMC other than power: the locate LED and the boot override.

``spec.locate`` and ``spec.bootOverride`` are desired state like ``spec.power``: when one is
set and the BMC shows otherwise, one PATCH puts it right (the chassis's
``LocationIndicatorActive``, the system's ``Boot.BootSourceOverrideTarget`` and
``BootSourceOverrideEnabled``); unset, the BMC is left as it is. The dashboard's buttons and
``racklet apply`` both only write the spec.

A ``Once`` override is cleared by the BMC when the unit boots from it, so it is sent once per
target (``status.bootOnceSent``), not again whenever the BMC shows it spent. A refusal (a
target this BMC does not offer, say) becomes condition ``Settings=False`` with the BMC's
message and one event; it is tried again only when the spec changes.
"""

from __future__ import annotations

from typing import Any

from racklet.api import ComputeUnit, ComputeUnitStatus, Event, find_condition, set_condition
from racklet.controller.reconcilers._unit_observe import Bmc
from racklet.controller.reconcilers._unit_status import unit_event
from racklet.redfish import RedfishClientError, RedfishError, SystemView


def _boot_patch(unit: ComputeUnit, system: SystemView, status: ComputeUnitStatus) -> Any:
    want = unit.spec.boot_override
    if want is None:
        status.boot_once_sent = None
        return None
    if want.enabled != "Once":
        status.boot_once_sent = None
        if system.boot_override == (want.target, want.enabled):
            return None
    elif status.boot_once_sent == want.target:
        return None
    return {
        "Boot": {"BootSourceOverrideTarget": want.target, "BootSourceOverrideEnabled": want.enabled}
    }


async def apply_settings(
    unit: ComputeUnit,
    bmc: Bmc,
    system: SystemView,
    locate: bool | None,
    status: ComputeUnitStatus,
    events: list[Event],
) -> bool:
    """PATCH what differs (``locate``: the LED as last read); True if anything was sent."""
    name = unit.metadata.name
    wanted: list[tuple[str, str, dict[str, Any]]] = []
    if unit.spec.locate is not None and locate is not None and unit.spec.locate != locate:
        body = {"LocationIndicatorActive": unit.spec.locate}
        wanted.append(("locate LED", f"/redfish/v1/Chassis/{name}", body))
    boot = _boot_patch(unit, system, status)
    if boot is not None:
        wanted.append(("boot override", f"/redfish/v1/Systems/{name}", boot))
    generation = unit.metadata.generation
    refused = find_condition(status.conditions, "Settings")
    if (
        refused is not None
        and refused.status == "False"
        and refused.observed_generation == generation
    ):
        return False  # refused at this generation: wait for the spec to change
    sent = False
    for what, path, body in wanted:
        try:
            await bmc.patch(path, body)
        except RedfishError as exc:
            message = f"the BMC refused the {what}: {exc}"
            set_condition(
                status.conditions, "Settings", "False", "BmcRefused", message,
                observed_generation=generation,
            )  # fmt: skip
            events.append(unit_event(name, "SettingsRefused", message, "Warning"))
            return sent
        except RedfishClientError:
            return sent  # the BMC did not answer: the next look tries again
        sent = True
        override = unit.spec.boot_override
        if what == "boot override" and override is not None and override.enabled == "Once":
            status.boot_once_sent = override.target
        events.append(unit_event(name, "SettingsApplied", f"{what} set: {body}"))
    if sent and refused is not None:
        set_condition(
            status.conditions, "Settings", "True", "Applied", "", observed_generation=generation
        )
    return sent

"""Typed views of the few Redfish resources the controller reads (no I/O here).

Each view declares the fields it uses and is built from the JSON the BMC returned; fields the
BMC leaves out become ``None`` rather than errors, since Redfish makes most of them optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class SystemView:
    """``/redfish/v1/Systems/{id}``: power state, boot progress and health."""

    power_state: str | None
    boot_last_state: str | None
    boot_oem_last_state: str | None
    state: str | None
    health: str | None
    messages: tuple[str, ...]
    boot_override: tuple[str, str] | None = None
    """``Boot.BootSourceOverrideTarget`` and ``BootSourceOverrideEnabled``, if shown."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SystemView:
        conditions = _get(data, "Status", "Conditions") or []
        target = _get(data, "Boot", "BootSourceOverrideTarget")
        enabled = _get(data, "Boot", "BootSourceOverrideEnabled")
        return cls(
            power_state=_get(data, "PowerState"),
            boot_last_state=_get(data, "BootProgress", "LastState"),
            boot_oem_last_state=_get(data, "BootProgress", "OemLastState"),
            state=_get(data, "Status", "State"),
            health=_get(data, "Status", "Health"),
            messages=tuple(
                str(c["Message"]) for c in conditions if isinstance(c, dict) and c.get("Message")
            ),
            boot_override=(
                (target, enabled) if isinstance(target, str) and isinstance(enabled, str) else None
            ),
        )

    @property
    def boot_failed(self) -> bool:
        return self.boot_last_state == "OEM" and self.boot_oem_last_state == "BootFailed"


@dataclass(frozen=True)
class OsSlotView:
    """``UpdateService/FirmwareInventory/slot-a`` (or ``-b``): one of the unit's OS slots.

    ``booted`` is ``Active``; a slot is on ``trial`` when ``Staged`` (the next boot tries it)
    or when it runs with Health ``Warning`` (not committed yet); the rollback ``floor`` is
    ``LowestSupportedVersion``."""

    name: str
    version: str | None
    booted: bool
    trial: bool
    floor: str | None
    note: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OsSlotView:
        ident = str(_get(data, "Id") or "")
        booted = _get(data, "Active") is True
        trial = _get(data, "Staged") is True or (
            booted and _get(data, "Status", "Health") == "Warning"
        )
        version, floor = _get(data, "Version"), _get(data, "LowestSupportedVersion")
        note = _get(data, "Description")
        return cls(
            name=ident.removeprefix("slot-").upper(),
            version=version if isinstance(version, str) and version else None,
            booted=booted,
            trial=trial,
            floor=floor if isinstance(floor, str) and floor else None,
            note=note if isinstance(note, str) else None,
        )


@dataclass(frozen=True)
class ChassisView:
    """``/redfish/v1/Chassis/{id}``: presence and the unit's power ceiling."""

    state: str | None
    max_power_watts: float | None
    locate: bool | None = None
    """The locate LED (``LocationIndicatorActive``), if the chassis has one."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChassisView:
        locate = _get(data, "LocationIndicatorActive")
        return cls(
            state=_get(data, "Status", "State"),
            max_power_watts=_number(_get(data, "MaxPowerWatts")),
            locate=locate if isinstance(locate, bool) else None,
        )

    @property
    def absent(self) -> bool:
        return self.state == "Absent"


@dataclass(frozen=True)
class PowerLimitView:
    """``PowerLimitWatts`` (the unit's power cap, a ``Control`` excerpt): the cap in force
    (None: ``Disabled``), the range it may take, and whether the supply's sag overrides it."""

    limit_watts: float | None
    floor_watts: float
    ceiling_watts: float
    overridden: bool

    @classmethod
    def from_json(cls, data: Any) -> PowerLimitView | None:
        floor, ceiling = _number(_get(data, "AllowableMin")), _number(_get(data, "AllowableMax"))
        if floor is None or ceiling is None:
            return None
        mode = _get(data, "ControlMode")
        return cls(
            limit_watts=None if mode == "Disabled" else _number(_get(data, "SetPoint")),
            floor_watts=floor,
            ceiling_watts=ceiling,
            overridden=mode == "Override",
        )


@dataclass(frozen=True)
class EnvironmentView:
    """``/redfish/v1/Chassis/{id}/EnvironmentMetrics``: power, energy and temperature, and
    the power cap where the BMC has one."""

    power_watts: float | None
    energy_joules: float | None
    temperature_celsius: float | None
    power_limit: PowerLimitView | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvironmentView:
        return cls(
            power_watts=_number(_get(data, "PowerWatts", "Reading")),
            energy_joules=_number(_get(data, "EnergyJoules", "Reading")),
            temperature_celsius=_number(_get(data, "TemperatureCelsius", "Reading")),
            power_limit=PowerLimitView.from_json(_get(data, "PowerLimitWatts")),
        )


RESET_REQUESTED = "ResetRequested"
"""The MessageId (in the ``Racklet`` registry) a Racklet BMC records each Reset with."""


@dataclass(frozen=True)
class ResetRequest:
    """One Reset a BMC's EventLog records: which, and who asked (an account or a SPIFFE ID)."""

    event_id: int
    reset_type: str
    requested_by: str
    created: str

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> ResetRequest | None:
        """The record in a LogEntry, None if the entry is another kind of event."""
        message_id = entry.get("MessageId")
        args = entry.get("MessageArgs")
        if not isinstance(message_id, str) or not message_id.startswith("Racklet."):
            return None
        if message_id.rsplit(".", 1)[-1] != RESET_REQUESTED:
            return None
        if not isinstance(args, list) or len(args) < 3 or not str(entry.get("Id", "")).isdigit():
            return None
        return cls(int(entry["Id"]), str(args[1]), str(args[2]), str(entry.get("Created", "")))

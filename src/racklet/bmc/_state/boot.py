"""What the BMC knows about the unit's boot: Redfish ``BootProgress`` and a boot failure.

The unit reports progress over the backplane link; a failure is held (with its reason)
until the unit is next powered on, so the controller can read why a unit did not boot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from racklet.bmc._state.events import EventBus
from racklet.bmc.errors import BmcError

# ComputerSystem.BootProgressTypes (ComputerSystem.v1_13_0 and v1_15_0).
BOOT_PROGRESS_STATES = (
    "None",
    "PrimaryProcessorInitializationStarted",
    "BusInitializationStarted",
    "MemoryInitializationStarted",
    "SecondaryProcessorInitializationStarted",
    "PCIResourceConfigStarted",
    "SystemHardwareInitializationComplete",
    "SetupEntered",
    "OSBootStarted",
    "OSRunning",
    "OEM",
)
BOOT_FAILED = "BootFailed"
# Platform registry message for a failed verified boot; its one argument names the device.
BOOT_FAILED_MESSAGE_ID = "Platform.1.3.DeviceSecureBootFailure"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class BootFailure:
    reason: str
    timestamp: str


class BootStatus:
    """Boot progress of one unit; changed by the link and by power transitions."""

    def __init__(self, unit: str, events: EventBus | None = None) -> None:
        self._unit = unit
        self._events = events or EventBus()
        self._origin = f"/redfish/v1/Systems/{unit}"
        self.last_state = "None"
        self.oem_state: str | None = None
        self.message: str | None = None
        self.changed = _now()
        self.failure: BootFailure | None = None
        self.watchers: list[Callable[[str], None]] = []
        """Told ``powered_on``, ``progress``, ``failed`` and ``powered_off`` as they happen
        (the boot override follows the boot with them)."""

    def _tell(self, what: str) -> None:
        for watcher in self.watchers:
            watcher(what)

    def progress(self, state: str, message: str | None = None) -> None:
        if state not in BOOT_PROGRESS_STATES:
            raise BmcError(
                f"unknown boot progress state {state!r} (one of: {', '.join(BOOT_PROGRESS_STATES)})"
            )
        self.last_state, self.oem_state, self.message = state, None, message
        self.changed = _now()
        self._events.boot(self._origin)
        self._tell("progress")

    def failed(self, reason: str) -> None:
        reason = " ".join(reason.split())[:500] or "no reason given"
        self.last_state, self.oem_state, self.message = "OEM", BOOT_FAILED, reason
        self.changed = _now()
        self.failure = BootFailure(reason, self.changed)
        self._events.boot_failed(self._origin, self._unit, reason)
        self._tell("failed")

    def carry_over(self, before: BootStatus) -> None:
        """Take the boot progress a previous instance of this BMC saw (no events).

        A BMC restart does not touch the host: it keeps running, and a real BMC reads its
        progress back from hardware (POST codes, host state) when it comes up again.
        """
        self.last_state, self.oem_state, self.message = (
            before.last_state,
            before.oem_state,
            before.message,
        )
        self.changed, self.failure = before.changed, before.failure

    def powered_on(self) -> None:
        """A new boot begins: forget the last one, including its failure."""
        self.failure = None
        self.last_state, self.oem_state, self.message = "None", None, None
        self.changed = _now()
        self._tell("powered_on")

    def powered_off(self) -> None:
        """Not booting any more; a failure stays visible until the next power-on."""
        if self.failure is None:
            self.last_state, self.oem_state, self.message = "None", None, None
            self.changed = _now()
        self._tell("powered_off")

    def redfish(self) -> dict[str, Any]:
        body: dict[str, Any] = {"LastState": self.last_state, "LastStateTime": self.changed}
        if self.last_state == "OEM" and self.oem_state:
            body["OemLastState"] = self.oem_state
        return body

    def conditions(self) -> list[dict[str, Any]]:
        if self.failure is None:
            return []
        return [
            {
                "MessageId": BOOT_FAILED_MESSAGE_ID,
                "MessageArgs": [self._unit],
                "Message": f"Device '{self._unit}' encountered a secure boot failure: "
                f"{self.failure.reason}",
                "Severity": "Critical",
                "Timestamp": self.failure.timestamp,
            }
        ]

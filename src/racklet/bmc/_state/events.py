"""The BMC's events: one bus that keeps the event log and feeds every SSE stream.

The BMC's own start (Racklet ``BmcStarted``: a fresh BMC's log is never empty, as a real
BMC's SEL is not), power changes (ResourceEvent PoweredOn/PoweredOff/PoweringOff), boot progress
(ResourceEvent ResourceChanged on the system; a failed boot is Platform
DeviceSecureBootFailure), sensor thresholds (SensorEvent caution/normal) and login
failures and lockouts (AccountSecurity, through :class:`LoginEvents`; the RMC has a bus of
its own) are published here by the code that observes them. ``EventService/SSE`` streams
them as Redfish ``Event`` payloads; the Manager's ``EventLog`` lists the last ``capacity``.

A slow SSE client loses its oldest undelivered events, never blocks the publisher.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from racklet.bmc._http.odata import odata_type
from racklet.bmc._http.registry import message_id
from racklet.log import ContextLogger

# registry prefix -> version the message ids name (shared/redfish/registries)
RESOURCE_EVENT = "ResourceEvent.1.4"
SENSOR_EVENT = "SensorEvent.1.1"
PLATFORM = "Platform.1.3"
ACCOUNT_SECURITY = "AccountSecurity.1.0"
STREAM_BACKLOG = 256


@dataclass(frozen=True)
class RedfishEvent:
    id: int
    timestamp: str
    message_id: str
    message: str
    args: tuple[str, ...]
    severity: str
    origin: str

    def record(self) -> dict[str, Any]:
        """The ``EventRecord`` form (inside an ``Event`` payload)."""
        return {
            "EventId": str(self.id),
            "EventTimestamp": self.timestamp,
            "MessageId": self.message_id,
            "Message": self.message,
            "MessageArgs": list(self.args),
            "MessageSeverity": self.severity,
            "OriginOfCondition": {"@odata.id": self.origin},
        }

    def payload(self) -> dict[str, Any]:
        return {
            "@odata.type": odata_type("Event"),
            "Id": str(self.id),
            "Name": "Racklet BMC event",
            "Events": [self.record()],
        }


class EventBus:
    def __init__(self, capacity: int = 500) -> None:
        self._log: deque[RedfishEvent] = deque(maxlen=capacity)
        self._streams: set[asyncio.Queue[RedfishEvent | None]] = set()
        self._sinks: list[Callable[[RedfishEvent], None]] = []
        self._next = 1
        self.capacity = capacity

    def publish(
        self, message_id: str, message: str, args: tuple[str, ...], severity: str, origin: str
    ) -> RedfishEvent:
        event = RedfishEvent(
            self._next,
            dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            message_id,
            message,
            args,
            severity,
            origin,
        )
        self._next += 1
        self._log.append(event)
        for queue in self._streams:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
        for sink in self._sinks:
            sink(event)
        return event

    def add_sink(self, sink: Callable[[RedfishEvent], None]) -> None:
        """Hand every event from now on to ``sink`` too (push subscriptions); a sink must
        not block: it queues."""
        self._sinks.append(sink)

    def events(self) -> list[RedfishEvent]:
        return list(self._log)

    def get(self, event_id: int) -> RedfishEvent | None:
        return next((e for e in self._log if e.id == event_id), None)

    def clear(self) -> None:
        self._log.clear()

    def subscribe(self) -> asyncio.Queue[RedfishEvent | None]:
        queue: asyncio.Queue[RedfishEvent | None] = asyncio.Queue(maxsize=STREAM_BACKLOG)
        self._streams.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[RedfishEvent | None]) -> None:
        self._streams.discard(queue)

    def close(self) -> None:
        """End every open stream (the service is stopping)."""
        for queue in list(self._streams):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self._streams.clear()

    # What the BMC publishes, in one place so messages match their registries.

    def started(self, origin: str, unit: str, firmware: str) -> None:
        """The BMC's first entry of each start, as a real BMC logs its own boot."""
        self.publish(
            message_id("Racklet.BmcStarted"),
            f"The BMC of '{unit}' started with firmware '{firmware}'.",
            (unit, firmware),
            "OK",
            origin,
        )

    def power(self, origin: str, unit: str, state: str) -> None:
        words = {"On": "has powered on", "Off": "has powered off"}
        key = {"On": "ResourcePoweredOn", "Off": "ResourcePoweredOff"}.get(state)
        if state == "PoweringOff":
            key, text = "ResourcePoweringOff", f"The resource '{unit}' is powering off."
        elif state == "PoweringOn":
            key, text = "ResourcePoweringOn", f"The resource '{unit}' is powering on."
        else:
            text = f"The resource '{unit}' {words[state]}."
        assert key is not None
        self.publish(f"{RESOURCE_EVENT}.{key}", text, (unit,), "OK", origin)

    def boot(self, origin: str) -> None:
        self.changed(origin)

    def changed(self, origin: str) -> None:
        """Properties of ``origin`` changed (a boot's progress, a setting an operator wrote)."""
        self.publish(
            f"{RESOURCE_EVENT}.ResourceChanged",
            "One or more resource properties have changed.",
            (),
            "OK",
            origin,
        )

    def boot_failed(self, origin: str, unit: str, reason: str) -> None:
        self.publish(
            f"{PLATFORM}.DeviceSecureBootFailure",
            f"Device '{unit}' encountered a secure boot failure: {reason}",
            (unit,),
            "Critical",
            origin,
        )

    def threshold(
        self, origin: str, sensor: str, reading: float, units: str, limit: float | None
    ) -> None:
        if limit is not None:
            self.publish(
                f"{SENSOR_EVENT}.ReadingAboveUpperCautionThreshold",
                f"Sensor '{sensor}' reading of {reading} ({units}) is above the {limit} "
                "upper caution threshold.",
                (sensor, str(reading), units, str(limit)),
                "Warning",
                origin,
            )
        else:
            self.publish(
                f"{SENSOR_EVENT}.SensorReadingNormalRange",
                f"Sensor '{sensor}' reading of {reading} ({units}) is within normal "
                "operating range.",
                (sensor, str(reading), units),
                "OK",
                origin,
            )


class LoginEvents:
    """Login failures and lockouts of one service, in its log and its EventLog.

    The EventLog gets AccountSecurity ``InvalidCredentials`` on a source's first failure for
    an account (not on every one: a guesser must not wash the log out), ``AccountLocked``
    on each lockout and ``AccountUnlocked`` when an Administrator clears one. Names that no
    account has go to the structured log only, so spraying made-up names cannot flood it.
    """

    def __init__(self, bus: EventBus, log: ContextLogger, accounts_path: str) -> None:
        self._bus = bus
        self._log = log
        self._accounts = accounts_path

    def login_failed(
        self, username: str, source: str, *, known: bool, first: bool, locked_for: float
    ) -> None:
        shown = username[:64]
        if locked_for:
            self._log.warning(
                f"{shown!r} locked out for {locked_for:.0f} s from {source} "
                "after repeated failed logins"
            )
        else:
            self._log.warning(f"failed login for {shown!r} from {source}")
        if not known:
            return
        origin = f"{self._accounts}/{username}"
        if first:
            self._bus.publish(
                f"{ACCOUNT_SECURITY}.InvalidCredentials",
                f"'{username}' provided invalid credentials over 'Redfish from {source}'.",
                (username, f"Redfish from {source}"),
                "Critical",
                origin,
            )
        if locked_for:
            self._bus.publish(
                f"{ACCOUNT_SECURITY}.AccountLocked",
                f"Account '{username}' was locked due to excessive failed authorization attempts.",
                (username,),
                "Critical",
                origin,
            )

    def account_unlocked(self, username: str) -> None:
        self._log.info(f"account {username!r} unlocked by an administrator")
        self._bus.publish(
            f"{ACCOUNT_SECURITY}.AccountUnlocked",
            f"Account '{username}' was unlocked by an administrator.",
            (username,),
            "OK",
            f"{self._accounts}/{username}",
        )

"""Push subscriptions of an EventService: every event the service publishes, POSTed to a
listener. One mechanism for the BMC and the RMC (which relays every BMC's events and its own).

A tool that subscribes rather than streams (DMTF's ``rf_event_service.py subscribe``, a
monitoring system) POSTs an ``EventDestination`` to ``EventService/Subscriptions``
(``ConfigureComponents``: an Operator; the HTTP side is
:mod:`racklet.bmc._resources.events.subscriptions`). The service then POSTs each event
(:meth:`Subscriptions.deliver`) to the destination, with the subscription's ``Context``, one
at a time and in order, from one owned task per subscription.

The destination must be ``https://``; its certificate must chain to the rack CA or to the
host's trusted CAs, and its host name must match (no plain HTTP, no unverified TLS: the
network is hostile). A delivery that fails is tried again ``DeliveryRetryAttempts`` times,
``DeliveryRetryIntervalSeconds`` apart; then the subscription's ``DeliveryRetryPolicy``
decides: ``TerminateAfterRetries`` (the default) deletes it, ``SuspendRetries`` suspends it
(``Status.State`` ``Disabled``; events are dropped until it is deleted and made again),
``RetryForever`` keeps trying. A subscriber that falls behind loses its oldest events (a
bounded queue), never the service's publisher. Subscriptions live in memory: a restart of
the service ends them, as a BMC reboot does on most servers, and subscribers subscribe again.

Deliberately not here: event filters (``RegistryPrefixes``, ``ResourceTypes``,
``OriginResources``; a subscription gets every event), custom ``HttpHeaders``, SNMP/SMTP.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from racklet.bmc._http.uris import EVENT_SERVICE
from racklet.log import ContextLogger
from racklet.tasks import OwnedTask

SUBSCRIPTIONS = f"{EVENT_SERVICE}/Subscriptions"
RETRY_ATTEMPTS = 3
RETRY_INTERVAL_SECONDS = 5
POLICIES = ("TerminateAfterRetries", "SuspendRetries", "RetryForever")
MAX_SUBSCRIPTIONS = 16
BACKLOG = 256


@dataclass
class Subscription:
    id: str
    destination: str
    context: str
    policy: str
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=BACKLOG)
    )
    suspended: bool = False
    task: OwnedTask = field(default_factory=lambda: OwnedTask("subscription"))

    def body(self) -> dict[str, Any]:
        return {
            "@odata.type": "#EventDestination.v1_15_0.EventDestination",
            "@odata.id": f"{SUBSCRIPTIONS}/{self.id}",
            "Id": self.id,
            "Name": f"Event subscription {self.id}",
            "Destination": self.destination,
            "Context": self.context,
            "Protocol": "Redfish",
            "SubscriptionType": "RedfishEvent",
            "EventFormatType": "Event",
            "DeliveryRetryPolicy": self.policy,
            "Status": {"State": "Disabled" if self.suspended else "Enabled", "Health": "OK"},
        }


def _tls(ca_bundle: Path | None) -> ssl.SSLContext:
    """The host's trusted CAs and the rack CA; host names checked."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


class Subscriptions:
    def __init__(
        self,
        ca_bundle: Path | None,
        log: ContextLogger,
        retry_interval: float = RETRY_INTERVAL_SECONDS,
    ) -> None:
        self._ca = ca_bundle
        self._log = log
        self._retry_interval = retry_interval
        self._items: dict[str, Subscription] = {}
        self._http: httpx.AsyncClient | None = None

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, payload: dict[str, Any]) -> None:
        """Queue one ``Event`` payload for every subscription (never blocks the publisher)."""
        for item in self._items.values():
            if item.suspended:
                continue
            if item.queue.full():
                item.queue.get_nowait()
            item.queue.put_nowait(payload)

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            context = await asyncio.to_thread(_tls, self._ca)
            self._http = httpx.AsyncClient(verify=context, timeout=5.0)
        return self._http

    async def _run(self, item: Subscription) -> None:
        while True:
            payload = await item.queue.get()
            body = {**payload, "Context": item.context}
            if not await self._send(item, body):
                return

    async def _send(self, item: Subscription, body: dict[str, Any]) -> bool:
        """Deliver with retries; False when the subscription has ended or been suspended."""
        client = await self._client()
        attempt = 0
        while True:
            try:
                answer = await client.post(item.destination, json=body)
                if answer.status_code < 300:
                    return True
                why = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc or 'no answer'}"
            attempt += 1
            if item.policy != "RetryForever" and attempt > RETRY_ATTEMPTS:
                break
            self._log.warning(f"event to {item.destination} not delivered ({why}); retrying")
            await asyncio.sleep(self._retry_interval)
        if item.policy == "SuspendRetries":
            item.suspended = True
            self._log.error(f"subscription {item.id} suspended: {item.destination} ({why})")
        else:
            self._items.pop(item.id, None)
            self._log.error(f"subscription {item.id} ended: {item.destination} ({why})")
        return False

    async def stop(self) -> None:
        """End every subscription and close the client (a later start begins afresh)."""
        for item in list(self._items.values()):
            await item.task.stop()
        self._items.clear()
        client, self._http = self._http, None
        if client is not None:
            await client.aclose()

    # -- the collection ----------------------------------------------------------------------

    def ids(self) -> list[str]:
        return list(self._items)

    def full(self) -> bool:
        return len(self._items) >= MAX_SUBSCRIPTIONS

    def add(self, destination: str, context: str, policy: str) -> Subscription:
        """A new subscription, delivering from now on (the caller checked the values)."""
        item = Subscription(secrets.token_hex(4), destination, context, policy)
        self._items[item.id] = item
        item.task.start(lambda: self._run(item), name=f"subscription:{item.id}")
        self._log.info(f"subscription {item.id}: events to {destination}")
        return item

    def get(self, sub_id: str) -> Subscription | None:
        return self._items.get(sub_id)

    async def remove(self, item: Subscription) -> None:
        self._items.pop(item.id, None)
        await item.task.stop()
        self._log.info(f"subscription {item.id} deleted")

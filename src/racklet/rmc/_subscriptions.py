"""Push subscriptions of the RMC's EventService: every event it relays, POSTed to a listener.

A tool that subscribes rather than streams (DMTF's ``rf_event_service.py subscribe``, a
monitoring system) POSTs an ``EventDestination`` to ``EventService/Subscriptions``
(``ConfigureComponents``: an Operator). The RMC then POSTs each event of its stream (every
BMC's and its own, URIs as the aggregate shows them) to the destination, with the
subscription's ``Context``, one at a time and in order, from one owned task per subscription.

The destination must be ``https://``; its certificate must chain to the rack CA or to the
host's trusted CAs, and its host name must match (no plain HTTP, no unverified TLS: the
network is hostile). A delivery that fails is tried again ``DeliveryRetryAttempts`` times,
``DeliveryRetryIntervalSeconds`` apart; then the subscription's ``DeliveryRetryPolicy``
decides: ``TerminateAfterRetries`` (the default) deletes it, ``SuspendRetries`` suspends it
(``Status.State`` ``Disabled``; events are dropped until it is deleted and made again),
``RetryForever`` keeps trying. A subscriber that falls behind loses its oldest events (a
bounded queue), never the RMC's relays. Subscriptions live in memory: an RMC restart ends
them, as a BMC reboot does on most servers, and subscribers subscribe again.

Deliberately not here: event filters (``RegistryPrefixes``, ``ResourceTypes``,
``OriginResources``; a subscription gets every event), custom ``HttpHeaders``, SNMP/SMTP.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.limits import InputRejected, parse_json
from racklet.log import ContextLogger
from racklet.rmc import _uris
from racklet.rmc._messages import error, json_response
from racklet.tasks import OwnedTask

SUBSCRIPTIONS = f"{_uris.ROOT}/EventService/Subscriptions"
RETRY_ATTEMPTS = 3
RETRY_INTERVAL_SECONDS = 5
POLICIES = ("TerminateAfterRetries", "SuspendRetries", "RetryForever")
MAX_SUBSCRIPTIONS = 16
BACKLOG = 256
_ACCEPTED = {
    "Destination",
    "Context",
    "Protocol",
    "EventFormatType",
    "SubscriptionType",
    "DeliveryRetryPolicy",
}


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
    task: OwnedTask = field(default_factory=lambda: OwnedTask("rmc:subscription"))

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


def _tls(ca_bundle: Path) -> ssl.SSLContext:
    """The host's trusted CAs and the rack CA; host names checked."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(ca_bundle))
    return context


class Subscriptions:
    def __init__(
        self,
        ca_bundle: Path,
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
        """Queue one event (as the RMC's stream carries it) for every subscription."""
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
        for item in list(self._items.values()):
            await item.task.stop()
        self._items.clear()
        if self._http is not None:
            await self._http.aclose()

    # -- Redfish -----------------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        members = [{"@odata.id": f"{SUBSCRIPTIONS}/{i}"} for i in self._items]
        return json_response(
            {
                "@odata.type": "#EventDestinationCollection.EventDestinationCollection",
                "@odata.id": SUBSCRIPTIONS,
                "Name": "Event Subscriptions",
                "Members": members,
                "Members@odata.count": len(members),
            }
        )

    async def create(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body() or b"null")
        except InputRejected:
            return error(400, "MalformedJSON")
        if not isinstance(body, dict):
            return error(400, "MalformedJSON")
        unknown = sorted(set(body) - _ACCEPTED)
        if unknown:
            return error(400, "PropertyNotWritable", unknown[0])
        destination = body.get("Destination")
        if not isinstance(destination, str) or not destination:
            return error(400, "PropertyMissing", "Destination")
        parts = urlsplit(destination)
        if (
            parts.scheme != "https"
            or not parts.hostname
            or parts.username
            or len(destination) > 512
        ):
            return error(400, "PropertyValueTypeError", destination, "Destination")
        for name, allowed in (
            ("Protocol", ("Redfish",)),
            ("EventFormatType", ("Event",)),
            ("SubscriptionType", ("RedfishEvent",)),
            ("DeliveryRetryPolicy", POLICIES),
        ):
            if name in body and body[name] not in allowed:
                return error(400, "PropertyValueNotInList", json.dumps(body[name]), name)
        context = body.get("Context", "")
        if not isinstance(context, str) or len(context) > 256:
            return error(400, "PropertyValueTypeError", json.dumps(context), "Context")
        if len(self._items) >= MAX_SUBSCRIPTIONS:
            return error(503, "ServiceTemporarilyUnavailable", "60", headers={"Retry-After": "60"})
        item = Subscription(
            secrets.token_hex(4),
            destination,
            context,
            str(body.get("DeliveryRetryPolicy", "TerminateAfterRetries")),
        )
        self._items[item.id] = item
        item.task.start(lambda: self._run(item), name=f"rmc:subscription:{item.id}")
        self._log.info(f"subscription {item.id}: events to {destination}")
        return json_response(item.body(), 201, headers={"Location": item.body()["@odata.id"]})

    def _find(self, request: Request) -> Subscription | None:
        return self._items.get(request.path_params["sub"])

    async def get(self, request: Request) -> Response:
        item = self._find(request)
        if item is None:
            return error(404, "ResourceNotFound", "EventDestination", request.path_params["sub"])
        return json_response(item.body())

    async def delete(self, request: Request) -> Response:
        item = self._find(request)
        if item is None:
            return error(404, "ResourceNotFound", "EventDestination", request.path_params["sub"])
        self._items.pop(item.id, None)
        await item.task.stop()
        self._log.info(f"subscription {item.id} deleted")
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    def routes(self) -> list[Route]:
        return [
            Route(SUBSCRIPTIONS, self.collection, methods=["GET"]),
            Route(SUBSCRIPTIONS, self.create, methods=["POST"]),
            Route(SUBSCRIPTIONS + "/{sub}", self.get, methods=["GET"]),
            Route(SUBSCRIPTIONS + "/{sub}", self.delete, methods=["DELETE"]),
        ]

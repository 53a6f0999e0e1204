"""``EventService/Subscriptions``: the HTTP side of push subscriptions
(:mod:`racklet.bmc._state.subscriptions` delivers). The BMC and the RMC serve these same
routes over their own :class:`Subscriptions`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import no_content, read_object, respond, route
from racklet.bmc._state.subscriptions import POLICIES, SUBSCRIPTIONS, Subscription, Subscriptions

_ACCEPTED = {
    "Destination",
    "Context",
    "Protocol",
    "EventFormatType",
    "SubscriptionType",
    "DeliveryRetryPolicy",
}
MAX_DESTINATION = 512
MAX_CONTEXT = 256


def _checked(body: dict[str, Any]) -> tuple[str, str, str]:
    """Destination, Context and DeliveryRetryPolicy of a new subscription, or the 400."""
    unknown = sorted(set(body) - _ACCEPTED)
    if unknown:
        raise RedfishErrorReply(400, "PropertyNotWritable", unknown[0])
    destination = body.get("Destination")
    if not isinstance(destination, str) or not destination:
        raise RedfishErrorReply(400, "PropertyMissing", "Destination")
    parts = urlsplit(destination)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or parts.username
        or len(destination) > MAX_DESTINATION
    ):
        raise RedfishErrorReply(
            400,
            "PropertyValueFormatError",
            destination,
            "Destination",
            resolution="Give an https:// URL whose certificate the service can verify.",
        )
    for name, allowed in (
        ("Protocol", ("Redfish",)),
        ("EventFormatType", ("Event",)),
        ("SubscriptionType", ("RedfishEvent",)),
        ("DeliveryRetryPolicy", POLICIES),
    ):
        if name in body and body[name] not in allowed:
            raise RedfishErrorReply(400, "PropertyValueNotInList", json.dumps(body[name]), name)
    context = body.get("Context", "")
    if not isinstance(context, str) or len(context) > MAX_CONTEXT:
        raise RedfishErrorReply(400, "PropertyValueTypeError", json.dumps(context), "Context")
    return destination, context, str(body.get("DeliveryRetryPolicy", POLICIES[0]))


class SubscriptionRoutes:
    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions

    async def collection(self, request: Request) -> Response:
        members = [{"@odata.id": f"{SUBSCRIPTIONS}/{i}"} for i in self.subscriptions.ids()]
        return respond(
            {
                "@odata.type": "#EventDestinationCollection.EventDestinationCollection",
                "@odata.id": SUBSCRIPTIONS,
                "Name": "Event Subscriptions",
                "Members": members,
                "Members@odata.count": len(members),
            }
        )

    async def create(self, request: Request) -> Response:
        destination, context, policy = _checked(await read_object(request))
        if self.subscriptions.full():
            raise RedfishErrorReply(
                503, "ServiceTemporarilyUnavailable", "60", headers={"Retry-After": "60"}
            )
        body = self.subscriptions.add(destination, context, policy).body()
        return respond(body, 201, headers={"Location": body["@odata.id"]})

    def _find(self, request: Request) -> Subscription:
        item = self.subscriptions.get(request.path_params["sub"])
        if item is None:
            raise RedfishErrorReply(
                404, "ResourceNotFound", "EventDestination", request.path_params["sub"]
            )
        return item

    async def get(self, request: Request) -> Response:
        return respond(self._find(request).body())

    async def delete(self, request: Request) -> Response:
        await self.subscriptions.remove(self._find(request))
        return no_content()

    def routes(self) -> list[Route]:
        return [
            route(SUBSCRIPTIONS, GET=self.collection, POST=self.create),
            route(f"{SUBSCRIPTIONS}/{{sub}}", GET=self.get, DELETE=self.delete),
        ]


def subscription_routes(subscriptions: Subscriptions) -> list[Route]:
    """``EventService/Subscriptions`` over ``subscriptions`` (the BMC's, and the RMC's)."""
    return SubscriptionRoutes(subscriptions).routes()

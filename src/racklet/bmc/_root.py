"""The open entry points: ``/redfish``, the ServiceRoot, the OData service document and
``$metadata``. Nothing here reveals more than where the resources are."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._context import BmcContext
from racklet.bmc._http import ODATA_HEADERS, respond, route
from racklet.bmc._schema import REDFISH_VERSION, ROOT, link, metadata_xml, resource
from racklet.bmc._sessions import SERVICE, SESSIONS

_FAMILIES = {
    "Systems": f"{ROOT}/Systems",
    "Chassis": f"{ROOT}/Chassis",
    "Managers": f"{ROOT}/Managers",
    "SessionService": SERVICE,
    "AccountService": f"{ROOT}/AccountService",
    "EventService": f"{ROOT}/EventService",
}


def routes(ctx: BmcContext) -> list[Route]:
    async def versions(request: Request) -> Response:
        return respond({"v1": f"{ROOT}/"})

    async def service_root(request: Request) -> Response:
        body = resource(
            "ServiceRoot",
            f"{ROOT}/",
            Id="RootService",
            Name="Racklet BMC",
            RedfishVersion=REDFISH_VERSION,
            UUID=ctx.uuid,
            Vendor="Racklet",
            Product="Racklet BMC",
            ProtocolFeaturesSupported={
                "ExpandQuery": {
                    "ExpandAll": False,
                    "Levels": False,
                    "Links": False,
                    "NoLinks": False,
                },
                "FilterQuery": False,
                "SelectQuery": False,
                "OnlyMemberQuery": False,
                "ExcerptQuery": False,
                "TopSkipQuery": True,
            },
            Links={"Sessions": link(SESSIONS)},
            **{name: link(path) for name, path in _FAMILIES.items()},
        )
        return respond(body)

    async def odata(request: Request) -> Response:
        value = [{"name": "Service", "kind": "Singleton", "url": f"{ROOT}/"}]
        value += [{"name": n, "kind": "Singleton", "url": p} for n, p in _FAMILIES.items()]
        return respond({"@odata.context": f"{ROOT}/$metadata", "value": value})

    async def metadata(request: Request) -> Response:
        return Response(
            metadata_xml(), media_type="application/xml;charset=utf-8", headers=ODATA_HEADERS
        )

    return [
        route("/redfish", GET=versions),
        route("/redfish/", GET=versions),
        route(ROOT, GET=service_root),
        route(f"{ROOT}/", GET=service_root),
        route(f"{ROOT}/odata", GET=odata),
        route(f"{ROOT}/$metadata", GET=metadata),
    ]

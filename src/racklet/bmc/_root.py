"""The open entry points: ``/redfish``, the ServiceRoot, the OData service document and
``$metadata`` and the CSDL files it references. Nothing here reveals more than where the
resources are and what DMTF published about their types."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from racklet.bmc._http.odata import (
    REDFISH_VERSION,
    ROOT,
    SCHEMAS,
    link,
    metadata_xml,
    read_schema_file,
    resource,
)
from racklet.bmc._http.registry import RedfishErrorReply
from racklet.bmc._http.responses import ODATA_HEADERS, respond, route
from racklet.bmc._http.uris import SESSION_SERVICE as SERVICE
from racklet.bmc._http.uris import SESSIONS
from racklet.bmc._state.context import BmcContext

_FAMILIES = {
    "Systems": f"{ROOT}/Systems",
    "Chassis": f"{ROOT}/Chassis",
    "Managers": f"{ROOT}/Managers",
    "SessionService": SERVICE,
    "AccountService": f"{ROOT}/AccountService",
    "EventService": f"{ROOT}/EventService",
    "UpdateService": f"{ROOT}/UpdateService",
    "Tasks": f"{ROOT}/TaskService",
    "CertificateService": f"{ROOT}/CertificateService",
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

    async def schema_file(request: Request) -> Response:
        name = request.path_params["name"]
        body = await asyncio.to_thread(read_schema_file, name)
        if body is None:
            raise RedfishErrorReply(404, "ResourceNotFound", "Schema", name)
        return Response(body, media_type="application/xml;charset=utf-8", headers=ODATA_HEADERS)

    return [
        route("/redfish", GET=versions),
        route("/redfish/", GET=versions),
        route(ROOT, GET=service_root),
        route(f"{ROOT}/", GET=service_root),
        route(f"{ROOT}/odata", GET=odata),
        route(f"{ROOT}/$metadata", GET=metadata),
        route(f"{SCHEMAS}/{{name}}", GET=schema_file),
    ]
